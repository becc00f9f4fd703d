"""The OpenAI-compatible wire format: request fields, response bodies, error bodies.

Plain pydantic only. Clients, docs and tests import this module without pulling in the
model runtime (ctranslate2, faster-whisper) or Ray; a subprocess test holds it to that.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
Granularity = Literal["segment", "word"]
Task = Literal["transcribe", "translate"]

RESPONSE_FORMATS: tuple[str, ...] = ("json", "text", "srt", "verbose_json", "vtt",
                                     "diarized_json")
MAX_KNOWN_SPEAKERS = 4  # as OpenAI's known_speaker_names[]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "verbose_json": "application/json",
    "diarized_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


class AudioRequest(BaseModel):
    """The form fields of ``/v1/audio/transcriptions`` and ``/v1/audio/translations``
    (the file travels beside them)."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="any name; every name maps to the served model")
    task: Task = "transcribe"
    language: str | None = Field(None, description="ISO-639-1 code; detected when absent")
    prompt: str | None = Field(None, description="text that conditions the transcript")
    temperature: float = Field(0.0, description="sampling temperature, 0 to 1")
    response_format: ResponseFormat = "json"
    timestamp_granularities: tuple[Granularity, ...] = Field(
        (), description="segment and/or word; only with verbose_json")
    known_speaker_names: tuple[str, ...] = Field(
        (), description="names for the speakers whose reference clips follow, in order")
    known_speaker_references: tuple[str, ...] = Field(
        (), description="a data URL of a 2-10 s clip of each known speaker")

    @property
    def wants_speakers(self) -> bool:
        """Whether the answer must say who spoke."""
        return self.response_format == "diarized_json" or bool(self.known_speaker_names)


class Usage(BaseModel):
    """Billing-style usage: seconds of audio in the request."""

    type: Literal["duration"] = "duration"
    seconds: float


class TranscriptionJSON(BaseModel):
    """``response_format=json``."""

    text: str
    usage: Usage | None = None


class Word(BaseModel):
    """One word with its time span (``timestamp_granularities[]=word``)."""

    word: str
    start: float
    end: float


class Segment(BaseModel):
    """One segment of ``verbose_json``, with OpenAI's field names."""

    id: int
    seek: int = 0
    start: float
    end: float
    text: str
    tokens: list[int] = Field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class TranscriptionVerbose(BaseModel):
    """``response_format=verbose_json``."""

    task: Task
    language: str
    duration: float
    text: str
    segments: list[Segment] | None = None
    words: list[Word] | None = None
    usage: Usage | None = None


class DiarizedSegment(BaseModel):
    """One segment of ``diarized_json``, as OpenAI's ``TranscriptionDiarizedSegment``."""

    id: str
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    start: float
    end: float
    text: str
    speaker: str = Field(description="a known speaker's name, else A, B, ... by first turn")


class TranscriptionDiarized(BaseModel):
    """``response_format=diarized_json``."""

    task: Literal["transcribe"] = "transcribe"
    duration: float
    text: str
    segments: list[DiarizedSegment]
    usage: Usage | None = None


class ModelCard(BaseModel):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "ray-scribe"


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    """The inside of an OpenAI error body."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """What every 4xx/5xx answer carries: ``{"error": {...}}``."""

    error: ErrorDetail


class Health(BaseModel):
    """``GET /health``."""

    status: Literal["ok"] = "ok"


class Stats(BaseModel):
    """``GET /v1/stats``: counters of the ingress replica that answered."""

    pid: int
    rss_bytes: int = Field(description="resident memory of this ingress replica now")
    peak_rss_bytes: int = Field(description="the most resident memory it has had")
    requests: dict[str, int] = Field(description="answers by HTTP status")
    chunks: int = Field(description="chunks transcribed for this replica's requests")
    batch_sizes: dict[int, int] = Field(
        description="model batch size -> chunks that ran in a batch of that size")
    max_batch_size: int = Field(description="largest model batch any chunk ran in")


def error_body(status: int, message: str, *, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error body; ``type`` follows from the status, as OpenAI's does."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    detail = ErrorDetail(message=message, type=kind, param=param, code=code)
    return ErrorBody(error=detail).model_dump()
