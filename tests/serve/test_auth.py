"""API keys: the ``locked`` app requires ``Authorization: Bearer <key>``; ``scribe`` does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.serve.support import API_KEY, Server

pytestmark = pytest.mark.serve


def _client(server: Server, key: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=server.locked_url + "/v1", api_key=key, max_retries=0, timeout=120)


def test_the_right_key_is_let_in(server: Server, jfk: Path) -> None:
    with jfk.open("rb") as f:
        result = _client(server, API_KEY).audio.transcriptions.create(
            model="whisper-1", file=f, response_format="srt")
    assert result.startswith("1\n")


@pytest.mark.parametrize("key", ["wrong", API_KEY + "x", API_KEY[:-1]])
def test_a_wrong_key_is_401(server: Server, key: str) -> None:
    import openai

    with pytest.raises(openai.AuthenticationError) as caught:
        _client(server, key).models.list()
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"  # type: ignore[index]


def test_no_key_is_401_before_the_upload_is_read(server: Server, jfk: Path) -> None:
    import httpx

    response = httpx.post(server.locked_url + "/v1/audio/transcriptions",
                          files={"file": ("a.flac", jfk.read_bytes())},
                          data={"model": "whisper-1"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_health_needs_no_key(server: Server) -> None:
    import httpx

    assert httpx.get(server.locked_url + "/health").status_code == 200


def test_without_keys_configured_no_key_is_needed(openai_client: Any) -> None:
    assert openai_client.models.list().data


def test_keys_from_the_environment_add_to_configured_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from serve_app.settings import API_KEYS_ENV, ServerOptions

    monkeypatch.setenv(API_KEYS_ENV, " a, b ,,")
    assert ServerOptions(api_keys=("c",)).keys() == ("c", "a", "b")
