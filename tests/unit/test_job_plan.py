"""How the batch job lays actors on a cluster without a plan file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ray_jobs.layout import fit_to_work, model_replicas_for, plan_resources
from ray_jobs.transcribe import parse_args
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.errors import PlanError
from scribe.io.sessions import SessionRef

pytestmark = pytest.mark.unit

CPU = TranscribeOptions(model="/models/x", device="cpu")


@pytest.mark.parametrize(("cores", "workers", "feeders"), [(1, 1, 1), (2, 2, 1), (16, 16, 2)])
def test_one_cpu_actor_holds_a_one_thread_replica_per_core_beside_the_preprocessing(
        cores: int, workers: int, feeders: int) -> None:
    plan = plan_resources(CPU, ResourceConfig(), {"CPU": cores})
    assert (plan.model_actors, plan.model_workers, plan.cpu_threads,
            plan.preprocess_actors) == (1, workers, 1, feeders)
    assert plan.model_batch_size == 4, "what calibrate and the job measure for one thread"
    assert (plan.model_actors * plan.model_cpus
            + plan.preprocess_actors * plan.preprocess_cpus) <= cores + 1e-9


def test_cpu_replicas_on_several_nodes_are_actors_for_ray_to_place() -> None:
    plan = plan_resources(CPU, ResourceConfig(), {"CPU": 16}, cpu_nodes=2)
    assert (plan.model_actors, plan.model_workers, plan.preprocess_actors) == (16, 1, 2)
    assert plan.model_actors * plan.model_cpus + plan.preprocess_actors * (
        plan.preprocess_cpus) <= 16 + 1e-9


@pytest.mark.parametrize(("cpus", "nodes"), [(4, 2), (8, 4), (16, 2), (6, 3)])
def test_each_node_holds_its_model_actors_and_a_feeder(cpus: int, nodes: int) -> None:
    """Ray places actors node by node: a node's share of the model actors must leave a
    whole feeder's CPUs free on it, or the first feeder may find no node with room."""
    plan = plan_resources(CPU, ResourceConfig(), {"CPU": cpus}, cpu_nodes=nodes)
    per_node = cpus / nodes
    models_per_node = -(-plan.model_actors // nodes)
    assert models_per_node * plan.model_cpus + plan.preprocess_cpus <= per_node + 1e-9


def test_explicit_resources_win() -> None:
    plan = plan_resources(CPU, ResourceConfig(model_actors=3, cpu_threads=2,
                                              model_batch_size=4), {"CPU": 8})
    assert (plan.model_actors, plan.cpu_threads, plan.model_batch_size) == (3, 2, 4)
    assert plan.model_workers == 1, "4 two-thread replicas do not split over 3 actors"
    two = plan_resources(CPU, ResourceConfig(model_actors=2), {"CPU": 8})
    assert (two.model_actors, two.model_workers) == (2, 4), "the replicas shared out"


def test_gpu_actors_take_one_over_k_of_each_gpu() -> None:
    gpu = TranscribeOptions(model="/models/x", device="cuda")
    plan = plan_resources(gpu, ResourceConfig(actors_per_gpu=3), {"CPU": 32, "GPU": 2})
    assert plan.model_actors == 6 and plan.model_gpus == pytest.approx(1 / 3)
    assert plan.gpus == pytest.approx(2.0)


def test_cuda_without_free_gpus_is_a_plan_error() -> None:
    gpu = TranscribeOptions(model="/models/x", device="cuda")
    with pytest.raises(PlanError, match="no GPUs free"):
        plan_resources(gpu, ResourceConfig(), {"CPU": 8, "GPU": 1}, reserved_gpus=1.0)


def test_the_config_file_and_flags_both_count(tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text("input: /in\noutput: /out\nresources:\n  model_actors: 3\n")
    job = parse_args(["--config", str(config), "--output", "/elsewhere"])
    assert (job.input, job.output, job.resources.model_actors) == ("/in", "/elsewhere", 3)
    assert parse_args(["--input", "/a", "--output", "/b"]).input == "/a"


def _mp3(name: str, seconds: float | None) -> SessionRef:
    # 16 kB/s: the size-based estimate's rate for compressed audio
    return SessionRef(session_id=name, uri=f"/in/{name}.mp3",
                      size=None if seconds is None else int(seconds * 16_000))


def test_a_small_job_starts_only_the_model_actors_its_calls_need() -> None:
    clips = [_mp3(f"clip{i}", 15) for i in range(4)]
    # four one-chunk sessions are four chains: one call of batch 4, one actor
    assert model_replicas_for(clips, 2, batch_size=4, chain=4, chunk_length_s=30) == 1
    assert model_replicas_for(clips, 2, batch_size=2, chain=4, chunk_length_s=30) == 2
    # two 6-minute sessions: up to 24 chunks (one per 15 s), 6 chains each, three calls
    sessions = [_mp3("a", 360), _mp3("b", 360)]
    assert model_replicas_for(sessions, 2, batch_size=4, chain=4, chunk_length_s=30) == 2
    assert model_replicas_for(sessions, 8, batch_size=4, chain=4, chunk_length_s=30) == 3
    # an empty file is an error record, not a call
    assert model_replicas_for([*clips, _mp3("empty", 0)], 2, batch_size=4, chain=4,
                            chunk_length_s=30) == 1
    # a size the listing did not give: no estimate, the plan stands
    assert model_replicas_for([*clips, _mp3("unknown", None)], 2, batch_size=4, chain=4,
                            chunk_length_s=30) == 2


def test_the_layout_fits_the_work_unless_the_config_fixes_the_actors() -> None:
    clips = [_mp3(f"clip{i}", 15) for i in range(4)]
    gpu = TranscribeOptions(model="/models/x", device="cuda")
    layout = plan_resources(gpu, ResourceConfig(actors_per_gpu=2, model_batch_size=4),
                            {"CPU": 8, "GPU": 2})
    assert (layout.model_actors, layout.gpus) == (4, 2.0)
    fitted = fit_to_work(layout, clips, gpu.resolved(), ResourceConfig())
    assert (fitted.model_actors, fitted.gpus) == (1, 0.5), "the summary bills what runs"
    fixed = ResourceConfig(model_actors=4)
    assert fit_to_work(layout, clips, gpu.resolved(), fixed) == layout
    cpu = plan_resources(CPU, ResourceConfig(), {"CPU": 8})
    assert (cpu.model_actors, cpu.model_workers) == (1, 8)
    fitted = fit_to_work(cpu, clips, CPU.resolved(), ResourceConfig())
    assert (fitted.model_actors, fitted.model_workers) == (1, 1), "one call, one replica"
    spread = plan_resources(CPU, ResourceConfig(), {"CPU": 8}, cpu_nodes=2)
    fitted = fit_to_work(spread, clips, CPU.resolved(), ResourceConfig())
    assert (fitted.model_actors, fitted.model_workers) == (1, 1)
