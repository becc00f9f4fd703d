"""The FastAPI app of one ingress replica: OpenAI's audio routes, models, health, stats,
and the error handlers that turn every failure into an OpenAI-style JSON body.

Built per replica (Serve calls ``Ingress.__serve_build_asgi_app__`` after ``__init__``),
so the middlewares see that replica's limits and keys.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from scribe import __version__
from scribe.errors import InvalidParameterError, ScribeError, describe, http_status
from serve_app.frontend import Frontend
from serve_app.middleware import ApiKeyAuth, BodyLimit, StatusCounter
from serve_app.protocol import (
    ApiError,
    ErrorBody,
    Health,
    ModelCard,
    ModelList,
    Stats,
    TranscriptionRequest,
    TranslationRequest,
    error_body,
)

logger = logging.getLogger(__name__)

FileField = Annotated[UploadFile, File(description="the recording, in any format FFmpeg reads")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 413, 500, 503)}
_AUDIO: dict[int | str, dict[str, Any]] = {
    200: {"description": "json/verbose_json as JSON; text, srt and vtt as text; with "
                         "stream=true, server-sent events",
          "content": {"text/plain": {}, "text/event-stream": {}}},
    **_ERRORS,
}


def make_api(front: Frontend) -> FastAPI:
    """The app: routes bound to ``front``, behind auth and the body-size limit."""
    api = FastAPI(title="ray-scribe", version=__version__,
                  summary="OpenAI-compatible transcription on Ray Serve")
    _add_error_handlers(api)
    _add_audio_routes(api, front)
    _add_realtime_route(api, front)
    _add_info_routes(api, front)
    # The last added runs first: count every answer, then auth, then the size limit.
    api.add_middleware(BodyLimit, max_bytes=front.config.server.max_body_bytes)
    api.add_middleware(ApiKeyAuth, keys=front.config.server.keys())
    api.add_middleware(StatusCounter, counts=front.statuses)
    return api


def _add_audio_routes(api: FastAPI, front: Frontend) -> None:
    @api.post("/v1/audio/transcriptions", response_class=Response, responses=_AUDIO)
    async def transcriptions(request: Request, file: FileField,
                             form: Annotated[TranscriptionRequest, Form()]) -> Response:
        """Transcribe audio into the input language (OpenAI's API)."""
        return await front.transcribe(file, form, _request_id(request))

    @api.post("/v1/audio/translations", response_class=Response, responses=_AUDIO)
    async def translations(request: Request, file: FileField,
                           form: Annotated[TranslationRequest, Form()]) -> Response:
        """Translate audio into English (OpenAI's API)."""
        return await front.transcribe(file, form, _request_id(request))


def _add_realtime_route(api: FastAPI, front: Frontend) -> None:
    from serve_app.realtime import SessionLimit, serve_realtime

    limit = SessionLimit(front.config.server.realtime_max_sessions)

    @api.websocket("/v1/realtime")
    async def realtime(websocket: WebSocket) -> None:
        """Realtime transcription sessions (``?intent=transcription``), OpenAI's events."""
        await serve_realtime(front, websocket, limit)


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
