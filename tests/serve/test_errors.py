"""Bad input gets a 4xx with an OpenAI-style body naming the problem, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import media

pytestmark = pytest.mark.serve

ROUTE = "/v1/audio/transcriptions"


def _post(http: Any, path: Path | None, **fields: Any) -> Any:
    files = {"file": (path.name, path.read_bytes())} if path else None
    data = {"model": "whisper-1", **fields}
    return http.post(ROUTE, files=files, data=data)


def _error(response: Any, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param, error
    return error


@pytest.mark.parametrize(("make", "code"), [
    (media.not_audio, "audio_decode_error"),
    (media.zero_bytes, "empty_audio"),
    (media.video_without_audio, "unsupported_audio"),
])
def test_unusable_files_are_400_naming_the_file(http: Any, tmp_path: Path, make: Any,
                                                code: str) -> None:
    path = make(tmp_path / "upload.mp3" if make is not media.video_without_audio
                else tmp_path / "upload.mp4")
    error = _error(_post(http, path), 400, "file")
    assert error["code"] == code


def test_truncated_mp3_still_transcribes(http: Any, tmp_path: Path) -> None:
    # Half a file is still audio: the engine keeps what decodes (with a warning).
    response = _post(http, media.truncated_mp3(tmp_path / "cut.mp3", seconds=6))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("fields", "param"), [
    ({"response_format": "xml"}, "response_format"),
    ({"language": "klingon"}, "language"),
    ({"temperature": "3"}, "temperature"),
    ({"timestamp_granularities[]": "word"}, "timestamp_granularities[]"),
    ({"timestamp_granularities[]": "sentence", "response_format": "verbose_json"},
     "timestamp_granularities[]"),
    ({"stream": "true", "response_format": "srt"}, "stream"),
])
def test_bad_parameters_are_400_naming_the_parameter(http: Any, jfk: Path,
                                                     fields: dict[str, str], param: str
                                                     ) -> None:
    message = _error(_post(http, jfk, **fields), 400)["message"]
    assert param.split(".")[0].rstrip("[]") in message


def test_missing_file_is_400_naming_file(http: Any) -> None:
    _error(_post(http, None), 400, "file")


def test_missing_model_is_400_naming_model(http: Any, jfk: Path) -> None:
    response = http.post(ROUTE, files={"file": ("a.flac", jfk.read_bytes())})
    _error(response, 400, "model")


def test_not_multipart_is_400(http: Any) -> None:
    _error(http.post(ROUTE, json={"model": "whisper-1", "file": "s.mp3"}), 400)


def test_unknown_route_is_a_json_404(http: Any) -> None:
    _error(http.get("/v1/nothing-here"), 404)
