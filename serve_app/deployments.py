"""The two model-side deployments, wrapping the engine classes the batch job uses.

:class:`PreprocessorReplica` (CPU) turns an upload into chunk features;
:class:`TranscriberReplica` (a fraction of a GPU, or one CPU) runs chunks through the model
in dynamic batches that mix chunks of every request in flight. The deployments keep the
names ``Preprocessor`` and ``Transcriber`` (the config file's); the classes are their
replicas, named apart from the batch job's stages (:mod:`ray_jobs.stages`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ray import serve

from scribe.config import ResourceConfig, TranscribeOptions
from scribe.errors import ScribeError, describe
from scribe.pipeline.chunking import Chunk, ChunkOutput
from scribe.pipeline.preprocess import AnalysedSession, iter_chunks, open_input, plan_session
from scribe.pipeline.whisper import WhisperEngine
from scribe.schema import Analysis
from serve_app.metrics import batch_histogram

logger = logging.getLogger(__name__)

# Uploads past this size go from memory to a temporary file before decoding.
_SPOOL_BYTES = 16 * 1024 * 1024


@dataclass(kw_only=True)
class Analysed(Analysis):
    """The preprocessor's message of what it knows of an upload (the :class:`Analysis`
    the record takes), or why it cannot go on (``error`` set, ``status`` 4xx).

    A request's stream starts with one as soon as the audio is decoded (``planned``
    false: duration, source and warnings known, speech duration and chunk count not yet),
    its chunks follow as they are planned, and a last one (``planned`` true) carries the
    whole analysis once every chunk is."""

    planned: bool = True
    n_chunks: int = 0
    error: str | None = None
    code: str | None = None
    status: int = 200


@dataclass
class KnownVoices:
    """Known speakers' reference embeddings, in the request's order, or why a clip is
    unusable (``error`` names the clip)."""

    embeddings: list[list[float]] = field(default_factory=list)
    error: str | None = None


# One chunk for the model: the chunk, its request's options, its prompt (or None).
Queued = tuple[Chunk, TranscribeOptions, str | None]


@dataclass
class ChunkResult:
    """The model's output for one chunk (or why there is none), and the size of the batch
    it ran in."""

    output: ChunkOutput | None
    batch_size: int
    error: str | None = None


class PreprocessorReplica:
    """CPU: decode, resample, trim, VAD, chunk and log-mel, as in the batch job."""

    def __init__(self, n_mels: int) -> None:
        self.n_mels = n_mels

    async def ready(self) -> bool:
        """Answers only when this replica is up: the readiness probe's ping."""
        return True

    async def prepare(self, pieces: Sequence[Any], options: TranscribeOptions
                      ) -> AsyncIterator[Analysed | Chunk]:
        """Decode the upload held in ``pieces`` (object refs to its bytes, in order);
        yield an :class:`Analysed` of the decoded audio, then each chunk as it is planned
        and its features computed, then the whole :class:`Analysed` (or the failure).

        A stream, so the first chunks reach the model while later ones are still being
        featurised, and no side holds a long session's features all at once. Mono
        without speaker labels is planned as VAD searches it window by window
        (:func:`scribe.pipeline.preprocess.plan_session`): a long upload's first chunks
        leave after its first window, not after the whole upload is searched. Split
        channels, or voices to embed, are planned whole before their first chunk.
        """
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as upload:
            for piece in pieces:
                upload.write(await piece)
            try:
                session = await asyncio.to_thread(open_input, upload, options)
            except ScribeError as exc:
                yield _failure(exc)
                return
        yield _analysis(session, planned=False)
        try:
            async for chunk in self._chunks(session, options):
                yield chunk
        except ScribeError as exc:
            yield _failure(exc)
            return
        yield _analysis(session, planned=True)

    async def _chunks(self, session: AnalysedSession, options: TranscribeOptions
                      ) -> AsyncIterator[Chunk]:
        """The session's chunks with their features, planned and computed off the event
        loop one step at a time, as they are consumed. Each leaves as soon as it is made:
        prompt chains are kept by the ingress, which sends a chunk with its chain's text
        (:meth:`serve_app.frontend.Frontend.model`), so where VAD's windows fall changes
        nothing in the text."""
        batches = plan_session(session, options)
        while (plans := await asyncio.to_thread(next, batches, None)) is not None:
            chunks = iter_chunks(session, self.n_mels, plans)
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield chunk

    async def known_voices(self, clips: Sequence[bytes], options: TranscribeOptions
                           ) -> KnownVoices:
        """Each known speaker's reference clip embedded, on this CPU replica."""
        from scribe.pipeline.speakers.voices import reference_embedding

        found = KnownVoices()
        for number, clip in enumerate(clips):
            try:
                found.embeddings.append(
                    await asyncio.to_thread(reference_embedding, io.BytesIO(clip), options))
            except ScribeError as exc:
                return KnownVoices(error=f"clip {number + 1}: {exc}")
        return found


def _analysis(session: AnalysedSession, *, planned: bool) -> Analysed:
    """What is known of ``session``; its speech and chunks only once ``planned``."""
    return Analysed(planned=planned, duration_s=session.duration_s,
                    speech_duration_s=session.speech_duration_s if planned else 0.0,
                    n_chunks=len(session.plans) if planned else 0,
                    timings=dict(session.timings), warnings=list(session.warnings),
                    source=dict(session.source))


def _failure(error: ScribeError) -> Analysed:
    return Analysed(error=str(error), code=error.code, status=error.http_status)


def options_key(options: TranscribeOptions) -> TranscribeOptions:
    """What must be equal for chunks to share one ``generate`` call.

    Language differs per item (each chunk carries its own). The prompt stays in the key:
    CTranslate2 needs ``<|startoftranscript|>`` at one position across a batch, so prompts
    of different token counts cannot share a call.
    """
    return options.model_copy(update={"language": None})


class TranscriberReplica:
    """The model: one faster-whisper instance, fed by ``@serve.batch`` across requests."""

    def __init__(self, options: TranscribeOptions, resources: ResourceConfig,
                 batch_wait_timeout_s: float) -> None:
        self.engine = WhisperEngine(options, cpu_threads=resources.cpu_threads)
        control: Any = self._batch  # serve.batch's wrapper carries its setters
        control.set_max_batch_size(resources.model_batch_size)
        self._batch_control = control
        self._idle_wait_s = batch_wait_timeout_s
        self._busy_until = 0.0  # when the running model call should end (monotonic)
        self._call_s = 0.0  # recent model call duration, smoothed
        self._batch_sizes = batch_histogram()
        self._chunks_run = 0

    async def ready(self) -> bool:
        """Answers only when this replica is up: the readiness probe's ping."""
        return True

    async def chunks_run(self) -> int:
        """Chunks this replica has put through the model: whether the chunks of a request
        that was given up on (a client gone mid-stream) still ran, for operators and tests."""
        return self._chunks_run

    async def transcribe(self, chunk: Chunk, options: TranscribeOptions,
                         prompt: str | None = None) -> ChunkResult:
        """One chunk with its request's options and its prompt (the text of its prompt
        chain before it, or None); concurrent calls are gathered into one model batch.
        The prompt comes with the chunk, so its text does not depend on what else is in
        the batch."""
        # serve.batch closes a batch batch_wait_timeout_s after its first chunk arrives and
        # queues it behind the running one. Under load that cuts the chunks arriving during
        # a model call into many tiny batches. A chunk arriving while the model is busy
        # therefore sets the wait to the rest of that call: the next batch takes
        # everything that came meanwhile (up to max_batch_size) and starts as it ends.
        remaining = self._busy_until - time.monotonic()
        self._batch_control.set_batch_wait_timeout_s(max(self._idle_wait_s, remaining))
        result: ChunkResult = await self._batch((chunk, options, prompt))
        return result

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def _batch(self, jobs: list[Queued]) -> list[ChunkResult]:
        start = time.monotonic()
        self._busy_until = start + self._call_s
        try:
            # The model call blocks for seconds: off the event loop, so the replica keeps
            # accepting the chunks that will form the next batch.
            results = await asyncio.to_thread(self._run, jobs)
        finally:
            elapsed = time.monotonic() - start
            self._call_s = elapsed if not self._call_s else 0.7 * self._call_s + 0.3 * elapsed
            self._busy_until = 0.0
        self._batch_sizes.observe(len(jobs))
        self._chunks_run += len(jobs)
        return results

    def _run(self, jobs: list[Queued]) -> list[ChunkResult]:
        groups: defaultdict[TranscribeOptions, list[int]] = defaultdict(list)
        for i, (_, options, _) in enumerate(jobs):
            groups[options_key(options)].append(i)
        results = [ChunkResult(output=None, batch_size=len(jobs))] * len(jobs)
        for indices in groups.values():
            for i, result in zip(indices, self._run_group(jobs, indices), strict=True):
                results[i] = result
        return results

    def _run_group(self, jobs: list[Queued], indices: list[int]
                   ) -> list[ChunkResult]:
        items = [jobs[i][0] for i in indices]
        try:
            outputs = self.engine.transcribe(items, jobs[indices[0]][1],
                                             prompts=[jobs[i][2] for i in indices])
        except Exception as exc:  # one group's failure must not fail the others
            logger.exception("model call failed for %d chunks", len(items))
            return [ChunkResult(output=None, batch_size=len(jobs), error=describe(exc))
                    for _ in items]
        return [ChunkResult(output=out, batch_size=len(jobs)) for out in outputs]


# Deployment objects apart from the classes, so type checkers still see the classes.
PreprocessorDeployment = serve.deployment(
    name="Preprocessor", max_ongoing_requests=4, ray_actor_options={"num_cpus": 1},
)(PreprocessorReplica)
TranscriberDeployment = serve.deployment(
    name="Transcriber", max_ongoing_requests=32, ray_actor_options={"num_cpus": 1},
)(TranscriberReplica)
