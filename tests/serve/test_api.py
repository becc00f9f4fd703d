"""The OpenAI-compatible routes, called with the official ``openai`` client.

The test model has random weights, so the assertions are about shape, timing and format,
never about words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests import media

pytestmark = pytest.mark.serve

SRT_CUE = re.compile(r"^\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n", re.M)
VTT_CUE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n", re.M)


def _create(client: Any, path: Path, **kwargs: Any) -> Any:
    with path.open("rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)


def test_json_is_a_transcription_object(openai_client: Any, jfk: Path) -> None:
    result = _create(openai_client, jfk)
    assert isinstance(result.text, str) and result.text
    assert result.usage.seconds == pytest.approx(11.0, abs=0.1)


def test_text_srt_and_vtt_come_back_as_strings(openai_client: Any, jfk: Path) -> None:
    text = _create(openai_client, jfk, response_format="text")
    srt = _create(openai_client, jfk, response_format="srt")
    vtt = _create(openai_client, jfk, response_format="vtt")
    assert isinstance(text, str) and text.strip()
    assert SRT_CUE.search(srt), srt
    assert vtt.startswith("WEBVTT\n") and VTT_CUE.search(vtt), vtt


def test_verbose_json_with_segments_and_words(openai_client: Any, jfk: Path) -> None:
    result = _create(openai_client, jfk, response_format="verbose_json",
                     timestamp_granularities=["segment", "word"])
    assert result.duration == pytest.approx(11.0, abs=0.1)
    assert result.language and result.segments and result.words is not None
    for segment in result.segments:
        assert 0 <= segment.start <= segment.end <= result.duration + 0.5
    assert " ".join(s.text for s in result.segments).strip() == result.text
    for word in result.words:
        assert 0 <= word.start <= word.end <= result.duration + 0.5


def test_verbose_json_words_only(openai_client: Any, jfk: Path) -> None:
    result = _create(openai_client, jfk, response_format="verbose_json",
                     timestamp_granularities=["word"])
    assert result.words is not None and result.segments is None


def test_language_and_prompt_are_accepted(openai_client: Any, jfk: Path) -> None:
    result = _create(openai_client, jfk, response_format="verbose_json", language="de",
                     prompt="Berlin, Bundestag", temperature=0.2)
    assert result.language == "german", "OpenAI's name, not the code asked with"
    # the test model has no fallback: every segment was decoded at the request's temperature
    assert result.segments and {s.temperature for s in result.segments} == {0.2}


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the client's, not ours
def test_translation(openai_client: Any, jfk: Path) -> None:
    with jfk.open("rb") as f:
        result = openai_client.audio.translations.create(model="whisper-1", file=f,
                                                        response_format="verbose_json")
    assert result.task == "translate"  # not in the client's model, but kept as extra


def test_any_model_name_maps_to_the_served_model(openai_client: Any, jfk: Path) -> None:
    with jfk.open("rb") as f:
        result = openai_client.audio.transcriptions.create(model="large-v3", file=f)
    assert result.text


def test_models_lists_whisper_1(openai_client: Any) -> None:
    assert "whisper-1" in [m.id for m in openai_client.models.list()]


def test_health_openapi_and_request_ids(http: Any) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    schema = http.get("/openapi.json").json()
    assert {"/v1/audio/transcriptions", "/v1/audio/translations", "/v1/models"} <= set(
        schema["paths"])
    mine = http.get("/v1/models", headers={"X-Request-Id": "req-123"})
    assert mine.headers.get_list("x-request-id") == ["req-123"]
    assert http.get("/v1/models").headers["x-request-id"]


def test_a_long_session_streams_through_several_chunks_in_order(
        openai_client: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "long.flac", media.speech(80, seed=3))
    result = _create(openai_client, path, response_format="verbose_json")
    assert result.duration == pytest.approx(80.0, abs=0.1)
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts)
    assert max(s.end for s in result.segments) > 30  # past the first 30 s chunk


def test_silence_is_an_empty_transcript(openai_client: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "quiet.wav", media.silence(5))
    assert _create(openai_client, path).text == ""


def test_models_retrieve(openai_client: Any) -> None:
    import openai

    assert openai_client.models.retrieve("whisper-1").id == "whisper-1"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("gpt-5")
