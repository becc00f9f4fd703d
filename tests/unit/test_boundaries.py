"""Import boundaries the architecture promises (checked in fresh interpreters)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def _engine_modules() -> list[str]:
    """Every module of the engine package, found by walking it (no hand-kept list)."""
    import scribe

    return sorted(info.name for info in pkgutil.walk_packages(scribe.__path__, "scribe."))


def test_the_walk_finds_every_layer() -> None:
    modules = _engine_modules()
    for expected in ("scribe.pipeline.whisper", "scribe.io.sessions", "scribe.capacity.packing",
                     "scribe.capacity.footprint", "scribe.capacity.doctor",
                     "scribe.testing.testmodel", "scribe.config", "scribe.errors"):
        assert expected in modules


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


def test_the_engine_never_imports_ray() -> None:
    loaded = _loaded_after_import(", ".join(_engine_modules()))
    assert "ray" not in loaded
    # nor an adapter: the engine sits below the job, the service and the command line
    assert not {"ray_jobs", "serve_app", "ray_scribe"} & loaded


def test_the_cli_front_loads_no_model_runtime() -> None:
    loaded = _loaded_after_import("ray_scribe.cli")
    assert not {"ray", "ctranslate2", "faster_whisper", "av"} & loaded
