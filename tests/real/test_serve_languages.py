"""The online service with the multilingual base Whisper, called with the openai client:
the language detected per request and named, translation into English."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from scribe.config import TranscribeOptions
from tests.languages import spoken
from tests.media import write_audio
from tests.real.conftest import words
from tests.serve.support import served

pytestmark = [pytest.mark.real, pytest.mark.serve]


@pytest.fixture(scope="module")
def api(ray_local: Any, base_model: str) -> Iterator[str]:
    """The Serve app with base on loopback, no language set; shut down after."""
    options = TranscribeOptions(model=base_model, device="cpu", compute_type="int8",
                                temperature_fallback=())
    with served(options, "base") as url:
        yield url


def _german(tmp_path: Any) -> io.BufferedReader:
    path = tmp_path / "german.wav"
    write_audio(str(path), spoken("de", lines=3)[0])
    return path.open("rb")


def test_language_absent_is_detected_and_named(api: str, tmp_path: Any) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=api, api_key="unused", max_retries=0, timeout=600)
    with _german(tmp_path) as f:
        result = client.audio.transcriptions.create(model="whisper-1", file=f,
                                                    response_format="verbose_json")
    assert result.language == "german"  # OpenAI's word for it, not the code
    # German words, not an English paraphrase: German's function words, none of them
    # English (base misreads some of espeak's nouns: "Geschichte" came out "Geschicht")
    assert {"das", "und", "ich", "die", "der"} <= set(words(result.text).split()), \
        result.text


def test_translations_route_gives_english_with_timestamps(api: str, tmp_path: Any) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=api, api_key="unused", max_retries=0, timeout=600)
    with _german(tmp_path) as f:
        result = client.audio.translations.create(model="whisper-1", file=f,
                                                  response_format="verbose_json")
    said = set(words(result.text).split())
    assert {"the", "and"} <= said and not {"das", "und", "ich"} & said, result.text
    segments = result.segments or []
    assert segments and all(s.end > s.start for s in segments)
