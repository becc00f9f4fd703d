"""Who spoke, online: ``diarized_json`` and OpenAI's known speakers through the official
``openai`` client, and the 400s of requests that cannot be answered with speakers.

The serve tier's model has random weights: the assertions are about speakers and shape,
never about words (the job's speaker tests use a real model for those)."""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import conversations
from tests.media import EXAMPLES, silence, write_audio
from tests.serve.test_errors import _error, _post

pytestmark = pytest.mark.serve


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory, speaker_weights: str) -> Path:
    """A two-voice espeak conversation, voice A (en-us+m3) first."""
    conv = conversations.conversation(
        conversations.espeak_voices(conversations.VOICE_PAIRS[0]), turns=4, seed=2,
        overlap_share=0.0)
    return write_audio(tmp_path_factory.mktemp("talk") / "talk.wav", conv.samples)


def _data_url(samples: Any) -> str:
    """``samples`` as a 16-bit WAV in a base64 data URL, as OpenAI's clients send clips."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def _create(client: Any, path: Path, **kwargs: Any) -> Any:
    with path.open("rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=f,
                                                  response_format="diarized_json", **kwargs)


def test_stereo_example_is_diarized_by_channel(openai_client: Any, speaker_weights: str
                                               ) -> None:
    result = _create(openai_client, EXAMPLES / "stereo_diarization.wav")
    assert result.task == "transcribe" and result.duration == pytest.approx(5.0, abs=0.1)
    assert result.segments
    assert {s.speaker for s in result.segments} <= {"left", "right"}
    for s in result.segments:
        assert s.type == "transcript.text.segment" and s.id.startswith("seg_")
        assert 0 <= s.start <= s.end <= result.duration + 0.5


def test_known_speakers_name_the_voices(openai_client: Any, talk: Path) -> None:
    a, b = conversations.espeak_voices(conversations.VOICE_PAIRS[0])
    # reference clips: sentences the conversation may not use, one per voice
    result = _create(openai_client, talk, known_speaker_names=["therapist", "client"],
                     known_speaker_references=[_data_url(a[-1]), _data_url(b[-1])])
    assert result.segments
    assert {s.speaker for s in result.segments} <= {"therapist", "client"}
    assert result.segments[0].speaker == "therapist"


def test_without_known_speakers_voices_are_lettered(openai_client: Any, talk: Path) -> None:
    result = _create(openai_client, talk)
    assert result.segments and {s.speaker for s in result.segments} <= {"A", "B"}
    assert result.segments[0].speaker == "A"


def test_translation_cannot_be_diarized(http: Any) -> None:
    path = EXAMPLES / "jfk.flac"
    response = http.post("/v1/audio/translations", data={
        "model": "whisper-1", "response_format": "diarized_json"},
        files={"file": (path.name, path.read_bytes())})
    assert "diarized_json" in _error(response, 400, "response_format")["message"]


@pytest.mark.parametrize(("fields", "param"), [
    ({"known_speaker_names[]": ["a"]}, "known_speaker_references[]"),
    ({"known_speaker_names[]": ["a"], "known_speaker_references[]": ["http://x/a.wav"]},
     "known_speaker_references[]"),
    ({"known_speaker_names[]": ["a", "a"], "known_speaker_references[]": ["data:,", "data:,"]},
     "known_speaker_names[]"),
])
def test_bad_known_speakers_are_400_naming_the_parameter(
        http: Any, fields: dict[str, Any], param: str) -> None:
    _error(_post(http, EXAMPLES / "jfk.flac", response_format="diarized_json", **fields),
           400, param)


def test_a_silent_reference_clip_is_400(http: Any, speaker_weights: str) -> None:
    fields = {"known_speaker_names[]": ["a"],
              "known_speaker_references[]": [_data_url(silence(3.0))]}
    error = _error(_post(http, EXAMPLES / "jfk.flac", response_format="diarized_json",
                         **fields), 400, "known_speaker_references[]")
    assert "clip 1" in error["message"]


@pytest.mark.parametrize(("fields", "param"), [
    ({"min_speakers": 3, "max_speakers": 2}, "max_speakers"),
    ({"num_speakers": 5, "max_speakers": 4}, "num_speakers"),
    ({"num_speakers": 1, "min_speakers": 2}, "num_speakers"),
    ({"min_speakers": -1}, "min_speakers"),
    ({"max_speakers": 9}, "max_speakers"),
    ({"num_speakers": "two"}, "num_speakers"),
])
def test_bad_speaker_counts_are_400_naming_the_field(http: Any, fields: dict[str, Any],
                                                      param: str) -> None:
    _error(_post(http, EXAMPLES / "jfk.flac", response_format="diarized_json", **fields),
           400, param)
