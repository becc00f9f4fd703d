"""What the job prints, run as a user runs it: one progress display, no Ray Data progress
logs and no Ray core message that reads like a failure; ``--verbose`` shows them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ray_jobs.quiet import OUR_WORDS, RAY_DATA_CONSTRUCTOR_NOTE
from tests.media import speech, write_audio

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]
RAY_DATA_LINES = ("logging_progress.py", "Running Dataset", "streaming_executor.py",
                  "Progress bars disabled")


def _job(ray_local: Any, job_file: Path, src: Path, out: Path, *flags: str
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    done = subprocess.run(
        [sys.executable, "-m", "ray_jobs.transcribe", "--config", str(job_file), "--input",
         str(src), "--output", str(out), *flags], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_quiet_by_default_and_ray_datas_own_output_with_verbose(
        ray_local: Any, job_file: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        write_audio(src / f"s{i}.wav", speech(4.0, seed=i))
    quiet = _job(ray_local, job_file, src, tmp_path / "quiet")
    assert "sessions: 2 ok, 0 failed" in quiet.stdout
    progress = [line for line in quiet.stderr.splitlines() if " progress: " in line]
    assert "progress: 0/2 sessions" in progress[0], "shown as the pipeline starts"
    assert "progress: 2/2 sessions, 0.00 h of audio" in progress[-1] and "done" in progress[-1]
    for noise in (*RAY_DATA_LINES, "core_worker.cc", RAY_DATA_CONSTRUCTOR_NOTE):
        assert noise not in quiet.stderr, noise

    loud = _job(ray_local, job_file, src, tmp_path / "loud", "--verbose")
    assert any(line in loud.stderr for line in RAY_DATA_LINES), loud.stderr[-3000:]
    assert " progress: " in loud.stderr, "the job's own display shows beside Ray Data's"
    # Ray's core says it (ray-project/ray#57733): the quiet run explains it once instead.
    # A Ray that stops saying it fails here, and ray_jobs/quiet.py's filter can go.
    assert RAY_DATA_CONSTRUCTOR_NOTE in loud.stderr
    assert quiet.stderr.count(OUR_WORDS) == 1 and OUR_WORDS not in loud.stderr
