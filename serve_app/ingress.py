"""The HTTP front's logic: request options, the upload's trip through the two model-side
deployments, assembly, and counters. Routes live in :mod:`serve_app.api`.

Logs carry request ids, sizes and timings only: sessions are private conversations, so
neither transcript text nor audio is ever logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import resource
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from starlette.datastructures import UploadFile
from starlette.responses import Response

from scribe import config as cfg
from scribe.config import TranscribeOptions
from scribe.pipeline.chunking import Chunk
from scribe.pipeline.transcript import ok_record, record_base
from scribe.pipeline.whisper import ChunkOutput
from serve_app.deployments import Analysed, ChunkResult
from serve_app.protocol import AudioRequest, ModelCard, ModelList, Stats
from serve_app.render import render
from serve_app.settings import ServeConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Uploads move to the preprocessor through the object store in pieces of this size, so
# neither side ever holds a whole large upload in its own memory at once.
PIECE_BYTES = 8 * 1024 * 1024


READY_TIMEOUT_S = 5.0


class ApiError(Exception):
    """An answer other than 200: its status and OpenAI-style error fields."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


class Frontend:
    """One ingress replica's state: the config, handles to the model side, counters."""

    def __init__(self, config: ServeConfig, preprocessor: Any, transcriber: Any) -> None:
        self.config = config
        self.preprocessor = preprocessor
        self.transcriber = transcriber
        # Chunks of one request in flight at once: enough to fill a batch while the
        # previous one runs, few enough that one long session cannot crowd out the rest.
        self.window = 2 * config.resources.model_batch_size
        self.retry_after_s = config.server.retry_after_s
        self.statuses: Counter[int] = Counter()
        self.batch_sizes: Counter[int] = Counter()

    def __serve_build_asgi_app__(self) -> Any:
        from serve_app.api import make_api

        return make_api(self)

    def options(self, request: AudioRequest) -> TranscribeOptions:
        """The served model's options with this request's changes; 400 on a bad value."""
        base = self.config.transcribe
        update: dict[str, Any] = {
            "task": request.task, "temperature": request.temperature,
            "language": request.language or base.language,
            "initial_prompt": request.prompt or base.initial_prompt,
            "word_timestamps": "word" in request.timestamp_granularities,
        }
        options: TranscribeOptions = cfg.build(TranscribeOptions, base.model_dump(), update)
        return options

    async def transcribe(self, upload: UploadFile, request: AudioRequest, request_id: str
                         ) -> Response:
        """Run one upload through preprocessing and the model; the formatted answer."""
        start = time.perf_counter()
        options = self.options(request)
        stream = self.preprocessor.options(stream=True).prepare.remote(
            await _pieces(upload), options)
        analysed: Analysed = await _call(anext(stream), self.retry_after_s)
        if analysed.error:
            raise ApiError(analysed.status, analysed.error, param="file", code=analysed.code)
        chunks = await self._model(stream, options, request_id)
        logger.info("request %s: %s %.1f s audio, %d chunks, %.2f s", request_id,
                    request.task, analysed.duration_s, len(chunks),
                    time.perf_counter() - start)
        return render(self._record(analysed, chunks, request_id), request)

    async def _model(self, stream: AsyncIterator[Chunk], options: TranscribeOptions,
                     request_id: str) -> list[ChunkOutput]:
        """Each chunk through the transcriber as it arrives, ``window`` at a time at most."""
        window = asyncio.Semaphore(self.window)

        async def one(chunk: Chunk) -> ChunkOutput:
            try:
                mine = dataclasses.replace(chunk, group=request_id, language=options.language)
                result: ChunkResult = await _call(
                    self.transcriber.transcribe.remote(mine, options), self.retry_after_s)
            finally:
                window.release()
            if result.output is None:
                raise ApiError(500, f"the model failed: {result.error}", code="model_error")
            self.batch_sizes[result.batch_size] += 1
            return result.output

        tasks = []
        try:
            async with asyncio.TaskGroup() as group:
                async for chunk in stream:
                    await window.acquire()
                    tasks.append(group.create_task(one(chunk)))
        except BaseExceptionGroup as errors:
            # The first failure is the answer; the group cancelled the other chunks.
            raise errors.exceptions[0] from None
        return [task.result() for task in tasks]

    def _record(self, analysed: Analysed, chunks: list[ChunkOutput], request_id: str
                ) -> dict[str, Any]:
        base = record_base(request_id, model=self.config.transcribe.model, analysis=analysed)
        return ok_record(base, chunks)

    def models(self) -> ModelList:
        """The names clients may send; every one of them is the served model."""
        names = dict.fromkeys([*self.config.server.model_names,
                               os.path.basename(str(self.config.transcribe.model))])
        return ModelList(data=[ModelCard(id=name) for name in names])

    async def ready(self) -> bool:
        """Whether a preprocessor and a model replica answer within a few seconds."""
        async def ping(handle: Any) -> bool:
            return bool(await handle.ready.remote())

        try:
            await asyncio.wait_for(asyncio.gather(ping(self.preprocessor),
                                                  ping(self.transcriber)), READY_TIMEOUT_S)
        except Exception as exc:  # any failure to answer is "not ready", said once in the log
            logger.warning("not ready: %s", exc.__class__.__name__)
            return False
        return True

    def stats(self) -> Stats:
        """This replica's counters and memory, for operators and the tests."""
        rss, peak = _memory()
        return Stats(pid=os.getpid(), rss_bytes=rss, peak_rss_bytes=peak,
                     requests={str(k): v for k, v in sorted(self.statuses.items())},
                     chunks=sum(self.batch_sizes.values()),
                     batch_sizes=dict(sorted(self.batch_sizes.items())),
                     max_batch_size=max(self.batch_sizes, default=0))


async def _pieces(upload: UploadFile) -> list[Any]:
    """The spooled upload as object refs, one per piece, read from disk a piece at a time."""
    import ray

    await upload.seek(0)
    refs = []
    while data := await upload.read(PIECE_BYTES):
        refs.append(ray.put(data))
    return refs


async def _call(response: Awaitable[T], retry_after_s: int) -> T:
    """Await a deployment call; a full downstream queue is a 503 the client may retry."""
    from ray.exceptions import ActorUnavailableError, RayActorError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    try:
        return await response
    except (BackPressureError, DeploymentUnavailableError) as exc:
        retry = getattr(exc, "retry_after_s", None) or retry_after_s
        raise ApiError(503, "the server is at capacity; retry later", code="overloaded",
                       headers={"Retry-After": str(math.ceil(retry))}) from exc
    except (RayActorError, ActorUnavailableError) as exc:
        # a replica died under this request; Serve replaces it, so the client may retry
        raise ApiError(503, "a model replica restarted; retry later", code="replica_restarted",
                       headers={"Retry-After": str(retry_after_s)}) from exc


def _memory() -> tuple[int, int]:
    """(resident, peak resident) bytes of this process, from /proc where there is one."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return peak, peak
