"""The HTTP front's logic: request options, the upload's trip through the two model-side
deployments, assembly, and counters. Routes live in :mod:`serve_app.api`.

Logs carry request ids, sizes and timings only: sessions are private conversations, so
neither transcript text nor audio is ever logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
import math
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.datastructures import UploadFile
from starlette.responses import Response

from scribe import config as cfg
from scribe.capacity.footprint import process_memory
from scribe.config import TranscribeOptions
from scribe.pipeline.chains import chained, said_after
from scribe.pipeline.chunking import Chunk, ChunkOutput, ChunkPlan
from scribe.pipeline.languages import check_request
from scribe.pipeline.speakers.diarize import SpeakerRequest
from scribe.pipeline.transcript import ok_record, record_base
from scribe.schema import Record
from serve_app.deployments import Analysed, ChunkResult, KnownVoices
from serve_app.metrics import Answer, OnlineMetrics
from serve_app.protocol import (
    ApiError,
    AudioRequest,
    ModelCard,
    ModelList,
    Stats,
    wants_speakers,
)
from serve_app.responses import transcription_response
from serve_app.settings import ServeConfig
from serve_app.streaming import OnOutput, Started, streamed_response

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Uploads move to the preprocessor through the object store in pieces of this size, so
# neither side ever holds a whole large upload in its own memory at once.
PIECE_BYTES = 8 * 1024 * 1024


READY_TIMEOUT_S = 5.0



class Frontend:
    """One ingress replica's state: the config, handles to the model side, counters."""

    def __init__(self, config: ServeConfig, preprocessor: Any, transcriber: Any) -> None:
        self.config = config
        self.preprocessor = preprocessor
        self.transcriber = transcriber
        self.model_batch_size = config.resources.model_batch_size
        self.retry_after_s = config.server.retry_after_s
        self.statuses: Counter[int] = Counter()
        self.batch_sizes: Counter[int] = Counter()
        self.metrics = OnlineMetrics()

    def options(self, request: AudioRequest) -> TranscribeOptions:
        """The served model's options with this request's changes; 400 on a bad value."""
        base = self.config.transcribe
        update: dict[str, Any] = {
            "task": request.task, "temperature": request.temperature,
            "language": request.language or base.language,
            "initial_prompt": request.prompt or base.initial_prompt,
            "word_timestamps": "word" in request.timestamp_granularities,
            **cfg.speaker_counts({k: getattr(request, k) for k in cfg.SPEAKER_COUNTS}),
        }
        if wants_speakers(request) and base.speakers == "off":
            update["speakers"] = "auto"
        options = cfg.build(TranscribeOptions, base.model_dump(), update)
        check_request(str(base.model), language=options.language, task=options.task)
        return options

    async def transcribe(self, upload: UploadFile, request: AudioRequest, request_id: str
                         ) -> Response:
        """Run one upload through preprocessing and the model; the formatted answer, or
        with ``stream=true`` its server-sent events (:mod:`serve_app.streaming`)."""
        if getattr(request, "stream", False):
            return await streamed_response(self, upload, request, request_id)
        with self.metrics.answer(request.task) as answer:
            return await self._transcribe(upload, request, request_id, answer)

    async def _transcribe(self, upload: UploadFile, request: AudioRequest, request_id: str,
                          answer: Answer) -> Response:
        start = time.perf_counter()
        started = await self.start(upload, request, request_id, answer)
        chunks = await self.model(started, request_id)
        logger.info("request %s: %s %.1f s audio, %d chunks, %.2f s", request_id,
                    request.task, started.analysed.duration_s, len(chunks),
                    time.perf_counter() - start)
        record = self.record(started, chunks, request_id)
        answer.segments = record["segments"]  # counted by language
        return transcription_response(record, request)

    async def start(self, upload: UploadFile, request: AudioRequest, request_id: str,
                    answer: Answer) -> Started:
        """Options, speakers and the decoded upload's analysis, its chunks to follow; every
        error of the request itself (bad options, clips, undecodable audio, a full queue)
        is raised here, before any answer has begun."""
        options = self.options(request)
        speakers = await self._speakers(request, options)  # a bad clip fails before the work
        stream = self.preprocessor.options(stream=True).prepare.remote(
            await _pieces(upload), options)
        try:
            analysed: Analysed = await _call(anext(stream), self.retry_after_s)
        except BaseException:
            _cancel(stream)
            raise
        _refuse(analysed)
        answer.audio_s = analysed.duration_s
        return Started(options, speakers, stream, analysed)

    def record(self, started: Started, chunks: list[ChunkOutput], request_id: str
               ) -> Record:
        """The finished transcript record of a started request."""
        base = record_base(request_id, model=self.config.transcribe.model,
                           analysis=started.analysed, options=started.options)
        return ok_record(base, chunks, started.speakers)

    async def _speakers(self, request: AudioRequest, options: TranscribeOptions
                        ) -> SpeakerRequest | None:
        """How to label speakers: off, or clustered (within the request's count or bounds)
        and named after the known speakers."""
        if options.speakers == "off":
            return None
        names, references = request.known_speaker_names, request.known_speaker_references
        if len(names) != len(references):
            raise ApiError(400, f"known_speaker_references[]: {len(references)} clips for "
                           f"{len(names)} known_speaker_names[]; give one clip per name",
                           param="known_speaker_references[]")
        known: list[list[float]] = []
        if names:
            clips = [_data_url_bytes(ref) for ref in references]
            voices: KnownVoices = await _call(
                self.preprocessor.known_voices.remote(clips, options), self.retry_after_s)
            if voices.error:
                raise ApiError(400, f"known_speaker_references[]: {voices.error}",
                               param="known_speaker_references[]")
            known = voices.embeddings
        return SpeakerRequest(num_speakers=options.num_speakers,
                              min_speakers=options.min_speakers,
                              max_speakers=options.max_speakers,
                              known=dict(zip(names, known, strict=True)))

    async def model(self, started: Started, request_id: str,
                    on_output: OnOutput | None = None) -> list[ChunkOutput]:
        """Each chunk of a started request through the transcriber as it arrives,
        ``window`` at a time at most; ``on_output(n, output)`` as the ``n``-th chunk
        (from 0, in the preprocessor's order) is done. The whole analysis, which follows
        the last chunk, replaces ``started.analysed`` (a failure in planning raises).
        Cancelled, it cancels the chunks in flight and the preprocessing.

        With prompt chains a chunk goes once the chunk before it in its chain is done,
        with the chain's text (:class:`PromptChains`): the chains of a request run side
        by side, one chunk of each in the model's queue."""
        stream, options = started.stream, started.options
        chains = PromptChains(options)
        # Chunks of one request in flight at once: without chains, enough to fill a batch
        # while the previous one runs; with them, a batch's worth of chains, one chunk of
        # each in the model's queue. Few enough that one long session cannot crowd out
        # the rest, nor hold many chunks' features here.
        window = asyncio.Semaphore(self.model_batch_size * max(2, chains.length))

        async def one(number: int, chunk: Chunk, link: Link) -> ChunkOutput:
            try:
                said = await link.before if link.before is not None else ""
                mine = dataclasses.replace(chunk, session_id=request_id, language=options.language)
                call = self.transcriber.transcribe.remote(mine, options, said or None)
                try:
                    result: ChunkResult = await _call(call, self.retry_after_s)
                except asyncio.CancelledError:
                    call.cancel()  # a chunk still queued for a batch leaves the queue
                    raise
            finally:
                window.release()
            if result.output is None:
                raise ApiError(500, f"the model failed: {result.error}", code="model_error")
            link.said.set_result(said_after(said, result.output))
            self.batch_sizes[result.batch_size] += 1
            if on_output is not None:
                on_output(number, result.output)
            return result.output

        tasks: list[asyncio.Task[ChunkOutput]] = []
        try:
            async with asyncio.TaskGroup() as group:
                async for chunk in stream:
                    if isinstance(chunk, Analysed):
                        started.analysed = _refuse(chunk)
                        continue
                    await window.acquire()
                    tasks.append(group.create_task(
                        one(len(tasks), chunk, chains.link(chunk.plan))))
        except BaseExceptionGroup as errors:
            # The first failure is the answer; the group cancelled the other chunks.
            _cancel(stream)
            raise errors.exceptions[0] from None
        except asyncio.CancelledError:
            _cancel(stream)
            raise
        return [task.result() for task in tasks]

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
        rss, peak = process_memory()
        return Stats(pid=os.getpid(), rss_bytes=rss, peak_rss_bytes=peak,
                     requests={str(k): v for k, v in sorted(self.statuses.items())},
                     chunks=sum(self.batch_sizes.values()),
                     batch_sizes=dict(sorted(self.batch_sizes.items())),
                     max_batch_size=max(self.batch_sizes, default=0),
                     language_seconds=dict(self.metrics.language_seconds))


@dataclass
class Link:
    """A chunk's place in its prompt chain: the chain's text before it, once the chunk
    before it is done (None: it starts a chain), and its own, to be set once it is."""

    before: asyncio.Future[str] | None
    said: asyncio.Future[str]


class PromptChains:
    """A request's prompt chains (:mod:`scribe.pipeline.chains`), as its chunks arrive in
    order: chunk ``k`` of a chain is prompted with the text of chunks ``0..k-1``, exactly
    as the batch job's chains prompt it, however the model's batches fall."""

    def __init__(self, options: TranscribeOptions) -> None:
        self.length = options.prompt_chain if options.condition_on_previous_text else 1
        self._last: tuple[ChunkPlan, asyncio.Future[str]] | None = None

    def link(self, plan: ChunkPlan) -> Link:
        """The link of the chunk planned as ``plan``, which follows every chunk linked
        before it."""
        said: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        before = self._last
        self._last = (plan, said)
        if before is not None and chained(before[0], plan, self.length):
            return Link(before[1], said)
        return Link(None, said)


def _refuse(analysed: Analysed) -> Analysed:
    """``analysed``, unless it says why the upload cannot be transcribed (then a 4xx)."""
    if analysed.error:
        raise ApiError(analysed.status, analysed.error, param="file", code=analysed.code)
    return analysed


def _cancel(stream: AsyncIterator[Any]) -> None:
    """Stop the preprocessor's stream of chunks: nobody will take the rest."""
    cancel = getattr(stream, "cancel", None)
    if cancel is not None:
        cancel()


def _data_url_bytes(url: str) -> bytes:
    """The bytes of a ``data:[type];base64,...`` URL; 400 for anything else."""
    header, comma, payload = url.partition(",")
    if not (comma and header.startswith("data:") and header.endswith(";base64")):
        raise ApiError(400, "known_speaker_references[]: each must be a base64 data URL "
                       "(data:audio/wav;base64,...)", param="known_speaker_references[]")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "known_speaker_references[]: the data URL is not valid base64",
                       param="known_speaker_references[]") from exc


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

