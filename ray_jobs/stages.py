"""The Ray Data stages: callable classes whose ``__init__`` loads state and whose
``__call__(batch)`` maps rows through the engine's pure functions.

Batches are Arrow tables of :data:`ray_jobs.rows.SCHEMA`, one per session or chunk (see
:mod:`ray_jobs.rows`); a session with no speech, or one that failed, is a single row with
``n_chunks == 0`` that skips the model.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pyarrow as pa

from ray_jobs import rows
from ray_jobs.metrics import ModelMetrics, PreprocessMetrics
from ray_jobs.rows import Row
from scribe.config import TranscribeOptions
from scribe.errors import ScribeError, describe
from scribe.io.sessions import SessionRef
from scribe.pipeline.chunking import Chunk
from scribe.pipeline.preprocess import AnalysedSession, iter_chunks, open_input, plan_session
from scribe.pipeline.transcript import record_base
from scribe.pipeline.whisper import WhisperEngine
from scribe.schema import RecordBase

logger = logging.getLogger(__name__)


class Preprocessor:
    """CPU stage: one session in, its chunks out in blocks (or one error row).

    A generator: a 3-hour session's ~360 chunks leave in blocks of ``rows_per_block`` (the
    model batch) as VAD finds them and their features are computed, so the model actors
    start on a long session before its audio is all searched, the actor never holds all
    its features, and its blocks go to whichever model actor is free. A block leaves once
    a chunk after it is planned, so that only the last block, which carries the count, is
    held until the session's end. Every block is padded with
    filler rows to a multiple of ``align`` rows (the prompt chain when chunks are
    conditioned on the text before them), so that the model stage's batches, a multiple
    of it too, never cut a chain. ``vad_threads`` search a session's VAD windows at once
    (:func:`scribe.pipeline.vad.speech_windows`)."""

    # Preprocessing shares the cores with the model actors' threads (it needs a few percent
    # of their CPU time): at a lower priority it fills their idle moments instead of
    # preempting a CTranslate2 thread, which stalls the whole batch until it runs again.
    # Ray starts its workers at nice 15 (RAY_worker_niceness), so this lands at 19, the
    # lowest; under full load it still gets a share (kernel weight 15, each model actor 36).
    NICENESS = 10

    def __init__(self, options: TranscribeOptions, n_mels: int, model: str,
                 rows_per_block: int = 8, align: int = 1, vad_threads: int = 1) -> None:
        os.nice(self.NICENESS)  # this actor's own worker process: nothing else is affected
        self.options = options
        self.vad_threads = vad_threads
        self.rows_per_block = rows_per_block
        self.align = align
        self.n_mels = n_mels
        self.model = model
        self.metrics = PreprocessMetrics()

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        """``batch``: sessions as :meth:`SessionRef.to_dict` rows."""
        for ref in map(SessionRef.from_dict, batch.to_pylist()):
            for block in self._session_blocks(ref):
                fillers = -len(block) % self.align
                yield rows.encode(block + [rows.filler_row(block[0]["session"])
                                           for _ in range(fillers)])

    def _session_blocks(self, ref: SessionRef) -> Iterator[list[Row]]:
        options = ref.options_for(self.options)  # the manifest's values win over the job's

        def base(analysis: AnalysedSession | None = None) -> RecordBase:
            return record_base(ref.session_id, model=self.model, uri=ref.uri,
                               language=ref.language, analysis=analysis, options=options)

        try:
            session = open_input(ref.uri, options, size=ref.size)
        except Exception as exc:  # any failure is this session's error record, never the job's
            yield [_error_row(base(), exc)]
            return
        try:
            yield from self._chunk_blocks(base, session, options)
        except Exception as exc:
            yield [_error_row(base(session), exc)]

    def _chunk_blocks(self, base: Callable[[AnalysedSession], RecordBase],
                      session: AnalysedSession, options: TranscribeOptions
                      ) -> Iterator[list[Row]]:
        waiting: list[tuple[Chunk, float]] = []  # chunks and their features' seconds
        try:
            for plans in plan_session(session, options, vad_threads=self.vad_threads):
                started = time.perf_counter()
                for chunk in iter_chunks(session, self.n_mels, plans):
                    features_s = time.perf_counter() - started
                    self.metrics.stage("features", features_s)
                    waiting.append((chunk, features_s))
                    if len(waiting) > self.rows_per_block:
                        so_far = base(session)
                        yield [rows.chunk_row(so_far, c, n_chunks=rows.COUNT_UNKNOWN,
                                              features_s=f)
                               for c, f in waiting[:self.rows_per_block]]
                        del waiting[:self.rows_per_block]
                    started = time.perf_counter()
        finally:
            # a session that fails part-way was decoded all the same, and its steps took
            # their time; features were counted chunk by chunk, above
            self.metrics.session(session.duration_s, {stage: seconds for stage, seconds
                                                      in session.timings.items()
                                                      if stage != "features"})
        analysed = base(session)
        if not session.plans:
            yield [rows.session_row(analysed)]
            return
        yield [rows.chunk_row(analysed, c, n_chunks=len(session.plans), features_s=f)
               for c, f in waiting]


def _error_row(base: RecordBase, exc: Exception) -> Row:
    if not isinstance(exc, ScribeError):
        logger.error("unexpected error preprocessing session %s", base["session_id"],
                     exc_info=exc)
    return rows.session_row(base, describe(exc))


class Transcriber:
    """Model stage: a batch of chunks from any sessions through one model call. With
    ``workers`` model replicas, Ray Data runs that many calls at once, one on each."""

    def __init__(self, options: TranscribeOptions, cpu_threads: int = 0,
                 batch_size: int | None = None, workers: int = 1) -> None:
        started = time.time()
        self.engine = WhisperEngine(options, cpu_threads=cpu_threads, workers=workers)
        self.batch_size = batch_size  # per model call, when a call decodes prompt chains
        self.n_mels = self.engine.n_mels
        self.metrics = ModelMetrics()
        self.actor = actor_identity(started)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Reads the chunks' features, places and sessions; writes their results with
        Arrow column operations, the other columns passing through untouched."""
        chunks = rows.model_inputs(batch)
        if not chunks:
            return batch
        items = list(chunks.values())
        sessions = len({item.session_id for item in items})
        per_call = self.engine.chunks_per_call(len(items), batch_size=self.batch_size)
        start = time.perf_counter()
        outputs = self.engine.transcribe(items, batch_size=self.batch_size)
        self.metrics.batch([item.plan.duration_s for item in items], start,
                           time.perf_counter(), per_call)
        return rows.with_outputs(batch, dict(zip(chunks, outputs, strict=True)),
                                 batch_size=per_call, batch_sessions=sessions,
                                 actor=self.actor)


def actor_identity(started: float) -> rows.ActorIdentity:
    """This model actor's id, node and GPUs (the summary counts them and bills what they
    held from ``started``); outside Ray, none: asking Ray's runtime context there would
    start a local Ray."""
    import ray

    if not ray.is_initialized():
        return rows.ActorIdentity()
    context = ray.get_runtime_context()
    actor = context.get_actor_id()
    if actor is None:  # a driver running the stage in-process holds no actor's resources
        return rows.ActorIdentity()
    held = context.get_assigned_resources()  # type: ignore[no-untyped-call]
    return rows.ActorIdentity(actor=actor, node=context.get_node_id(),
                              actor_gpus=float(held.get("GPU", 0.0)), actor_started=started)


class StageClasses(NamedTuple):
    """The classes the job's two Ray Data stages run. Another pair that takes the same
    constructor arguments and maps the same rows (:data:`ray_jobs.rows.SCHEMA`) may stand
    in for them: benchmarks/scale.py measures the driver with stages of known speed."""

    preprocess: type
    model: type


JOB_STAGES = StageClasses(Preprocessor, Transcriber)
