"""The engine's errors: one small hierarchy, one mapping to HTTP statuses.

Batch turns any of these into an error record (the job goes on); Serve turns them into a
4xx answer with the message, never a 500 with a traceback.
"""

from __future__ import annotations

import re


class ScribeError(Exception):
    """Base of every error the engine raises on purpose."""

    http_status = 500
    code = "internal_error"


class InvalidInputError(ScribeError):
    """The caller sent something the engine cannot use (a parameter, a file)."""

    http_status = 400
    code = "invalid_request_error"


class AudioDecodeError(InvalidInputError):
    """The bytes are not a readable audio stream (corrupt, truncated, not media at all)."""

    code = "audio_decode_error"


class UnsupportedAudioError(InvalidInputError):
    """The media is readable but not usable: no audio track, too long, too many channels."""

    code = "unsupported_audio"


class EmptyAudioError(InvalidInputError):
    """The file holds no samples at all (zero bytes, or a container with an empty track)."""

    code = "empty_audio"


class DecodeTimeoutError(UnsupportedAudioError):
    """Decoding took longer than the configured per-session limit."""

    code = "decode_timeout"


class InvalidParameterError(InvalidInputError):
    """A request or config parameter has a value the engine does not accept."""

    code = "invalid_parameter"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class StorageError(ScribeError):
    """Input could not be listed or read, or output could not be written."""

    code = "storage_error"


class PlanError(ScribeError):
    """No plan fits: the model is too big for the card, or the plan file is unusable."""

    code = "plan_error"


class ModelLoadError(ScribeError):
    """The model could not be found, downloaded or loaded."""

    code = "model_load_error"


def http_status(error: BaseException) -> int:
    """The HTTP status an error maps to: 4xx for the caller's mistakes, 500 otherwise."""
    if isinstance(error, ScribeError):
        return error.http_status
    return 500


def describe(error: BaseException) -> str:
    """A one-line, user-facing description: the error's kind and message, no traceback."""
    message = str(error) or error.__class__.__name__
    if isinstance(error, ScribeError):
        return f"{error.code}: {message}"
    return f"{error.__class__.__name__}: {message}"


# An identifier (describe's code or class name) or a fixed phrase of the job's own
# ("writing outputs failed"), before the first ": ".
_REASON = re.compile(r"([A-Za-z_][A-Za-z0-9_ ]{0,39}): ")


def error_reason(error: str | None) -> str:
    """The kind an error text from :func:`describe` starts with (``empty_audio``,
    ``audio_decode_error``, ``OSError``, ``incomplete``), or ``other``: a short, bounded
    name to group failures by (metric tags, ``scribe status``), never the message with
    its paths."""
    match = _REASON.match(error or "")
    return match.group(1) if match else "other"
