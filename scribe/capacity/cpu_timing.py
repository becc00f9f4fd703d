"""The thread runner of the calibration harness (:mod:`scribe.capacity.harness`): the real
model on real chunks, k engines as threads of this process at several batch sizes and
thread counts, for the CPU plan (:func:`scribe.capacity.calibrate.calibrate_cpu`).

What a random-weights model hides: real text has real lengths, and a batch pays when its
chunks decode together (the issue's 12-minute session: model stage 80.6 s at batch 1,
50.4 s at batch 8, same text). Only timing the real model shows where it flattens.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Iterable, Sequence

from scribe.capacity.harness import Measurement
from scribe.config import TranscribeOptions
from scribe.pipeline.chunking import Chunk
from scribe.pipeline.whisper import WhisperEngine

BATCH_SIZES = (1, 2, 4, 8, 16)


def thread_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to ``cores``, and ``cores`` itself."""
    counts = [t for t in (1, 2, 4, 8, 16) if t < cores]
    return [*counts, cores]


def sample_chunks(paths: Iterable[str], options: TranscribeOptions, n_mels: int
                  ) -> list[Chunk]:
    """The chunks the job would make of ``paths`` (decode, VAD, chunking, features)."""
    from scribe.pipeline.preprocess import preprocess

    chunks: list[Chunk] = []
    for path in paths:
        session = preprocess(path, options, n_mels)
        chunks += [dataclasses.replace(c, session_id=path) for c in session.chunks]
    return chunks


def shapes(cores: int, threads: Sequence[int]) -> list[tuple[int, int]]:
    """(replicas, threads) for each thread count: as many replicas as fill ``cores``."""
    return [(max(1, cores // count), count) for count in threads]


class ThreadRunner:
    """Engines as threads of this process on the same ``max(batch_sizes)`` chunks (cycled
    from ``chunks``) at each batch size. The best of ``repeats`` runs counts: on a shared
    machine only the fastest run is free of other people's work. Each chunk is timed as a
    session of its own, so a batch is one model call without prompts (the text before a
    chunk adds about the same share of time at every batch size). Memory is not measured:
    the engines share one process."""

    def __init__(self, options: TranscribeOptions, chunks: Sequence[Chunk], *,
                 repeats: int = 1) -> None:
        if not chunks:
            raise ValueError("no chunks to time: the audio held no speech")
        self.options, self.chunks, self.repeats = options, chunks, repeats

    def run(self, actors: int, threads: int, batch_sizes: Sequence[int]
            ) -> list[Measurement]:
        """``actors`` engines of ``threads`` threads each, side by side, at each batch."""
        work = [dataclasses.replace(self.chunks[i % len(self.chunks)], session_id=str(i))
                for i in range(max(batch_sizes))]
        chunk_s = sum(c.plan.duration_s for c in work) / len(work)
        engines = [WhisperEngine(self.options, cpu_threads=threads) for _ in range(actors)]
        for engine in engines:
            engine.transcribe(work[:1])  # the first call allocates; keep it out of the timing
        rows = []
        for batch in batch_sizes:
            best, tokens = min(_side_by_side(engines, work, batch)
                               for _ in range(self.repeats))
            chunks = len(engines) * len(work)
            rows.append(Measurement(len(engines), batch, chunks, best, tokens / chunks, 0, 0,
                                    "", threads=threads, chunk_s=chunk_s))
        return rows


def _side_by_side(engines: Sequence[WhisperEngine], work: Sequence[Chunk],
                  batch: int) -> tuple[float, int]:
    """Seconds for every engine to transcribe ``work`` at ``batch``, all at once
    (CTranslate2 releases the GIL, so threads run the engines in parallel), and the
    tokens they decoded."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(engines)) as pool:
        tokens = sum(pool.map(lambda engine: _run(engine, work, batch), engines))
    return time.perf_counter() - start, tokens


def _run(engine: WhisperEngine, work: Sequence[Chunk], batch: int) -> int:
    return sum(len(s["tokens"]) for i in range(0, len(work), batch)
               for out in engine.transcribe(work[i:i + batch], batch_size=batch)
               for s in out.segments)
