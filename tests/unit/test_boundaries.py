"""Import boundaries the architecture promises (checked in fresh interpreters)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

ENGINE_MODULES = [
    "scribe.audio", "scribe.chunking", "scribe.config", "scribe.errors", "scribe.features",
    "scribe.formats", "scribe.outputs", "scribe.preprocess", "scribe.storage",
    "scribe.summary", "scribe.testmodel", "scribe.transcript", "scribe.vad", "scribe.whisper",
    "scribe.cli",
]


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


def test_the_engine_never_imports_ray() -> None:
    loaded = _loaded_after_import(", ".join(ENGINE_MODULES))
    assert "ray" not in loaded


def test_the_cli_front_loads_no_model_runtime() -> None:
    loaded = _loaded_after_import("scribe.cli")
    assert not {"ray", "ctranslate2", "faster_whisper", "av"} & loaded
