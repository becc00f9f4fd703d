"""The CPU plan from measurements: time the real model on real chunks at several batch
sizes and thread counts, and plan the actors that give the most chunks per second.

What a random-weights model hides: real text has real lengths, and a batch pays when its
chunks decode together (the issue's 12-minute session: model stage 80.6 s at batch 1,
50.4 s at batch 8, same text). Only timing the real model shows where it flattens.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scribe.capacity.packing import CpuPlan
from scribe.config import TranscribeOptions
from scribe.pipeline.chunking import Chunk
from scribe.pipeline.whisper import WhisperEngine

logger = logging.getLogger(__name__)

BATCH_SIZES = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class CpuTiming:
    """``actors`` actors of ``threads`` threads each, side by side at ``batch_size``: the
    chunks per second they transcribed together."""

    threads: int
    actors: int
    batch_size: int
    chunks_per_s: float


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


def measure(options: TranscribeOptions, chunks: Sequence[Chunk], *, cores: int,
            threads: Sequence[int], batch_sizes: Sequence[int] = BATCH_SIZES,
            repeats: int = 1) -> list[CpuTiming]:
    """For each thread count, ``cores // threads`` engines run side by side (as the job's
    actors would) on the same ``max(batch_sizes)`` chunks (cycled from ``chunks``) at each
    batch size. The best of ``repeats`` runs counts: on a shared machine only the fastest
    run is free of other people's work. Each chunk is timed as a session of its own, so
    a batch is one model call without prompts (the text before a chunk adds about the same
    share of time at every batch size)."""
    if not chunks:
        raise ValueError("no chunks to time: the audio held no speech")
    work = [dataclasses.replace(chunks[i % len(chunks)], session_id=str(i))
            for i in range(max(batch_sizes))]
    timings = []
    for count in threads:
        engines = [WhisperEngine(options, cpu_threads=count)
                   for _ in range(max(1, cores // count))]
        for engine in engines:
            engine.transcribe(work[:1])  # the first call allocates; keep it out of the timing
        for batch in batch_sizes:
            best = min(_side_by_side(engines, work, batch) for _ in range(repeats))
            timings.append(CpuTiming(count, len(engines), batch,
                                     len(engines) * len(work) / best))
            logger.info("%d x %d thread(s), batch %d: %.2f chunks/s", len(engines), count,
                        batch, timings[-1].chunks_per_s)
    return timings


def _side_by_side(engines: Sequence[WhisperEngine], work: Sequence[Chunk],
                  batch: int) -> float:
    """Seconds for every engine to transcribe ``work`` at ``batch``, all at once
    (CTranslate2 releases the GIL, so threads run the engines in parallel)."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(engines)) as pool:
        list(pool.map(lambda engine: _run(engine, work, batch), engines))
    return time.perf_counter() - start


def _run(engine: WhisperEngine, work: Sequence[Chunk], batch: int) -> None:
    for i in range(0, len(work), batch):
        engine.transcribe(work[i:i + batch], batch_size=batch)


def plan_from(cores: int, timings: Sequence[CpuTiming]) -> CpuPlan:
    """The shape with the most chunks per second on ``cores`` cores."""
    best = max(timings, key=lambda t: t.chunks_per_s)
    table = [{"threads": t.threads, "actors": t.actors, "batch_size": t.batch_size,
              "chunks_per_s": round(t.chunks_per_s, 3)} for t in timings]
    return CpuPlan(cores, best.actors, best.threads, best.batch_size, measured=table)


def timings_text(plan: CpuPlan) -> str:
    """The measured table, the chosen row marked."""
    lines = [f"{'actors x threads':>16} {'batch':>5} {'chunks/s':>9}"]
    for row in plan.measured:
        mark = "  <- planned" if (row["threads"], row["batch_size"]) == (
            plan.threads_per_actor, plan.batch_size) else ""
        shape = f"{row['actors']:g} x {row['threads']:g}"
        lines.append(f"{shape:>16} {row['batch_size']:>5g} {row['chunks_per_s']:>9.3f}{mark}")
    return "\n".join(lines)
