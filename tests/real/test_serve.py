"""The online service with a real Whisper, called with the official openai client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scribe.config import TranscribeOptions
from tests.real.conftest import EXAMPLES, JFK_WORDS, words
from tests.serve.support import served

pytestmark = [pytest.mark.real, pytest.mark.serve]


@pytest.fixture(scope="module")
def api(ray_local: Any, real_options: TranscribeOptions) -> Iterator[str]:
    """The Serve app with tiny.en on loopback; shut down, every process gone, after."""
    with served(real_options, "real") as url:
        yield url


def test_openai_client_gets_jfk_word_for_word(api: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=api, api_key="unused", max_retries=0, timeout=300)
    with (EXAMPLES / "jfk.flac").open("rb") as f:
        result = client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="verbose_json",
            timestamp_granularities=["word"])
    assert words(result.text) == JFK_WORDS
    assert result.words is not None
    spoken = [w.word for w in result.words]
    assert words(" ".join(spoken)) == JFK_WORDS
    times = [t for w in result.words for t in (w.start, w.end)]
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= 11.1


@pytest.mark.parametrize(("route", "param"), [("translations", "task"),
                                              ("transcriptions", "language")])
def test_an_english_only_model_answers_400_naming_the_parameter(
        api: str, route: str, param: str) -> None:
    """tiny.en cannot translate, nor hear German: 400 before the audio is read."""
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=api, api_key="unused", max_retries=0, timeout=300)
    with (EXAMPLES / "jfk.flac").open("rb") as f, pytest.raises(openai.BadRequestError) as info:
        if route == "translations":
            client.audio.translations.create(model="whisper-1", file=f)
        else:
            client.audio.transcriptions.create(model="whisper-1", file=f, language="de")
    error = info.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert "English-only" in error["message"]


def test_realtime_session_turns_give_jfk_word_for_word(api: str) -> None:
    from openai import OpenAI

    from tests.serve.test_realtime import pcm24k, send_audio, transcripts

    client = OpenAI(base_url=api, api_key="unused", max_retries=0, timeout=300)
    with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        connection.recv()
        send_audio(connection, pcm24k(1.5))  # server VAD, 500 ms: jfk's pauses cut it
        said = transcripts(connection)
    assert len(said) == 4 and words(" ".join(said)) == JFK_WORDS


def test_speaker_count_and_bounds_are_form_fields(api: str, speaker_weights: str,
                                                  tmp_path: Any) -> None:
    """ray-scribe's own form fields, sent by the official client as extra fields: two
    voices found when there are two, one when at most one is allowed."""
    from openai import OpenAI

    from tests import conversations, media

    talk = conversations.conversation(
        conversations.espeak_voices(conversations.VOICE_PAIRS[0]), turns=4, seed=2,
        overlap_share=0.0)
    path = media.write_audio(tmp_path / "talk.wav", talk.samples)
    client = OpenAI(base_url=api, api_key="unused", max_retries=0, timeout=300)
    found = []
    for fields in ({"num_speakers": 2}, {"min_speakers": 1, "max_speakers": 1}):
        with path.open("rb") as f:
            result = client.audio.transcriptions.create(
                model="whisper-1", file=f, response_format="diarized_json", extra_body=fields)
        found.append({s.speaker for s in result.segments})
    assert found == [{"A", "B"}, {"A"}]
