"""``scribe calibrate``'s choice: the fastest measured (k, batch) within the card's memory,
the single actor's memory line, and the whole table kept in the plan file."""

from __future__ import annotations

from pathlib import Path

import pytest

from scribe.capacity import calibrate, packing
from scribe.capacity.footprint import GiB, MiB
from scribe.capacity.harness import Measurement
from scribe.config import TranscribeOptions
from scribe.errors import PlanError

pytestmark = pytest.mark.unit

CARD = packing.GpuInfo(0, "RTX 3090", 24 * GiB, 24 * GiB)
OPTIONS = TranscribeOptions(model="large-v3", device="cuda", compute_type="float16").resolved()


def _run(k: int, batch: int, chunks_per_s: float, peak_gib: float,
         error: str = "") -> Measurement:
    return Measurement(k, batch, int(chunks_per_s * 10), 10.0, 90.0, int(peak_gib * GiB),
                       0, "NVML, per process", error)


def _table() -> list[Measurement]:
    # one actor: 4.5 GiB + 0.25 GiB per chunk; two actors pay, three at 16 do not fit
    return [_run(1, 8, 6.0, 6.5), _run(1, 16, 7.0, 8.5), _run(1, 32, 7.5, 12.5),
            _run(2, 8, 9.0, 6.5), _run(2, 16, 10.0, 8.5), _run(2, 32, 0, 0, "out of memory"),
            _run(3, 8, 9.5, 6.5), _run(3, 16, 12.0, 8.5)]


def test_the_plan_is_the_fastest_run_within_memory() -> None:
    plan = calibrate.plan_from(_table(), OPTIONS, CARD)
    assert plan.gpu is not None
    assert (plan.gpu.actors_per_gpu, plan.gpu.batch_size) == (2, 16), "3 x 8.5 GiB > 22.8"
    assert plan.gpu.throughput.startswith("measured: 10.00 chunks/s (RTFx 300, 1.43x")
    assert plan.gpu.source.startswith("measured here: RTX 3090")
    assert len(plan.throughput) == len(_table())


def test_the_memory_line_bounds_every_single_actor_peak() -> None:
    memory = calibrate.measured_memory(_table(), CARD, OPTIONS)
    assert memory.per_item == pytest.approx(0.25 * GiB, rel=0.01)
    for run in _table()[:3]:
        assert memory.peak(run.batch_size) >= run.actor_peak
        assert memory.peak(run.batch_size) <= run.actor_peak + 64 * MiB


def test_nothing_that_fits_is_an_error_that_says_why() -> None:
    failed = [_run(k, 8, 0, 0, "CUDA failed with error out of memory") for k in (1, 2)]
    with pytest.raises(PlanError, match="out of memory"):
        calibrate.plan_from(failed, OPTIONS, CARD)


def test_the_table_round_trips_through_the_plan_file(tmp_path: Path) -> None:
    plan = calibrate.plan_from(_table(), OPTIONS, CARD)
    back = packing.read_plan(packing.write_plan(plan, tmp_path / "plan.json"))
    assert back is not None and back.throughput == plan.throughput and back.gpu == plan.gpu
