"""``scribe status``: a job's progress read from its output folder (and input) alone; and
the running job's own progress display."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from ray_jobs.progress_display import ProgressDisplay, format_duration
from ray_scribe.cli import main
from scribe.io import outputs, storage
from scribe.io.progress import progress
from scribe.io.sessions import SessionRef
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


# The job's live display (ray_jobs/progress_display.py): what a running job prints.

class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _refs(*sizes: int | None) -> list[SessionRef]:
    # WAV at 16 kHz mono: 32000 bytes a second
    return [SessionRef(f"s{i}", f"/in/s{i}.wav", size) for i, size in enumerate(sizes)]


def _ok(sid: str, seconds: float) -> dict[str, object]:
    return {"session_id": sid, "status": "ok", "duration_s": seconds}


def test_off_a_terminal_a_log_line_every_interval_with_failures_and_time_left(
        caplog: pytest.LogCaptureFixture) -> None:
    clock, stream = _Clock(), io.StringIO()
    refs = _refs(32000 * 1800, 32000 * 600, 32000 * 600)
    display = ProgressDisplay(refs, stream, tty=False, interval_s=30.0, clock=clock)
    display.expect(refs)
    with caplog.at_level(logging.INFO, logger="ray_jobs.progress_display"):
        clock.now += 60
        display.session(_ok("s0", 1800.0))  # 60% of the audio in a minute
        clock.now += 10
        display.session({"session_id": "s1", "status": "error", "error": "audio_decode_error"})
        clock.now += 30
        display.session(_ok("s2", 600.0))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "progress: 1/3 sessions, 0.50 h of audio, 30.0 audio-s/s, 0:40 left (1:00 so far)",
        "progress: 3/3 sessions (1 failed), 0.67 h of audio, 24.0 audio-s/s, done (1:40 so far)",
    ], "the failure 10 s later waits for the interval; the counts and audio do not"
    assert stream.getvalue() == "", "off a terminal it logs, never draws"
    assert (display.done, display.failed) == (2, 1)


def test_time_left_is_unknown_until_a_session_ends_and_counts_sessions_without_sizes() -> None:
    clock = _Clock()
    refs = _refs(None, None, None, None)
    display = ProgressDisplay(refs, io.StringIO(), tty=False, clock=clock)
    display.expect(refs)
    assert display.eta_s() is None
    assert "time left unknown" in display.line()
    clock.now += 90
    display.session(_ok("s0", 10.0))
    assert display.eta_s() == pytest.approx(270.0), "1 of 4 in 90 s: 3 more take 270 s"
    assert display.line().endswith("4:30 left (1:30 so far)")


def test_on_a_terminal_one_bar_redrawn_in_place_and_a_log_line_clears_it_first() -> None:
    clock, stream = _Clock(), io.StringIO()
    refs = _refs(32000 * 300, 32000 * 100)
    display = ProgressDisplay(refs, stream, tty=True, clock=clock)
    display.expect(refs[:1])  # a pass each
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    try:
        with display:
            clock.now += 3700
            display.session(_ok("s0", 300.0))
            logging.getLogger("ray_jobs.transcribe").warning("a warning mid-run")
            display.expect(refs[1:])
            display.session({"session_id": "s1", "status": "error", "duration_s": 100.0})
    finally:
        logging.getLogger().removeHandler(handler)
    drawn = stream.getvalue()
    assert drawn.startswith("\r[....................] 0/2 sessions, 0.00 h of audio")
    assert ("\r[###############.....] 1/2 sessions, 0.08 h of audio, 0.1 audio-s/s, "
            "20:33 left (1:01:40 so far)\x1b[K") in drawn
    assert "\x1b[K\r\x1b[Ka warning mid-run\n" in drawn, "the bar is cleared before a log line"
    assert drawn.endswith("\r[####################] 2/2 sessions (1 failed), 0.11 h of audio, "
                          "0.1 audio-s/s, done (1:01:40 so far)\x1b[K\n")


def test_durations_read_as_a_clock() -> None:
    assert [format_duration(s) for s in (0, 59.6, 61, 3600, 86399)] == [
        "0:00", "1:00", "1:01", "1:00:00", "23:59:59"]


def test_it_keeps_the_estimates_only_of_sessions_expected_and_not_finished() -> None:
    refs = _refs(*[32000] * 10)
    display = ProgressDisplay(refs, io.StringIO(), tty=False, clock=_Clock())
    display.expect(refs[:4])
    for ref in refs[:3]:
        display.session(_ok(ref.session_id, 1.0))
    display.expect(refs[4:6])
    assert sorted(display._estimates) == ["s3", "s4", "s5"]
    assert display.fraction() == pytest.approx(0.3)
