"""One calibration harness, two runners: the thread runner (real chunks, the CPU plan) and
the process runner (engines at a barrier, the GPU plan) both hand rows of one type to one
loop, one table and one plan choice. Run for real on CPU with the random-weight tiny model."""

from __future__ import annotations

import dataclasses

import pytest

from scribe.capacity import calibrate, cpu_timing, harness, packing, throughput
from scribe.config import TranscribeOptions
from scribe.errors import PlanError
from scribe.pipeline.chunking import Chunk, ChunkPlan
from scribe.pipeline.whisper import model_n_mels

pytestmark = pytest.mark.unit


def _chunks(model: str, n: int) -> list[Chunk]:
    features = throughput.synthetic_features(model_n_mels(model))
    plan = ChunkPlan(index=0, offset_s=0.0, duration_s=20.0, ranges=[])
    return [Chunk(plan=dataclasses.replace(plan, index=i), features=features,
                  session_id=str(i)) for i in range(n)]


def test_both_runners_feed_one_table_and_one_plan_choice(
        test_options: TranscribeOptions) -> None:
    options = test_options.model_copy(update={"max_new_tokens": 4, "language": "en"})
    assert options.model is not None
    threads = harness.measure(cpu_timing.ThreadRunner(options, _chunks(options.model, 1)),
                              [(2, 1)], batch_sizes=(2, 1))
    processes = harness.measure(throughput.ProcessRunner(options, rounds=1), [(1, 1)],
                                batch_sizes=(1,))
    assert [(m.actors, m.threads, m.batch_size) for m in threads] == [(2, 1, 1), (2, 1, 2)]
    assert [(m.actors, m.threads, m.batch_size) for m in processes] == [(1, 1, 1)]
    for m in threads + processes:
        assert type(m) is harness.Measurement and not m.error and m.chunks_per_s > 0
    assert {m.chunk_s for m in threads} == {20.0}, "real chunks: their own audio length"
    assert processes[0].chunk_s == harness.CHUNK_S
    assert processes[0].memory_source.startswith("process peak RSS")

    table = threads + processes
    best = harness.fastest_within(table)
    assert best == max(table, key=lambda m: m.chunks_per_s)
    cpu = calibrate.cpu_plan_from(2, table)
    assert (cpu.actors, cpu.threads_per_actor, cpu.batch_size) == (
        best.actors, best.threads, best.batch_size)
    assert len(cpu.measured) == 3
    plan = packing.PackingPlan(device="cpu", cpu=cpu, throughput=tuple(table))
    text = calibrate.plan_table(plan)
    assert text.count("\n") == 3 and text.count("<- planned") == 1
    assert "2 x 1" in text and "1 x 1" in text


def test_the_planned_row_is_marked_once_in_either_plan() -> None:
    gib = 1024**3
    rows = [harness.Measurement(k, b, 10 * k * b, 10.0, 9.0, 2 * gib, 0, "NVML, per process")
            for k in (1, 2) for b in (4, 8)]
    card = packing.GpuInfo(0, "card", 24 * gib, 24 * gib)
    options = TranscribeOptions(model="large-v3", device="cuda",
                                compute_type="float16").resolved()
    gpu = calibrate.plan_from(rows, options, card)
    assert gpu.gpu is not None and (gpu.gpu.actors_per_gpu, gpu.gpu.batch_size) == (2, 8)
    assert calibrate.plan_table(gpu).splitlines()[-1].endswith("<- planned")
    cpu = calibrate.cpu_plan_from(4, rows)
    assert (cpu.actors, cpu.batch_size) == (2, 8)
    text = calibrate.plan_table(packing.PackingPlan(device="cpu", cpu=cpu,
                                                    throughput=tuple(rows)))
    assert text.count("<- planned") == 1


def test_a_table_with_no_successful_run_plans_nothing() -> None:
    failed = [harness.Measurement(1, 8, 0, 0.0, 0.0, 0, 0, "", "out of memory")]
    assert harness.fastest_within(failed) is None
    with pytest.raises(PlanError, match="out of memory"):
        calibrate.cpu_plan_from(2, failed)
