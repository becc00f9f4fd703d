"""``stream=true`` on ``/v1/audio/transcriptions``: the transcript as server-sent events.

The request runs exactly as without ``stream`` (the same preprocessing stream, the same
chunks batched with every other request's in the transcriber); what changes is the
answer. Each chunk's text goes out as a ``transcript.text.delta`` once it and every chunk
before it are done, and ``transcript.text.done`` carries the text the same request
without ``stream`` would have got. ``diarized_json`` adds ``transcript.text.segment``
events before the done event: speakers are clustered over the whole session, so its
segments are known only once the last chunk is.

Everything that can fail before the first event (options, auth, body size, a full queue,
an unreadable file) is an HTTP status as for any request; a failure after the 200 (a
model replica lost mid-stream) ends the stream with an ``error`` event. A client that
goes away cancels the request: its queued chunks leave the model's queue and the
preprocessor stops making features.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.datastructures import UploadFile
from starlette.responses import StreamingResponse

from scribe.config import TranscribeOptions
from scribe.errors import ScribeError, describe, http_status
from scribe.io.formats import full_text
from scribe.pipeline.chunking import Chunk, ChunkOutput
from scribe.pipeline.speakers.diarize import SpeakerRequest
from scribe.schema import Record
from serve_app.deployments import Analysed
from serve_app.events import TextDelta, TextDone, TextSegment, error_event, sse, token_usage
from serve_app.metrics import Answer, OnlineMetrics
from serve_app.protocol import ApiError, AudioRequest
from serve_app.responses import diarized

logger = logging.getLogger(__name__)

EVENT_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

OnOutput = Callable[[int, ChunkOutput], None]


@dataclass
class Started:
    """A request past its checks: its options and speakers, the decoded upload's analysis,
    and the preprocessor's stream, which yields its chunks next, then the whole analysis
    (which replaces ``analysed`` once the model has taken every chunk)."""

    options: TranscribeOptions
    speakers: SpeakerRequest | None
    stream: AsyncIterator[Chunk | Analysed]
    analysed: Analysed


class Front(Protocol):
    """What a stream needs of the ingress (:class:`serve_app.frontend.Frontend`), which
    imports this module: a request's start, its chunks through the model, its record."""

    metrics: OnlineMetrics

    async def start(self, upload: UploadFile, request: AudioRequest, request_id: str,
                    answer: Answer) -> Started: ...

    async def model(self, started: Started, request_id: str,
                    on_output: OnOutput | None = None) -> list[ChunkOutput]: ...

    def record(self, started: Started, chunks: list[ChunkOutput], request_id: str
               ) -> Record: ...


class InOrder:
    """Chunk outputs as they finish, in any order; their text in the chunks' order."""

    def __init__(self) -> None:
        self._waiting: dict[int, ChunkOutput] = {}
        self._next = 0
        self.said = ""

    def add(self, number: int, output: ChunkOutput) -> Iterator[str]:
        """The deltas that chunk ``number`` makes final: its own text, and that of later
        chunks that were done before it, each with the space that joins it on."""
        self._waiting[number] = output
        while self._next in self._waiting:
            text = full_text(self._waiting.pop(self._next).segments)
            self._next += 1
            if text:
                delta = f" {text}" if self.said else text
                self.said += delta
                yield delta


async def streamed_response(front: Front, upload: UploadFile, request: AudioRequest,
                            request_id: str) -> StreamingResponse:
    """Start the request (raising its HTTP errors), then answer with its events."""
    counted = front.metrics.answer(request.task)
    answer = counted.__enter__()
    try:
        started = await front.start(upload, request, request_id, answer)
    except BaseException as exc:
        counted.__exit__(type(exc), exc, exc.__traceback__)
        raise
    events = _events(front, started, request, request_id, counted, answer)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers=EVENT_STREAM_HEADERS)


async def _events(front: Front, started: Started, request: AudioRequest, request_id: str,
                  counted: AbstractContextManager[Answer], answer: Answer
                  ) -> AsyncIterator[str]:
    """The request's events; its outcome counted (by ``counted``, whose ``answer`` gets
    the segments, counted by language as without ``stream``) as the stream ends, however
    it ends."""
    begun = time.perf_counter()
    outputs: asyncio.Queue[tuple[int, ChunkOutput] | None] = asyncio.Queue()

    async def model() -> list[ChunkOutput]:
        try:
            return await front.model(started, request_id,
                                     on_output=lambda n, out: outputs.put_nowait((n, out)))
        finally:
            outputs.put_nowait(None)

    work = asyncio.create_task(model())
    order = InOrder()
    try:
        while (item := await outputs.get()) is not None:
            for delta in order.add(*item):
                yield sse(TextDelta(delta=delta))
        chunks = await work
        record = front.record(started, chunks, request_id)
        answer.segments = record["segments"]  # counted by language
        for event in _final(record, chunks, request):
            yield sse(event)
    except Exception as exc:
        # The 200 is gone: the failure is the stream's last event, then the stream ends.
        counted.__exit__(type(exc), exc, exc.__traceback__)
        yield sse(_failure(exc, request_id))
        return
    except BaseException as exc:  # cancelled: the client went away
        counted.__exit__(type(exc), exc, exc.__traceback__)
        raise
    finally:
        await _stop(work)
    counted.__exit__(None, None, None)
    logger.info("request %s: streamed %.1f s audio, %d chunks, %.2f s", request_id,
                started.analysed.duration_s, len(chunks), time.perf_counter() - begun)


def _final(record: Record, chunks: list[ChunkOutput], request: AudioRequest
           ) -> Iterator[TextSegment | TextDone]:
    """Speaker segments (``diarized_json``), then the done event with the whole text."""
    if request.response_format == "diarized_json":
        for segment in diarized(record).segments:
            yield TextSegment(id=segment.id, start=segment.start, end=segment.end,
                              text=segment.text, speaker=segment.speaker)
    decoded = sum(len(s.get("tokens", ())) for c in chunks for s in c.segments)
    yield TextDone(text=record["text"], usage=token_usage(len(chunks), decoded))


def _failure(exc: Exception, request_id: str) -> dict[str, Any]:
    if isinstance(exc, ApiError):
        return error_event(exc.status, exc.message, code=exc.code)
    if isinstance(exc, ScribeError):
        return error_event(http_status(exc), str(exc), code=exc.code)
    logger.error("request %s failed mid-stream: %s", request_id, describe(exc), exc_info=exc)
    return error_event(500, f"internal error (request {request_id})", code="internal_error")


async def _stop(work: asyncio.Task[list[ChunkOutput]]) -> None:
    """Cancel the request's model work unless it is over, and wait for it to unwind."""
    if work.done():
        if not work.cancelled():
            work.exception()  # retrieved: its error (if any) was sent as the last event
        return
    work.cancel()
    try:
        await work
    except BaseException as exc:  # noqa: BLE001 - the stream's own outcome is decided
        logger.debug("model work cancelled: %s", exc.__class__.__name__)
