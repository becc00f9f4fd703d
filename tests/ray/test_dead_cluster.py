"""A `ray start` whose processes died leaves its record behind; the job, asked for no
address, must not spend minutes retrying it (Ray's own lookup does) but start a local Ray
within seconds and finish."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.media import speech, write_audio

pytestmark = pytest.mark.ray

NOTICE_WITHIN_S = 20.0  # imports and preflight on a busy 2-core machine; Ray's retries: minutes
JOB_TIMEOUT_S = 300.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ray_tmpdir() -> Iterator[Path]:
    """A short temp dir for Ray (its socket paths must stay under 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="rd", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _lines_until(process: subprocess.Popen[str], text: str, timeout_s: float) -> list[str]:
    """Read the child's output until a line holds ``text`` (or time runs out)."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        line = process.stdout.readline() if ready else ""
        seen.append(line)
        if text in line or (ready and not line):
            break
    return seen


def test_a_dead_recorded_cluster_starts_a_local_ray_in_seconds(
        ray_tmpdir: Path, job_file: Path, tmp_path: Path) -> None:
    (ray_tmpdir / "ray").mkdir()
    (ray_tmpdir / "ray" / "ray_current_cluster").write_text(_dead_address() + "\n")
    (tmp_path / "in").mkdir()
    write_audio(tmp_path / "in" / "a.wav", speech(6.0, seed=3))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(ray_tmpdir), PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "ray_jobs.transcribe", "--config", str(job_file),
         "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        seen = _lines_until(process, "starting a local Ray", NOTICE_WITHIN_S)
        assert "starting a local Ray" in seen[-1], "".join(seen)
        output, _ = process.communicate(timeout=JOB_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert (tmp_path / "out" / "a.json").exists()
