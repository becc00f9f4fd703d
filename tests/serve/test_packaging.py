"""The light entry points stay light, and config.yaml is what Serve and the CLI accept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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

    from serve_app import settings

    raw = yaml.safe_load((ROOT / "serve_app" / "config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(raw)
    app = schema.applications[0]
    assert app.import_path == "serve_app.app:app_builder"
    config = settings.load(app.args)
    transcriber = next(d for d in app.deployments if d.name == "Transcriber")
    assert transcriber.max_ongoing_requests >= config.resources.model_batch_size
    for deployment in app.deployments:
        assert deployment.max_queued_requests > 0, deployment.name


def test_cli_flags_override_the_files_args() -> None:
    from serve_app.cli import _overrides, parse_args

    args = parse_args(["--model", "large-v3", "--model-batch-size", "32", "--port", "9000",
                       "--max-body-bytes", "1000"])
    assert args.port == 9000
    assert _overrides(vars(args)) == {"transcribe": {"model": "large-v3"},
                                      "resources": {"model_batch_size": 32},
                                      "server": {"max_body_bytes": 1000}}


def test_scribe_serve_help_is_instant() -> None:
    result = subprocess.run([sys.executable, "-m", "scribe.cli", "serve", "--help"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    assert "--model" in result.stdout and "--config" in result.stdout
