"""How many speakers a session has, or the bounds of the estimate: one rule for the
config, the job's flags, a manifest row and (in tests/serve) a request's form fields.
A bad count or bound is an error naming the field before any audio is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from scribe import config as cfg
from scribe.config import MAX_SPEAKERS, TranscribeOptions
from scribe.errors import InvalidParameterError
from scribe.io.sessions import SessionRef, list_sessions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("flags", "param", "says"), [
    ({"min_speakers": 3, "max_speakers": 2}, "max_speakers", "below min_speakers (3)"),
    ({"num_speakers": 4, "max_speakers": 3}, "num_speakers", "outside"),
    ({"num_speakers": 1, "min_speakers": 2}, "num_speakers", "(2..8)"),
    ({"min_speakers": -1}, "min_speakers", "greater than or equal to 1"),
    ({"max_speakers": 0}, "max_speakers", "greater than or equal to 1"),
    ({"max_speakers": MAX_SPEAKERS + 1}, "max_speakers", "less than or equal to 8"),
])
def test_bad_counts_name_the_field(flags: dict[str, int], param: str, says: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        cfg.build(TranscribeOptions, {}, flags)
    assert caught.value.param == param and says in str(caught.value)


def test_counts_within_bounds_are_kept() -> None:
    options = cfg.build(TranscribeOptions, {}, {"min_speakers": 2, "max_speakers": 4,
                                                 "num_speakers": 3})
    assert (options.min_speakers, options.num_speakers, options.max_speakers) == (2, 3, 4)
    assert (TranscribeOptions().min_speakers, TranscribeOptions().max_speakers) == (1, 8)


def test_a_sessions_own_counts_replace_the_jobs_whole() -> None:
    """A row that gives a bound drops the job's count instead of contradicting it."""
    job = TranscribeOptions(num_speakers=2, max_speakers=3, speakers="voices")
    ref = SessionRef("s", "s.wav", min_speakers=4)
    mine = ref.options_for(job)
    assert (mine.num_speakers, mine.min_speakers, mine.max_speakers) == (None, 4, MAX_SPEAKERS)
    assert mine.speakers == "voices"
    assert SessionRef("s", "s.wav").options_for(job) == job
    assert cfg.speaker_counts({"num_speakers": None, "max_speakers": None}) == {}


def test_manifest_rows_carry_bounds_checked_with_their_count(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("uri,num_speakers,min_speakers,max_speakers\na.wav,,2,3\nb.wav,3,,\n")
    first, second = list_sessions(str(manifest))
    assert (first.num_speakers, first.min_speakers, first.max_speakers) == (None, 2, 3)
    assert (second.num_speakers, second.min_speakers, second.max_speakers) == (3, None, None)
    assert SessionRef.from_dict(first.to_dict()) == first
    manifest.write_text("uri,num_speakers,max_speakers\na.wav,4,3\n")
    with pytest.raises(InvalidParameterError, match="row 1: num_speakers: .*outside"):
        list_sessions(str(manifest))


@pytest.mark.parametrize(("flags", "manifest", "param"), [
    (["--min-speakers", "3", "--max-speakers", "2"], None, "transcribe.max_speakers"),
    (["--num-speakers", "5", "--max-speakers", "4"], None, "transcribe.num_speakers"),
    (["--min-speakers", "-2"], None, "transcribe.min_speakers"),
    ([], "uri,min_speakers,max_speakers\nmissing.wav,4,2\n", "input: manifest row 1: "
     "max_speakers"),
])
def test_the_job_exits_2_before_reading_audio(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch,
                                              flags: list[str], manifest: str | None,
                                              param: str) -> None:
    """The manifest names audio that does not exist: a row's bad bounds stop the job
    before any session is opened, as bad flags do before anything at all."""
    from ray_jobs.transcribe import main

    monkeypatch.setenv("RAY_ADDRESS", "local")
    source = tmp_path / "sessions.csv"
    if manifest is not None:
        source.write_text(manifest)
    code = main(["--input", str(source), "--output", str(tmp_path / "out"), *flags])
    assert code == 2
    assert f"invalid_parameter: {param}: " in caplog.text
    assert not (tmp_path / "out").exists()
