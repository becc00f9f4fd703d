"""The OpenAI-compatible wire format: request forms, response bodies, errors.

Plain pydantic only. Clients, docs and tests import this module without pulling in the
model runtime (ctranslate2, faster-whisper) or Ray; a subprocess test holds it to that.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
Granularity = Literal["segment", "word"]
Task = Literal["transcribe", "translate"]

RESPONSE_FORMATS: tuple[str, ...] = ("json", "text", "srt", "verbose_json", "vtt",
                                     "diarized_json")
STREAM_FORMATS: tuple[str, ...] = ("json", "text", "diarized_json")
MAX_KNOWN_SPEAKERS = 4  # as OpenAI's known_speaker_names[]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "verbose_json": "application/json",
    "diarized_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


class ApiError(Exception):
    """An answer other than 200: its status and OpenAI-style error fields.

    Beside the wire models so that the routes and the serving code both import it from
    here, never from each other."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


class _AudioForm(BaseModel):
    """The form fields both audio routes take; the file travels beside them. FastAPI binds
    a subclass whole (``Annotated[TranscriptionRequest, Form()]``): a bad field is a 400
    naming it, and fields OpenAI's clients send that the service does not use are ignored."""

    model_config = ConfigDict(frozen=True)

    task: ClassVar[Task]
    model: str = Field(description="any name (whisper-1, ...): the served model")
    prompt: str | None = Field(None, description="names and jargon to condition on")
    response_format: ResponseFormat = "json"
    temperature: float = Field(0.0, description="sampling temperature, 0 to 1")


class TranscriptionRequest(_AudioForm):
    """``/v1/audio/transcriptions``: into the input language."""

    task: ClassVar[Task] = "transcribe"
    language: str | None = Field(None, description="ISO-639-1 code, e.g. en; detected when absent")
    timestamp_granularities: tuple[Granularity, ...] = Field(
        (), alias="timestamp_granularities[]", description="segment and/or word; with "
        "verbose_json only")
    stream: bool = Field(False, description="server-sent events as each chunk is done "
                         "(json, text or diarized_json)")
    known_speaker_names: tuple[str, ...] = Field(
        (), alias="known_speaker_names[]",
        description=f"names of up to {MAX_KNOWN_SPEAKERS} known speakers")
    known_speaker_references: tuple[str, ...] = Field(
        (), alias="known_speaker_references[]",
        description="a data URL of a 2-10 s clip of each known speaker, in the names' order")

    # not OpenAI's: the service's own form fields (pyannote's names), checked against each
    # other and the service's limit (8) as the job's flags are
    num_speakers: int | None = Field(
        None, description="ray-scribe's own: speakers in the recording, when known "
        "(diarized_json or known speakers)")
    min_speakers: int | None = Field(
        None, description="ray-scribe's own: the fewest speakers the estimate may find")
    max_speakers: int | None = Field(
        None, description="ray-scribe's own: the most speakers the estimate may find")

    @field_validator("known_speaker_names")
    @classmethod
    def _few_distinct_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_KNOWN_SPEAKERS or len(set(value)) != len(value) or not all(value):
            raise PydanticCustomError(
                "known_speakers", "at most {n} distinct, non-empty names",
                {"n": MAX_KNOWN_SPEAKERS})
        return value

    @field_validator("timestamp_granularities")
    @classmethod
    def _verbose_only(cls, value: tuple[Granularity, ...], info: ValidationInfo
                      ) -> tuple[Granularity, ...]:
        if value and info.data.get("response_format") != "verbose_json":
            raise PydanticCustomError("verbose_only", "needs response_format=verbose_json")
        return value

    @field_validator("stream")
    @classmethod
    def _streamable(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("response_format") not in STREAM_FORMATS:
            raise PydanticCustomError(
                "not_streamable", "streamed transcripts are events of text (and speaker "
                "segments): response_format json, text or diarized_json")
        return value


class TranslationRequest(_AudioForm):
    """``/v1/audio/translations``: into English, so no language and only segments."""

    task: ClassVar[Task] = "translate"
    language: ClassVar[None] = None
    timestamp_granularities: ClassVar[tuple[Granularity, ...]] = ()
    known_speaker_names: ClassVar[tuple[str, ...]] = ()
    known_speaker_references: ClassVar[tuple[str, ...]] = ()
    num_speakers: ClassVar[None] = None
    min_speakers: ClassVar[None] = None
    max_speakers: ClassVar[None] = None

    @field_validator("response_format")
    @classmethod
    def _not_diarized(cls, value: ResponseFormat) -> ResponseFormat:
        if value == "diarized_json":
            raise PydanticCustomError(
                "transcriptions_only", "diarized_json is for transcriptions only; a "
                "translation cannot say who spoke")
        return value


AudioRequest = TranscriptionRequest | TranslationRequest


def wants_speakers(request: AudioRequest) -> bool:
    """Whether the answer must say who spoke."""
    return request.response_format == "diarized_json" or bool(request.known_speaker_names)


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
    language: str = Field(description="the language heard, by OpenAI's name for it "
                          "(english, german), as OpenAI's API answers")
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
    language_seconds: dict[str, float] = Field(
        default_factory=dict, description="seconds of the ok answers' segments (streamed "
        "or not) by the language each was decoded in: this replica's share of "
        "scribe_online_language_seconds")


def error_body(status: int, message: str, *, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error body; ``type`` follows from the status, as OpenAI's does."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    detail = ErrorDetail(message=message, type=kind, param=param, code=code)
    return ErrorBody(error=detail).model_dump()
