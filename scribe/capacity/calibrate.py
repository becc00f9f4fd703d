"""``scribe calibrate``: on a GPU, measure k = 1..4 actors sharing the card at a few batch
sizes and plan the fastest that fits, keeping the whole table in the plan file
(:func:`calibrate_gpu`, processes at a barrier: :mod:`scribe.capacity.throughput`); with no
GPU, time replicas x threads x batch sizes on real chunks and plan the fastest
(:func:`calibrate_cpu`, threads: :mod:`scribe.capacity.cpu_timing`).

Memory alone says how many actors fit; it cannot say how many pay, since actors sharing a
card compete for it (faster-whisper #1192). So the plan takes the measured fastest, and
the memory model the job falls back on is fitted to the single actor's measured peaks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from scribe.capacity import cpu_timing, throughput
from scribe.capacity.footprint import MemoryModel
from scribe.capacity.packing import GpuInfo, GpuPlan, PackingPlan, cpu_cores, headroom
from scribe.capacity.throughput import Measurement
from scribe.config import TranscribeOptions
from scribe.errors import PlanError
from scribe.pipeline.chunking import Chunk

ACTORS = (1, 2, 3, 4)
BATCH_SIZES = (8, 16, 32)


def calibrate_gpu(options: TranscribeOptions, gpu: GpuInfo, *,
                  actors: Sequence[int] = ACTORS, batch_sizes: Sequence[int] = BATCH_SIZES,
                  rounds: int = 3) -> PackingPlan:
    """Measure every (k, batch) on ``gpu`` and plan the fastest within its free memory.
    Needs the card to itself."""
    opts = options.model_copy(update={"device": "cuda"}).resolved()
    table = throughput.measure(opts, actors=actors, batch_sizes=batch_sizes, rounds=rounds,
                               gpu_index=gpu.index)
    return plan_from(table, opts, gpu)


def calibrate_cpu(options: TranscribeOptions, chunks: Sequence[Chunk], *,
                  batch_sizes: Sequence[int], threads: Sequence[int] | None = None
                  ) -> PackingPlan:
    """Time ``chunks`` (:func:`scribe.capacity.cpu_timing.sample_chunks`) through the
    model at each of ``batch_sizes`` and replica thread counts (default: this machine's
    :func:`~scribe.capacity.cpu_timing.thread_counts`), and plan the fastest."""
    cores = cpu_cores()
    timings = cpu_timing.measure(options, chunks, cores=cores,
                                 threads=threads or cpu_timing.thread_counts(cores),
                                 batch_sizes=batch_sizes)
    return PackingPlan(device="cpu", cpu=cpu_timing.plan_from(cores, timings))


def plan_from(table: Sequence[Measurement], options: TranscribeOptions,
              gpu: GpuInfo) -> PackingPlan:
    """The plan a measured ``table`` gives: its fastest run within the card's budget."""
    assert options.model is not None and options.compute_type is not None
    budget = min(gpu.total, gpu.free) - headroom(gpu.total)
    best = throughput.fastest_within(table, budget)
    if best is None:
        errors = sorted({m.error for m in table if m.error}) or ["none fit the budget"]
        raise PlanError(f"no measured run of {options.model} fits {gpu.name}: "
                        f"{'; '.join(errors)}")
    memory = measured_memory(table, gpu, options)
    plan = GpuPlan(options.model, options.compute_type, gpu.name, gpu.total, budget,
                   best.actors, best.batch_size, best.actor_peak, memory.source,
                   throughput=describe(best, table))
    return PackingPlan(device="cuda", gpu=plan, memory=memory, throughput=tuple(table))


def measured_memory(table: Sequence[Measurement], gpu: GpuInfo,
                    options: TranscribeOptions) -> MemoryModel:
    """``fixed + batch * per_item``: the least-squares line through one actor's peaks."""
    solo = [(m.batch_size, m.actor_peak) for m in table if m.actors == 1 and not m.error]
    if not solo:
        raise PlanError("no single-actor run succeeded: nothing to fit the memory model to")
    mean_b = sum(b for b, _ in solo) / len(solo)
    mean_p = sum(p for _, p in solo) / len(solo)
    spread = sum((b - mean_b) ** 2 for b, _ in solo)
    slope = sum((b - mean_b) * (p - mean_p) for b, p in solo) / spread if spread else 0.0
    per_item = max(0, int(slope))
    fixed = int(max(p - b * per_item for b, p in solo))  # never below a measured peak
    return MemoryModel(fixed, per_item, f"measured here: {gpu.name}, {options.compute_type}, "
                       f"beam {options.beam_size}, {time.strftime('%Y-%m-%d')}")


def describe(best: Measurement, table: Sequence[Measurement]) -> str:
    """The throughput line of the plan: the chosen run beside one actor at its batch."""
    solo = next((m for m in table if (m.actors, m.batch_size) == (1, best.batch_size)
                 and not m.error), None)
    versus = f", {best.rtfx / solo.rtfx:.2f}x one actor's" if solo and solo.rtfx else ""
    return (f"measured: {best.chunks_per_s:.2f} chunks/s (RTFx {best.rtfx:.0f}{versus}), "
            f"the fastest of {len(table)} runs within memory")
