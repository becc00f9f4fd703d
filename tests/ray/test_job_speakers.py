"""Speaker labels through the batch job on a real local Ray, with a real tiny.en Whisper:
by channel for the stereo example, by voice for a two-voice conversation, per-session
values from the manifest (a row's speaker bound replacing the job's)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pytest

from ray_jobs.transcribe import run_job
from scribe.config import JobConfig, ResourceConfig, TranscribeOptions
from tests import conversations
from tests.media import EXAMPLES, write_audio

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def job_output(tmp_path_factory: pytest.TempPathFactory, real_model: str,
               speaker_weights: str, ray_local: Any) -> tuple[Path, conversations.Conversation]:
    root = tmp_path_factory.mktemp("speakers")
    shutil.copy(EXAMPLES / "stereo_diarization.wav", root / "stereo.wav")
    talk = conversations.conversation(
        conversations.espeak_voices(conversations.VOICE_PAIRS[0]), turns=6, seed=5,
        overlap_share=0.0)
    write_audio(root / "talk.wav", talk.samples)
    shutil.copy(EXAMPLES / "jfk.flac", root / "plain.flac")
    (root / "sessions.csv").write_text(
        "uri,session_id,speakers,num_speakers,max_speakers\n"
        "stereo.wav,stereo,,,\ntalk.wav,talk,voices,2,\nplain.flac,plain,off,,\n"
        "talk.wav,talk_one,voices,,1\n")
    options = TranscribeOptions(model=real_model, device="cpu", compute_type="int8",
                                language="en", word_timestamps=True, speakers="auto",
                                min_speakers=2, speaker_encoder_path=speaker_weights)
    out = root / "out"
    run_job(JobConfig(input=str(root / "sessions.csv"), output=str(out), transcribe=options,
                      resources=ResourceConfig(model_batch_size=4)))
    return out, talk


def _record(out: Path, sid: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((out / f"{sid}.json").read_text())
    assert record["status"] == "ok", record["error"]
    return record


def test_stereo_session_is_labelled_by_channel(job_output: tuple[Path, Any]) -> None:
    out, _ = job_output
    said = {s["speaker"]: s["text"] for s in _record(out, "stereo")["segments"]}
    assert set(said) == {"left", "right"}
    assert "horizon" in said["right"] and "wizard" in said["left"]
    vtt = (out / "stereo.vtt").read_text()
    assert "<v left>" in vtt and "<v right>" in vtt
    assert "right: The horizon" in (out / "stereo.txt").read_text()


def test_conversation_words_carry_the_right_voice(job_output: tuple[Path, Any]) -> None:
    out, talk = job_output
    segments = _record(out, "talk")["segments"]
    words = [w for s in segments for w in s["words"]]
    assert {s["speaker"] for s in segments} == {"A", "B"}
    assert all(w["speaker"] == s["speaker"] for s in segments for w in s["words"])
    inside = [(w, who) for w in words for start, end, who in talk.turns
              if start + 0.3 < (w["start"] + w["end"]) / 2 < end - 0.3]
    right = sum(w["speaker"] == who for w, who in inside)
    assert inside and right >= 0.9 * len(inside), (right, len(inside))


def test_manifest_turns_speakers_off_and_parquet_has_the_column(
        job_output: tuple[Path, Any]) -> None:
    out, _ = job_output
    assert all("speaker" not in s for s in _record(out, "plain")["segments"])
    table = pads.dataset(str(out / "_segments"), format="parquet").to_table()
    by_session: dict[str, set[Any]] = {}
    for sid, speaker in zip(table.column("session_id").to_pylist(),
                            table.column("speaker").to_pylist(), strict=True):
        by_session.setdefault(sid, set()).add(speaker)
    assert by_session == {"stereo": {"left", "right"}, "talk": {"A", "B"}, "plain": {None},
                          "talk_one": {"A"}}


def test_a_rows_bound_replaces_the_jobs(job_output: tuple[Path, Any]) -> None:
    """The job asks for at least two speakers; the row's max_speakers=1 wins whole."""
    out, _ = job_output
    segments = _record(out, "talk_one")["segments"]
    assert segments and {s["speaker"] for s in segments} == {"A"}
    assert {w["speaker"] for s in segments for w in s["words"]} == {"A"}
