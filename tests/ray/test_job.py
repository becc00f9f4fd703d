"""The batch job end to end on a real local Ray with the test model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pytest

from ray_jobs.transcribe import main, run_job
from scribe.config import ResourceConfig
from scribe.io.sessions import list_sessions
from tests.media import make_session_tree, speech, write_audio

pytestmark = pytest.mark.ray


def _records(out: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.relative_to(out).with_suffix("")): json.loads(p.read_text())
        for p in out.rglob("*.json") if not p.name.startswith("_")
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The mixed tree, keyed by session id (as the job names them) instead of file name."""
    root = tmp_path_factory.mktemp("sessions")
    by_file = make_session_tree(root)
    ids = {str(Path(s.uri).relative_to(root)): s.session_id for s in list_sessions(str(root))}
    return root, {ids[name]: outcome for name, outcome in by_file.items()}


def test_every_good_file_ok_every_bad_file_an_error_record(ray_local, job_config, tree, tmp_path):
    root, expected = tree
    summary = run_job(job_config(str(root), str(tmp_path)))
    records = _records(tmp_path)
    assert set(records) == set(expected)
    for sid, outcome in expected.items():
        record = records[sid]
        assert record["status"] == outcome, (sid, record["error"])
        if outcome == "error":
            assert record["error"], sid
            assert not (tmp_path / (sid + ".srt")).exists()
        else:
            for suffix in (".srt", ".vtt", ".txt"):
                assert (tmp_path / (sid + suffix)).exists()
    failed = sum(1 for o in expected.values() if o == "error")
    assert summary["sessions"] == {"ok": len(expected) - failed, "failed": failed, "skipped": 0}
    assert {f["session_id"] for f in summary["failures"]} == {
        sid for sid, o in expected.items() if o == "error"}
    assert json.loads((tmp_path / "_summary.json").read_text())["sessions"] == summary["sessions"]


def test_record_shape_and_timestamps_on_the_session_timeline(ray_local, job_config, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    import numpy as np

    lead = np.zeros(16_000 * 7, dtype=np.float32)
    write_audio(src / "late_start.wav", np.concatenate([lead, speech(20.0, seed=7)]))
    run_job(job_config(str(src), str(tmp_path / "out")))
    record = _records(tmp_path / "out")["late_start"]
    assert record["status"] == "ok" and record["error"] is None
    assert record["duration_s"] == pytest.approx(27.0, abs=0.05)
    assert 0 < record["speech_duration_s"] <= record["duration_s"]
    assert set(record["timings"]) >= {"decode", "trim", "vad", "chunk", "features", "model"}
    segments = record["segments"]
    assert segments, "random weights still yield segments"
    assert segments[0]["start"] >= 6.0, "seven seconds of leading silence were trimmed"
    assert all(0 <= s["start"] <= s["end"] <= record["duration_s"] + 0.5 for s in segments)
    table = pads.dataset(str(tmp_path / "out" / "_segments"), format="parquet").to_table()
    assert table.num_rows == len(segments)


def test_resume_skips_finished_sessions_and_redoes_deleted_ones(
        ray_local, job_config, tree, tmp_path):
    root, expected = tree
    first = run_job(job_config(str(root), str(tmp_path)))
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.json")}
    second = run_job(job_config(str(root), str(tmp_path)))
    ok = first["sessions"]["ok"]
    assert second["sessions"] == {"ok": 0, "failed": first["sessions"]["failed"], "skipped": ok}
    redone = tmp_path / "standup.json"
    redone.unlink()  # a session is redone once its record and its marker are gone
    (tmp_path / "_done" / "standup.ok").unlink()
    third = run_job(job_config(str(root), str(tmp_path)))
    assert third["sessions"]["ok"] == 1 and third["sessions"]["skipped"] == ok - 1
    assert redone.exists()
    untouched = tmp_path / "interview.json"
    assert untouched.stat().st_mtime_ns == stamp[untouched]
    forced = run_job(job_config(str(root), str(tmp_path), overwrite=True))
    assert forced["sessions"]["skipped"] == 0 and forced["sessions"]["ok"] == ok


def test_chunks_of_different_sessions_share_model_batches(ray_local, job_config, tmp_path):
    src = tmp_path / "short"
    src.mkdir()
    for i in range(12):
        write_audio(src / f"clip{i:02d}.wav", speech(5.0, seed=100 + i))
    summary = run_job(job_config(str(src), str(tmp_path / "out")))
    assert summary["sessions"]["ok"] == 12
    assert summary["max_batch_sessions"] > 1
    assert summary["mean_batch_size"] > 1


def test_a_bucket_in_bounded_passes_ends_every_session_once(
        ray_local, job_config, tmp_path, caplog):
    """Passes of ``sessions_per_pass`` (what bounds the driver's memory at 100k sessions):
    every session ok, written once, the summary's totals over all passes."""
    src = tmp_path / "bucket"
    src.mkdir()
    for i in range(7):
        write_audio(src / f"clip{i}.wav", speech(3.0, seed=200 + i))
    caplog.set_level("INFO", logger="ray_jobs.recovery")
    summary = run_job(job_config(str(src), str(tmp_path / "out"), resources=ResourceConfig(
        model_batch_size=8, sessions_per_pass=3)))
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("pass ")] == [
        "pass 1 of 3: 3 sessions", "pass 2 of 3: 3 sessions", "pass 3 of 3: 1 sessions"]
    assert summary["sessions"] == {"ok": 7, "failed": 0, "skipped": 0}
    assert sorted(_records(tmp_path / "out")) == [f"clip{i}" for i in range(7)]
    assert len(list((tmp_path / "out" / "_done").iterdir())) == 7
    assert summary["audio_hours"] * 3600 == pytest.approx(21.0, abs=0.1)


def test_a_long_sessions_chunks_spread_over_the_model_actors(ray_local, job_config, tmp_path):
    """Ray Data cuts a stage's output into blocks of up to 128 MiB by default: a long
    session's chunks left preprocessing as one block, and one model actor took them all."""
    src = tmp_path / "long"
    src.mkdir()
    write_audio(src / "talk.wav", speech(240.0, seed=7))
    config = job_config(str(src), str(tmp_path / "out"),
                        resources=ResourceConfig(model_actors=2, model_batch_size=2))
    summary = run_job(config)
    assert summary["sessions"]["ok"] == 1
    assert summary["model_actors_used"] == 2


def test_cli_exit_status_and_summary(ray_local, job_file, tree, tmp_path, capsys):
    root, _ = tree
    code = main(["--config", str(job_file), "--input", str(root), "--output", str(tmp_path),
                 "--max-new-tokens", "4"])
    assert code == 1, "some sessions are bad, so the job reports failure"
    out = capsys.readouterr().out
    assert "FAILED empty_upload" in out and "audio-s per wall-s" in out


def test_cli_rejects_bad_parameters(capsys):
    assert main(["--input", "x", "--output", "y", "--language", "klingon"]) == 2
    with pytest.raises(SystemExit):
        main(["--input", "x"])
    assert main(["--input", "/nonexistent/prefix", "--output", "y"]) == 2


@pytest.mark.s3
def test_s3_input_and_output(ray_local, job_config, s3_server, s3_bucket, tmp_path):
    client = s3_server.client()
    for i in range(3):
        path = write_audio(tmp_path / f"s{i}.mp3", speech(4.0, seed=200 + i))
        client.upload_file(str(path), s3_bucket, f"sessions/team/s{i}.mp3")
    client.put_object(Bucket=s3_bucket, Key="sessions/broken.wav", Body=b"")
    summary = run_job(job_config(f"s3://{s3_bucket}/sessions/", f"s3://{s3_bucket}/out/"))
    assert summary["sessions"]["ok"] == 3 and summary["sessions"]["failed"] == 1
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]}
    for i in range(3):
        for suffix in (".json", ".srt", ".vtt", ".txt"):
            assert f"out/team/s{i}{suffix}" in keys
    assert "out/broken.json" in keys and "out/_summary.json" in keys
    record = json.loads(client.get_object(Bucket=s3_bucket, Key="out/team/s0.json")["Body"].read())
    assert record["status"] == "ok" and record["uri"].startswith("s3://")
    again = run_job(job_config(f"s3://{s3_bucket}/sessions/", f"s3://{s3_bucket}/out/"))
    assert again["sessions"]["skipped"] == 3


@pytest.mark.slow
def test_long_session_and_the_whole_mix(ray_local, job_config, tmp_path):
    root = tmp_path / "in"
    expected = make_session_tree(root, long=True)
    summary = run_job(job_config(str(root), str(tmp_path / "out")))
    record = _records(tmp_path / "out")["2024/all_hands"]
    assert record["status"] == "ok"
    assert record["duration_s"] >= 600
    assert record["segments"][-1]["end"] > 540
    assert summary["sessions"]["failed"] == sum(1 for o in expected.values() if o == "error")
    assert not list(Path(tmp_path / "out").rglob(".*.tmp-*")), os.listdir(tmp_path / "out")
