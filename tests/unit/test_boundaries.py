"""Import boundaries the architecture promises (checked in fresh interpreters)."""

from __future__ import annotations

import ast
import graphlib
import pkgutil
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


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


def _project_modules() -> dict[str, Path]:
    """Module name -> file, for the engine and the three packages that use it."""
    modules = {}
    for package in ("scribe", "ray_jobs", "serve_app", "ray_scribe"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(path: Path, modules: Collection[str]) -> set[str]:
    """The project modules ``path`` imports anywhere: at the top, in functions, for typing."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names & set(modules)


def test_the_import_graph_has_no_cycle() -> None:
    modules = _project_modules()
    assert "serve_app.api" in modules and "scribe.pipeline.whisper" in modules
    graph = {name: _imported(path, modules) - {name} for name, path in modules.items()}
    # CycleError names the modules that import each other
    list(graphlib.TopologicalSorter(graph).static_order())


def test_the_engine_knows_no_ray_files() -> None:
    """Ray's address variables, its ``ray start`` record and its token live on the Ray side
    (:mod:`ray_jobs.cluster`): the engine neither imports ray nor reads Ray's files."""
    ray_names = ("RAY_ADDRESS", "RAY_AUTH", "RAY_TMPDIR", "ray_current_cluster", "auth_token")
    for path in (ROOT / "scribe").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not [name for name in ray_names if name in text], path
