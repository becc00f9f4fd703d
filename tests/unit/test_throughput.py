"""k engine processes sharing one device: the harness that ``scribe calibrate`` and the GPU
check share, run for real on CPU with the random-weight tiny model."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from scribe.capacity import throughput
from scribe.capacity.throughput import Measurement
from scribe.config import TranscribeOptions

pytestmark = pytest.mark.unit


def test_the_fastest_run_is_chosen_among_those_that_fit() -> None:
    table = [Measurement(1, 8, 80, 10.0, 50.0, 1000, 0, "x"),
             Measurement(2, 8, 150, 10.0, 50.0, 1000, 0, "x"),
             Measurement(3, 8, 200, 10.0, 50.0, 1000, 0, "x"),
             Measurement(4, 8, 0, 0.0, 0.0, 0, 0, "", "out of memory")]
    assert throughput.fastest_within(table, budget=2500) == table[1]
    assert throughput.fastest_within(table, budget=500) is None
    assert table[1].rtfx == pytest.approx(15.0 * throughput.CHUNK_S)


@pytest.mark.slow
def test_two_processes_share_the_device_and_report_each_batch(
        test_options: TranscribeOptions) -> None:
    # test_options: no temperature fallback, which random weights would take on every chunk
    options = test_options.model_copy(update={"max_new_tokens": 4, "language": "en"})
    table = throughput.measure(options, actors=(1, 2), batch_sizes=(2, 1), rounds=1,
                               cpu_threads=1)
    assert [(m.actors, m.batch_size) for m in table] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for m in table:
        assert not m.error and m.chunks == m.actors * m.batch_size and m.wall_s > 0
        assert m.actor_peak > 50 * 1024**2 and m.memory_source.startswith("process peak RSS")
    text = throughput.measurements_text(table)
    assert text.count("\n") == 4 and "1.00x" in text


def test_an_actor_that_fails_ends_its_runs_with_the_reason(tmp_path: Path) -> None:
    options = TranscribeOptions(model=str(tmp_path), device="cpu", compute_type="int8")
    table = throughput.measure(options, actors=(2,), batch_sizes=(1, 4), rounds=1)
    assert [(m.actors, m.batch_size) for m in table] == [(2, 1), (2, 4)]
    assert all("lacks model.bin" in m.error and m.chunks == 0 for m in table)
    assert "failed: ModelLoadError" in throughput.measurements_text(table)


def test_an_actor_that_dies_breaks_the_barrier_instead_of_hanging() -> None:
    barrier = multiprocessing.get_context("spawn").Barrier(2, timeout=60)
    crashed = SimpleNamespace(exitcode=-11)  # what a segfault in native code leaves
    started = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        throughput._meet(barrier, 1, [crashed])
    assert time.monotonic() - started < 5
