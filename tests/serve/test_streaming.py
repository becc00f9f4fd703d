"""``stream=true``: the transcript as server-sent events, read by the official ``openai``
client as its own typed events, and as raw SSE where the wire itself is the point.

The serve tier's model has random weights: the assertions are about events, order, text
equality and limits, never about words (tests/real streams the real tiny.en).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests import media
from tests.serve.support import API_KEY, EXAMPLES, INGRESS_ONGOING, INGRESS_QUEUED, Server
from tests.serve.test_load import _REST

pytestmark = pytest.mark.serve

ROUTE = "/v1/audio/transcriptions"


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 s of real speech: three chunks or more."""
    return media.write_audio(tmp_path_factory.mktemp("stream") / "long.flac",
                             media.speech(80, seed=3))


def _stream(client: Any, path: Path, **kwargs: Any) -> list[Any]:
    with path.open("rb") as f:
        return list(client.audio.transcriptions.create(model="whisper-1", file=f,
                                                       stream=True, **kwargs))


def _sse(response: Any) -> list[dict[str, Any]]:
    """The ``data:`` payloads of a raw event stream, in order."""
    lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    return [json.loads(line[len("data: "):]) for line in lines]


def test_openai_client_iterates_typed_deltas_then_done(openai_client: Any,
                                                        long_speech: Path) -> None:
    from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent

    events = _stream(openai_client, long_speech)
    *deltas, done = events
    assert deltas and all(isinstance(e, TranscriptionTextDeltaEvent) for e in deltas)
    assert isinstance(done, TranscriptionTextDoneEvent) and done.type == "transcript.text.done"
    assert "".join(e.delta for e in deltas) == done.text
    assert done.usage is not None and done.usage.type == "tokens"
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
    assert done.usage.input_token_details is not None
    assert done.usage.input_token_details.audio_tokens == done.usage.input_tokens > 0


def test_streamed_text_and_languages_equal_the_answer_without_stream(
        openai_client: Any, http: Any, long_speech: Path) -> None:
    """The same text, and the same seconds counted for the language it was heard in."""
    def languages() -> dict[str, float]:
        seconds: dict[str, float] = http.get("/v1/stats").json()["language_seconds"]
        return seconds

    before = languages()
    *_, done = _stream(openai_client, long_speech)
    streamed = languages()
    with long_speech.open("rb") as f:
        plain = openai_client.audio.transcriptions.create(model="whisper-1", file=f)
    after = languages()
    assert done.text == plain.text

    def added(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
        return {k: round(v - start.get(k, 0.0), 6) for k, v in end.items()
                if v != start.get(k, 0.0)}

    assert added(before, streamed) == added(streamed, after)
    assert sum(added(before, streamed).values()) > 0


def test_wire_is_server_sent_events_with_openai_fields(http: Any, jfk: Path) -> None:
    with http.stream("POST", ROUTE, files={"file": ("jfk.flac", jfk.read_bytes())},
                     data={"model": "whisper-1", "stream": "true",
                           "response_format": "text"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _sse(response)
    assert [e["type"] for e in events][-1] == "transcript.text.done"
    for event in events[:-1]:
        assert set(event) == {"type", "delta"} and event["type"] == "transcript.text.delta"
    assert set(events[-1]) == {"type", "text", "usage"}
    assert set(events[-1]["usage"]) == {"type", "input_tokens", "output_tokens",
                                        "total_tokens", "input_token_details"}


def test_diarized_json_streams_speaker_segments_before_done(openai_client: Any,
                                                            speaker_weights: str) -> None:
    from openai.types.audio import TranscriptionTextSegmentEvent

    events = _stream(openai_client, EXAMPLES / "stereo_diarization.wav",
                     response_format="diarized_json")
    types = [e.type for e in events]
    assert types[-1] == "transcript.text.done"
    segments = [e for e in events if isinstance(e, TranscriptionTextSegmentEvent)]
    assert segments and types.index("transcript.text.segment") > max(
        (i for i, t in enumerate(types) if t == "transcript.text.delta"), default=-1)
    assert {s.speaker for s in segments} <= {"left", "right"}
    assert all(s.id.startswith("seg_") and 0 <= s.start <= s.end <= 5.5 for s in segments)
    assert " ".join(s.text for s in segments).split() == events[-1].text.split()


def test_silence_streams_only_an_empty_done(openai_client: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "quiet.wav", media.silence(5))
    events = _stream(openai_client, path)
    assert [e.type for e in events] == ["transcript.text.done"] and events[0].text == ""


@pytest.mark.parametrize("fmt", ["srt", "vtt", "verbose_json"])
def test_formats_without_a_stream_shape_are_400(openai_client: Any, jfk: Path,
                                                fmt: str) -> None:
    import openai

    with pytest.raises(openai.BadRequestError, match="stream"):
        _stream(openai_client, jfk, response_format=fmt)


def test_unreadable_file_is_a_400_not_a_stream(openai_client: Any, tmp_path: Path) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        _stream(openai_client, media.not_audio(tmp_path / "notes.mp3"))
    assert caught.value.param == "file"


def test_streams_need_the_key_where_keys_are_set(server: Server, jfk: Path) -> None:
    import openai

    wrong = openai.OpenAI(base_url=server.locked_url + "/v1", api_key="sk-wrong",
                          max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError):
        _stream(wrong, jfk)
    right = openai.OpenAI(base_url=server.locked_url + "/v1", api_key=API_KEY,
                          max_retries=0, timeout=120)
    assert _stream(right, jfk)[-1].type == "transcript.text.done"


def test_body_limit_holds_for_streams(http: Any, server: Server) -> None:
    big = b"\0" * (server.config.server.max_body_bytes + 1)
    response = http.post(ROUTE, files={"file": ("big.wav", big)},
                         data={"model": "whisper-1", "stream": "true"})
    assert response.status_code == 413 and response.json()["error"]["code"]


def _chunks_run() -> int:
    from ray import serve

    return int(serve.get_deployment_handle("Transcriber", "scribe").chunks_run.remote()
               .result())


def _settled(count: Any, quiet_s: float = 3.0, timeout_s: float = 120.0) -> int:
    """``count()`` once it has not moved for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    last = count()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = count()
        if now == last:
            return int(now)
        last = now
    raise AssertionError("the model kept working")


@pytest.mark.slow
def test_client_gone_mid_stream_frees_its_chunks(http: Any, tmp_path: Path) -> None:
    path = media.long_session(tmp_path / "long.flac", minutes=20)
    start = _settled(_chunks_run)
    with path.open("rb") as f:
        whole = http.post(ROUTE, files={"file": ("long.flac", f)}, data={"model": "whisper-1"})
    assert whole.status_code == 200
    session = _settled(_chunks_run) - start  # the chunks the whole session takes
    with http.stream("POST", ROUTE, files={"file": ("long.flac", path.read_bytes())},
                     data={"model": "whisper-1", "stream": "true"}) as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line)
        assert json.loads(first[len("data: "):])["type"] == "transcript.text.delta"
    ran = _settled(_chunks_run) - start - session
    assert 0 < ran < session / 2, (ran, session)


def test_concurrent_streams_share_model_batches(openai_client: Any, http: Any) -> None:
    clips = [EXAMPLES / name for name in ("jfk.flac", "hotwords.mp3")] * 4
    before = http.get("/v1/stats").json()
    with ThreadPoolExecutor(len(clips)) as pool:
        streams = list(pool.map(lambda path: _stream(openai_client, path), clips))
    assert all(events[-1].type == "transcript.text.done" for events in streams)
    after = http.get("/v1/stats").json()
    grown = {int(size): count - before["batch_sizes"].get(size, 0)
             for size, count in after["batch_sizes"].items()}
    assert any(size > 1 and count > 0 for size, count in grown.items()), grown


def test_full_ingress_sheds_streams_with_503_and_retry_after(server: Server,
                                                             openai_client: Any,
                                                             jfk: Path) -> None:
    import openai

    from tests.serve.test_load import _answered_until_quiet, _read_response, _send_stalled

    capacity = INGRESS_ONGOING + INGRESS_QUEUED
    sent: list[Any] = []
    held: list[Any] = []
    try:
        for _ in range(5):  # waves until one is shed whole: the ingress is full
            wave = [_send_stalled(server.url) for _ in range(capacity)]
            sent += wave
            answered = _answered_until_quiet(wave)
            for sock in answered:
                _read_response(sock)
            held += [s for s in wave if s not in answered]
            if len(answered) == capacity:
                break
        with pytest.raises(openai.APIStatusError) as caught:
            _stream(openai_client, jfk)
        for sock in held:
            sock.sendall(_REST)
        for sock in held:
            _read_response(sock)
    finally:
        for sock in sent:
            sock.close()
    assert caught.value.status_code == 503
    assert caught.value.response.headers.get("retry-after") == "2"
    assert _stream(openai_client, jfk)[-1].type == "transcript.text.done"
