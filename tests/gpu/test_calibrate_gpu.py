"""``scribe calibrate`` on a CUDA GPU: k actors share the card, NVML reads their memory,
and the plan is the fastest measured run. Skipped without a GPU."""

from __future__ import annotations

import pytest

from scribe.capacity import calibrate, packing
from scribe.config import TranscribeOptions

pytestmark = pytest.mark.gpu


def test_calibrate_measures_actors_sharing_the_card(tiny_model: str) -> None:
    gpus = packing.read_gpus()
    if not gpus:
        pytest.skip("CTranslate2 sees a GPU but NVML does not")
    options = TranscribeOptions(model=tiny_model, compute_type="float16", beam_size=1,
                                max_new_tokens=8, language="en")
    plan = calibrate.calibrate_gpu(options, gpus[0], actors=(1, 2), batch_sizes=(1, 4),
                                   rounds=1)
    assert plan.gpu is not None and plan.gpu.actors_per_gpu in (1, 2)
    assert [(m.actors, m.batch_size) for m in plan.throughput] == [(1, 1), (1, 4), (2, 1),
                                                                    (2, 4)]
    assert all(m.memory_source.startswith("NVML") and m.actor_peak > 0
               for m in plan.throughput)
    best = max(plan.throughput, key=lambda m: m.chunks_per_s)
    assert plan.gpu.throughput.startswith(f"measured: {best.chunks_per_s:.2f} chunks/s")
