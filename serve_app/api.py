"""The FastAPI app of one ingress replica: OpenAI's audio routes, models, health, stats,
and the error handlers that turn every failure into an OpenAI-style JSON body.

Built per replica (Serve calls ``Frontend.__serve_build_asgi_app__`` after ``__init__``),
so the middlewares see that replica's limits and keys.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from scribe import __version__
from scribe.errors import InvalidParameterError, ScribeError, describe, http_status
from serve_app.ingress import ApiError
from serve_app.middleware import ApiKeyAuth, BodyLimit, StatusCounter
from serve_app.protocol import (
    MAX_KNOWN_SPEAKERS,
    AudioRequest,
    ErrorBody,
    Granularity,
    Health,
    ModelCard,
    ModelList,
    ResponseFormat,
    Stats,
    Task,
    error_body,
)

if TYPE_CHECKING:
    from serve_app.ingress import Frontend

logger = logging.getLogger(__name__)

FileField = Annotated[UploadFile, File(description="the recording, in any format FFmpeg reads")]
ModelField = Annotated[str, Form(description="any name (whisper-1, ...): the served model")]
LanguageField = Annotated[str | None, Form(description="ISO-639-1 code, e.g. en")]
PromptField = Annotated[str | None, Form(description="names and jargon to condition on")]
FormatField = Annotated[ResponseFormat, Form()]
TemperatureField = Annotated[float, Form(description="0 to 1")]
GranularityField = Annotated[
    list[Granularity] | None,
    Form(alias="timestamp_granularities[]", description="with verbose_json only")]
StreamField = Annotated[bool, Form(description="streaming is not supported: false only")]
NamesField = Annotated[
    list[str] | None,
    Form(alias="known_speaker_names[]", description="names of up to 4 known speakers")]
ReferencesField = Annotated[
    list[str] | None,
    Form(alias="known_speaker_references[]",
         description="a data URL of a 2-10 s clip of each known speaker, in the names' order")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 413, 500, 503)}
_AUDIO: dict[int | str, dict[str, Any]] = {
    200: {"description": "json/verbose_json as JSON; text, srt and vtt as text",
          "content": {"text/plain": {}}},
    **_ERRORS,
}


def make_api(front: Frontend) -> FastAPI:
    """The app: routes bound to ``front``, behind auth and the body-size limit."""
    api = FastAPI(title="ray-scribe", version=__version__,
                  summary="OpenAI-compatible transcription on Ray Serve")
    _add_error_handlers(api)
    _add_audio_routes(api, front)
    _add_info_routes(api, front)
    # The last added runs first: count every answer, then auth, then the size limit.
    api.add_middleware(BodyLimit, max_bytes=front.config.server.max_body_bytes)
    api.add_middleware(ApiKeyAuth, keys=front.config.server.keys())
    api.add_middleware(StatusCounter, counts=front.statuses)
    return api


def _add_audio_routes(api: FastAPI, front: Frontend) -> None:
    @api.post("/v1/audio/transcriptions", response_class=Response, responses=_AUDIO)
    async def transcriptions(
        request: Request, file: FileField, model: ModelField, language: LanguageField = None,
        prompt: PromptField = None, response_format: FormatField = "json",
        temperature: TemperatureField = 0.0, timestamp_granularities: GranularityField = None,
        stream: StreamField = False, known_speaker_names: NamesField = None,
        known_speaker_references: ReferencesField = None,
    ) -> Response:
        """Transcribe audio into the input language (OpenAI's API); ``diarized_json`` and
        known speakers say who spoke."""
        audio = _audio_request(model, "transcribe", language, prompt, response_format,
                               temperature, timestamp_granularities, stream)
        audio = _with_known_speakers(audio, known_speaker_names or [],
                                     known_speaker_references or [])
        return await front.transcribe(file, audio, _request_id(request))

    @api.post("/v1/audio/translations", response_class=Response, responses=_AUDIO)
    async def translations(
        request: Request, file: FileField, model: ModelField, prompt: PromptField = None,
        response_format: FormatField = "json", temperature: TemperatureField = 0.0,
    ) -> Response:
        """Translate audio into English (OpenAI's API)."""
        audio = _audio_request(model, "translate", None, prompt, response_format,
                               temperature, None, False)
        return await front.transcribe(file, audio, _request_id(request))


def _add_info_routes(api: FastAPI, front: Frontend) -> None:
    @api.get("/v1/models", responses=_ERRORS)
    async def models() -> ModelList:
        """The model names this server answers to."""
        return front.models()

    @api.get("/v1/models/{model_id}", responses=_ERRORS)
    async def model(model_id: str) -> ModelCard:
        """One model, if this server answers to that name."""
        for card in front.models().data:
            if card.id == model_id:
                return card
        raise ApiError(404, f"model {model_id!r} does not exist", param="model",
                       code="model_not_found")

    @api.get("/v1/stats", responses=_ERRORS)
    async def stats() -> Stats:
        """Counters and memory of the ingress replica that answers."""
        return front.stats()

    @api.get("/health")
    async def health() -> Health:
        """Liveness for load balancers (no auth)."""
        return Health()

    @api.get("/health/ready", responses=_ERRORS)
    async def ready() -> Health:
        """Readiness (no auth): a preprocessor and a model replica answer; 503 while one
        is down or restarting."""
        if not await front.ready():
            raise ApiError(503, "a preprocessing or model replica is not answering",
                           code="not_ready", headers={"Retry-After": str(front.retry_after_s)})
        return Health()


def _audio_request(model: str, task: Task, language: str | None, prompt: str | None,
                   response_format: ResponseFormat, temperature: float,
                   granularities: list[Granularity] | None, stream: bool) -> AudioRequest:
    if stream:
        raise ApiError(400, "stream: streaming is not supported", param="stream")
    if granularities and response_format != "verbose_json":
        raise ApiError(400, "timestamp_granularities[] needs response_format=verbose_json",
                       param="timestamp_granularities[]")
    if response_format == "diarized_json" and task != "transcribe":
        raise ApiError(400, "response_format: diarized_json is for transcriptions only; "
                       "a translation cannot say who spoke", param="response_format")
    return AudioRequest(model=model, task=task, language=language or None,
                        prompt=prompt or None, temperature=temperature,
                        response_format=response_format,
                        timestamp_granularities=tuple(granularities or ()))


def _with_known_speakers(audio: AudioRequest, names: list[str], references: list[str]
                         ) -> AudioRequest:
    """``audio`` with its known speakers, checked: a name per clip, at most four, unique."""
    if len(names) != len(references):
        raise ApiError(400, f"known_speaker_references[]: {len(references)} clips for "
                       f"{len(names)} known_speaker_names[]; give one clip per name",
                       param="known_speaker_references[]")
    if len(names) > MAX_KNOWN_SPEAKERS or len(set(names)) != len(names) or not all(names):
        raise ApiError(400, f"known_speaker_names[]: at most {MAX_KNOWN_SPEAKERS} distinct, "
                       "non-empty names", param="known_speaker_names[]")
    return audio.model_copy(update={"known_speaker_names": tuple(names),
                                    "known_speaker_references": tuple(references)})


def _request_id(request: Request) -> str:
    """Serve's proxy sets (or keeps) X-Request-Id and echoes it; this is the fallback."""
    return request.headers.get("x-request-id") or uuid.uuid4().hex


def _add_error_handlers(api: FastAPI) -> None:
    api.add_exception_handler(ApiError, _api_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(HTTPException, _http_error)
    api.add_exception_handler(ScribeError, _engine_error)
    api.add_exception_handler(Exception, _unexpected_error)


def _json_error(status: int, message: str, param: str | None = None, code: str | None = None,
                headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param=param, code=code),
                        status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _json_error(exc.status, exc.message, exc.param, exc.code, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 as OpenAI's 400, naming the field (``file``, ``response_format``)."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    param = ".".join(loc) or None
    return _json_error(400, f"{param}: {first.get('msg', 'invalid value')}", param,
                       "invalid_parameter")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _json_error(exc.status_code, str(exc.detail), headers=exc.headers)


async def _engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ScribeError)
    param = exc.param if isinstance(exc, InvalidParameterError) else None
    return _json_error(http_status(exc), str(exc), param, exc.code)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the replica's log (it holds no transcript text); the client
    # gets the request id to quote, never the traceback.
    request_id = _request_id(request)
    logger.error("request %s failed: %s", request_id, describe(exc), exc_info=exc)
    return _json_error(500, f"internal error (request {request_id})", code="internal_error")
