"""One table of Whisper architectures, read by the memory model (capacity), the model stage
(mel bins) and the test-model maker (shapes), so a model is described once.

Parameters are the model cards' figures; widths, depths and heads are each checkpoint's
``config.json``. Names resolve from what users pass: a size (``large-v3``), an alias
(``turbo``), a Hugging Face repo id (``Systran/faster-whisper-small.en``) or the directory a
converted model sits in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WhisperArchitecture:
    """The shape of a Whisper model: parameters, width, depths, heads and mel bins."""

    params: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    n_mels: int = 80


ARCHITECTURES: dict[str, WhisperArchitecture] = {
    "tiny": WhisperArchitecture(39_000_000, 384, 4, 4, 6),
    "base": WhisperArchitecture(74_000_000, 512, 6, 6, 8),
    "small": WhisperArchitecture(244_000_000, 768, 12, 12, 12),
    "medium": WhisperArchitecture(769_000_000, 1024, 24, 24, 16),
    "large-v1": WhisperArchitecture(1_550_000_000, 1280, 32, 32, 20),
    "large-v2": WhisperArchitecture(1_550_000_000, 1280, 32, 32, 20),
    "large-v3": WhisperArchitecture(1_550_000_000, 1280, 32, 32, 20, 128),
    "large-v3-turbo": WhisperArchitecture(809_000_000, 1280, 32, 4, 20, 128),
    "distil-large-v2": WhisperArchitecture(756_000_000, 1280, 32, 2, 20),
    "distil-large-v3": WhisperArchitecture(756_000_000, 1280, 32, 2, 20, 128),
    "distil-medium": WhisperArchitecture(394_000_000, 1024, 24, 2, 16),
    "distil-small": WhisperArchitecture(166_000_000, 768, 12, 2, 12),
}

# faster-whisper's own short names (faster_whisper.utils._MODELS) for the same checkpoints.
_ALIASES = {"large": "large-v3", "turbo": "large-v3-turbo"}


def canonical_name(model: str) -> str | None:
    """The :data:`ARCHITECTURES` key for a model name, repo id or directory, or None."""
    name = model.rstrip("/").rsplit("/", 1)[-1].lower().removesuffix("-ct2")
    name = name.replace("faster-distil-whisper-", "distil-").replace("distil-whisper-", "distil-")
    name = name.removeprefix("faster-whisper-").removeprefix("whisper-").removesuffix(".en")
    name = _ALIASES.get(name, name)
    return name if name in ARCHITECTURES else None


def architecture(model: str) -> WhisperArchitecture | None:
    """The architecture ``model`` names (see :func:`canonical_name`), or None."""
    name = canonical_name(model)
    return ARCHITECTURES[name] if name else None


def n_mels_by_name(model: str) -> int:
    """Mel bins the named model expects: 128 for large-v3 and its descendants, else 80."""
    arch = architecture(model)
    return arch.n_mels if arch else 80
