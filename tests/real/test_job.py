"""The batch job with a real Whisper: in-process, and as a newcomer runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ray_jobs.transcribe import run_job
from scribe.config import JobConfig, ResourceConfig, TranscribeOptions
from tests.real.conftest import EXAMPLES, JFK_WORDS, words

pytestmark = [pytest.mark.real, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]


def _record(out: Path, session_id: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((out / f"{session_id}.json").read_text())
    assert record["status"] == "ok", record["error"]
    return record


def test_job_transcribes_every_example_in_words(
        ray_local: Any, real_options: TranscribeOptions, tmp_path: Path) -> None:
    config = JobConfig(input=str(EXAMPLES), output=str(tmp_path),
                       transcribe=real_options.model_copy(update={"word_timestamps": True}),
                       resources=ResourceConfig(model_batch_size=8))
    summary = run_job(config)
    assert summary["sessions"]["failed"] == 0
    assert words(_record(tmp_path, "jfk")["text"]) == JFK_WORDS
    for clip in EXAMPLES.iterdir():
        if clip.suffix != ".md":
            record = _record(tmp_path, clip.stem)
            assert len(words(record["text"]).split()) >= 8, record["text"]
            assert all(seg["words"] for seg in record["segments"])


def test_scribe_transcribe_with_the_model_named_tiny_en(ray_local: Any, tmp_path: Path) -> None:
    """``python -m ray_scribe.cli transcribe --model tiny.en``: the installed model, found by
    name with the Hugging Face hub unreachable, on the tests' Ray."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "jfk.flac").symlink_to(EXAMPLES / "jfk.flac")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    done = subprocess.run(
        [sys.executable, "-m", "ray_scribe.cli", "transcribe", "--input", str(src),
         "--output", str(tmp_path / "out"), "--model", "tiny.en", "--device", "cpu"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert words((tmp_path / "out" / "jfk.txt").read_text()) == JFK_WORDS
    segments = _record(tmp_path / "out", "jfk")["segments"]
    assert segments and not any("words" in s for s in segments), "no words unless asked for"
