"""The light entry points stay light, config.yaml is what Serve and the CLI accept, and the
model replicas take their shape from the packing plan as the batch job does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.serve

ROOT = Path(__file__).resolve().parents[2]


def test_protocol_imports_no_model_runtime_and_no_ray() -> None:
    code = ("import sys, serve_app.protocol; "
            "heavy = {'ctranslate2', 'faster_whisper', 'ray'} & set(sys.modules); "
            "sys.exit(f'imported {sorted(heavy)}' if heavy else 0)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_config_yaml_is_a_valid_serve_config_and_app_args() -> None:
    from ray.serve.schema import ServeDeploySchema

    from scribe import config as cfg
    from serve_app.settings import ServeConfig

    raw = yaml.safe_load((ROOT / "serve_app" / "config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(raw)
    app = schema.applications[0]
    assert app.import_path == "serve_app.app:app_builder"
    config = cfg.build(ServeConfig, app.args)
    transcriber = next(d for d in app.deployments if d.name == "Transcriber")
    assert transcriber.max_ongoing_requests >= config.resources.model_batch_size
    for deployment in app.deployments:
        assert deployment.max_queued_requests > 0, deployment.name


def test_cli_flags_override_the_files_args() -> None:
    from scribe import config as cfg
    from serve_app.cli import config_flags, parse_args
    from serve_app.settings import ServeConfig

    args = parse_args(["--model", "large-v3", "--model-batch-size", "32", "--port", "9000",
                       "--max-body-bytes", "1000"])
    assert args.port == 9000
    assert config_flags(args) == {"model": "large-v3", "model_batch_size": 32,
                                  "max_body_bytes": 1000}
    file_args = {"transcribe": {"model": "small", "beam_size": 3}}
    config = cfg.build(ServeConfig, file_args, config_flags(args))
    assert (config.transcribe.model, config.transcribe.beam_size) == ("large-v3", 3)
    assert config.resources.model_batch_size == 32
    assert config.server.max_body_bytes == 1000


def test_the_batch_jobs_pool_flags_are_not_the_services(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from serve_app.cli import BATCH_ONLY, parse_args

    for field in BATCH_ONLY:
        with pytest.raises(SystemExit):
            parse_args([f"--{field.replace('_', '-')}", "2"])
        assert "unrecognized arguments" in capsys.readouterr().err
    assert parse_args(["--simulated-gpus", "on", "--actors-per-gpu", "2"]).actors_per_gpu == 2


def test_scribe_serve_help_is_instant() -> None:
    result = subprocess.run([sys.executable, "-m", "ray_scribe.cli", "serve", "--help"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    assert "--model" in result.stdout and "--config" in result.stdout


def _gpu_plan(model: str = "large-v3", compute_type: str = "float16") -> Any:
    from scribe.capacity import footprint, packing

    memory = footprint.MemoryModel(4 * 1024**3, 200 * 1024**2, "measured here")
    gpu = packing.plan_gpu(memory, model=model, compute_type=compute_type, total=24 * 1024**3)
    return packing.PackingPlan(device="cuda", gpu=gpu, memory=memory, created="now")


def test_transcriber_replicas_take_the_plan_files_shape_on_gpu() -> None:
    from scribe.config import ResourceConfig, TranscribeOptions
    from serve_app.app import model_actor_options, transcriber_resources

    options = TranscribeOptions(model="large-v3", device="cuda",
                                compute_type="float16").resolved()
    saved = _gpu_plan()
    resources = transcriber_resources(options, ResourceConfig(), saved, ())
    assert (resources.actors_per_gpu, resources.model_batch_size) == (
        saved.gpu.actors_per_gpu, saved.gpu.batch_size)
    assert model_actor_options(options, resources)["num_gpus"] == 1 / saved.gpu.actors_per_gpu
    # What the config sets wins over the plan, as in the batch job.
    pinned = transcriber_resources(options, ResourceConfig(model_batch_size=4), saved, ())
    assert pinned.model_batch_size == 4 and pinned.actors_per_gpu == saved.gpu.actors_per_gpu
    # A plan for another model is not used.
    other = transcriber_resources(options, ResourceConfig(), _gpu_plan("small"), ())
    assert (other.actors_per_gpu, other.model_batch_size) == (2, 16)


def test_transcriber_replicas_on_cpu_follow_a_cpu_plan_only() -> None:
    from scribe.capacity import packing
    from scribe.config import ResourceConfig, TranscribeOptions
    from serve_app.app import model_actor_options, transcriber_resources

    options = TranscribeOptions(model="base", device="cpu").resolved()
    unplanned = transcriber_resources(options, ResourceConfig(), None, ())
    assert unplanned == ResourceConfig(), "no plan: the config's batch, so requests share calls"
    assert model_actor_options(options, unplanned) == {"num_cpus": 1}
    saved = packing.PackingPlan(device="cpu", cpu=packing.plan_cpu(8, threads_per_actor=2))
    planned = transcriber_resources(options, ResourceConfig(), saved, ())
    assert (planned.cpu_threads, planned.model_batch_size) == (2, packing.CPU_BATCH_SIZE)
    # Threads share the cores with the preprocessor: the replica still reserves one CPU,
    # so a 2-core machine fits a preprocessor and a 2-thread transcriber.
    assert model_actor_options(options, planned) == {"num_cpus": 1}
