"""The wire models of streamed transcripts: the server-sent events of ``stream=true``.

Field for field OpenAI's ``TranscriptionTextDeltaEvent``, ``TranscriptionTextSegmentEvent``
and ``TranscriptionTextDoneEvent`` (``openai.types.audio``), so the ``openai`` client's
``transcriptions.create(..., stream=True)`` iterates them as its own typed events. Plain
pydantic, like :mod:`serve_app.protocol`: no Ray, no model runtime.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from serve_app.protocol import error_body

# Whisper's encoder turns each 30 s window into 1500 positions: the audio tokens a chunk
# costs the model, whatever share of the window is speech.
AUDIO_TOKENS_PER_CHUNK = 1500


class TextDelta(BaseModel):
    """``transcript.text.delta``: the text a chunk added, once it is final."""

    type: Literal["transcript.text.delta"] = "transcript.text.delta"
    delta: str


class TextSegment(BaseModel):
    """``transcript.text.segment`` (``diarized_json``): one segment with its speaker."""

    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    id: str
    start: float
    end: float
    text: str
    speaker: str


class InputTokenDetails(BaseModel):
    """What the input tokens were."""

    audio_tokens: int
    text_tokens: int = 0


class TokenUsage(BaseModel):
    """The done event's usage, in OpenAI's only shape for it (``type: tokens``): audio
    tokens are the encoder positions of the chunks run, output tokens those decoded."""

    type: Literal["tokens"] = "tokens"
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_token_details: InputTokenDetails


class TextDone(BaseModel):
    """``transcript.text.done``: the whole text, as the same request without ``stream``
    would have answered it, and the usage."""

    type: Literal["transcript.text.done"] = "transcript.text.done"
    text: str
    usage: TokenUsage


def token_usage(chunks: int, output_tokens: int) -> TokenUsage:
    """Usage for ``chunks`` model windows that decoded ``output_tokens`` tokens."""
    audio = chunks * AUDIO_TOKENS_PER_CHUNK
    return TokenUsage(input_tokens=audio, output_tokens=output_tokens,
                      total_tokens=audio + output_tokens,
                      input_token_details=InputTokenDetails(audio_tokens=audio))


def sse(event: BaseModel | dict[str, Any]) -> str:
    """One server-sent event: a ``data:`` line of JSON and the blank line that ends it."""
    data = event.model_dump() if isinstance(event, BaseModel) else event
    return f"data: {json.dumps(data, ensure_ascii=False, allow_nan=False)}\n\n"


def error_event(status: int, message: str, *, code: str | None = None) -> dict[str, Any]:
    """The event that ends a stream that failed after its 200: OpenAI's error body (the
    ``openai`` client raises ``APIError`` with its message on a ``data`` with ``error``)."""
    return {"type": "error", **error_body(status, message, code=code)}
