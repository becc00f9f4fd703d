"""The simulated GPU layout: asked for by name, computing on CPU, refused where a node has
a real GPU unless asked."""

from __future__ import annotations

import pytest

from ray_jobs.transcribe import parse_args
from scribe.capacity import simulation
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.errors import PlanError

pytestmark = pytest.mark.unit

GPU = TranscribeOptions(model="/models/x", device="cuda", condition_on_previous_text=False)


def test_simulated_gpus_are_asked_for_by_name_and_compute_on_cpu() -> None:
    job = parse_args(["--input", "/a", "--output", "/b", "--simulated-gpus", "on"])
    assert job.resources.simulated_gpus == "on"
    with pytest.raises(SystemExit):
        parse_args(["--input", "/a", "--output", "/b", "--simulated-gpus", "yes"])
    with pytest.raises(PlanError, match="computes on CPU"):
        simulation.check_simulation(ResourceConfig(simulated_gpus="on"), GPU)
    simulation.check_simulation(ResourceConfig(simulated_gpus="on"),
                             TranscribeOptions(device="auto"))


def test_a_real_gpu_refuses_the_simulation_unless_asked(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr(simulation, "_cuda_devices", lambda: 1)
    refusal = simulation.real_gpu_refusal("on")
    assert refusal is not None and refusal.status == "fail"
    assert simulation.real_gpu_refusal("over_real_gpus") is None
    with pytest.raises(PlanError, match="real GPU"):
        simulation.check_simulation(ResourceConfig(simulated_gpus="on"), TranscribeOptions())
    monkeypatch.setattr(simulation, "_cuda_devices", lambda: 0)
    assert simulation.real_gpu_refusal("on") is None
