"""``scribe status``: a job's progress read from its output folder (and input) alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ray_scribe.cli import main
from scribe.io import outputs, storage
from scribe.io.progress import progress
from scribe.pipeline.transcript import error_record, ok_record

pytestmark = pytest.mark.unit


@pytest.fixture
def job(tmp_path: Path) -> tuple[str, str]:
    """An input of five files; two done, one failed, two not reached; plus a record for a
    session the input no longer lists, the summary, and a temp file of a write cut short."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name, size in (("a.wav", 1000), ("b.wav", 2000), ("c.mp3", 10), ("d.wav", 4000),
                       ("e.wav", 3000)):
        (src / name).write_bytes(b"\0" * size)
    for sid, seconds in (("a", 100.0), ("b", 200.0)):
        outputs.write_session(str(out), ok_record({"session_id": sid, "duration_s": seconds,
                                                   "speech_duration_s": seconds}, []))
    outputs.write_session(str(out), error_record({"session_id": "c"},
                                                 "audio_decode_error: not audio"))
    outputs.write_session(str(out), error_record({"session_id": "gone/x", "duration_s": 50.0},
                                                 "OSError: disk full"))
    storage.write_atomic(str(out / outputs.SUMMARY_FILE), "{}")
    (out / ".a.json.tmp-0123").write_text("{")
    return str(src), str(out)


def test_with_the_input_done_failed_and_left_with_their_audio(job: tuple[str, str]) -> None:
    src, out = job
    state = progress(out, src)
    assert (state.done, state.done_audio_s) == (2, 300.0)
    assert state.failed == {"audio_decode_error": 1}
    assert (state.left, state.left_bytes, state.unknown) == (2, 7000, 1)
    # 300 s of audio came from 3000 bytes: the 7000 bytes left hold about 700 s
    assert state.left_audio_s_estimate == pytest.approx(700.0)


def test_from_the_output_alone_every_record_counts(job: tuple[str, str]) -> None:
    state = progress(job[1])
    assert (state.done, state.left) == (2, None)
    assert state.failed == {"audio_decode_error": 1, "OSError": 1}
    assert state.failed_audio_s == {"audio_decode_error": 0.0, "OSError": 50.0}


def test_the_command_prints_it(job: tuple[str, str], capsys: pytest.CaptureFixture[str]
                               ) -> None:
    src, out = job
    assert main(["status", out, "--input", src]) == 0
    text = capsys.readouterr().out
    assert "done:   2 sessions, 0.08 h of audio" in text
    assert "audio_decode_error: 1" in text
    assert "left:   2 sessions, about 0.19 h of audio (from file sizes)" in text
    assert main(["status", out, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failed"]["OSError"] == 1


def test_an_empty_or_missing_output_is_nothing_done(tmp_path: Path) -> None:
    state = progress(str(tmp_path / "nothing-yet"))
    assert (state.done, state.failed, state.left) == (0, {}, None)
