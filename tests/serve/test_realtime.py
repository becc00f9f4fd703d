"""Realtime transcription sessions, driven by the official ``openai`` client's realtime
connection against the test server: server VAD turns, client commits, the errors and
limits. The model has random weights: the assertions are about events, never words."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.media import EXAMPLES
from tests.serve.support import API_KEY, REALTIME_IDLE_S, REALTIME_SESSIONS, Server

pytestmark = pytest.mark.serve

RATE = 24_000
STEP = RATE // 10  # 100 ms per append, as a microphone would send
COMPLETED = "conversation.item.input_audio_transcription.completed"


def pcm24k(seconds_of_silence_after: float = 1.5) -> bytes:
    """jfk.flac as 24 kHz PCM16, then silence: one utterance and its end."""
    from scribe.pipeline.audio import decode

    speech = decode(str(EXAMPLES / "jfk.flac")).samples
    at_24k = np.interp(np.arange(0, len(speech), 16_000 / RATE), np.arange(len(speech)),
                       speech)
    audio = np.concatenate([at_24k, np.zeros(int(seconds_of_silence_after * RATE))])
    return bytes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


def send_audio(connection: Any, pcm: bytes) -> None:
    for start in range(0, len(pcm), 2 * STEP):
        piece = pcm[start:start + 2 * STEP]
        connection.input_audio_buffer.append(audio=base64.b64encode(piece).decode())


def events_until(connection: Any, kind: str, limit_s: float = 120) -> list[Any]:
    deadline, seen = time.monotonic() + limit_s, []
    while time.monotonic() < deadline:
        seen.append(connection.recv())
        if seen[-1].type == kind:
            return seen
    raise AssertionError(f"no {kind} in {[e.type for e in seen]}")


def transcripts(connection: Any, limit_s: float = 300) -> list[str]:
    """Every turn's transcript, in the order of its commit, once the audio sent so far is
    all in: a clear is answered after every append before it, so by its ``cleared`` all
    turns are committed."""
    connection.input_audio_buffer.clear()
    deadline, cleared = time.monotonic() + limit_s, False
    items: list[str] = []
    texts: dict[str, str] = {}
    while not (cleared and len(texts) == len(items)) and time.monotonic() < deadline:
        event = connection.recv()
        if event.type == "input_audio_buffer.committed":
            items.append(event.item_id)
        elif event.type == COMPLETED:
            texts[event.item_id] = event.transcript
        cleared = cleared or event.type == "input_audio_buffer.cleared"
    assert cleared and len(texts) == len(items), (items, texts)
    return [texts[item] for item in items]


@pytest.fixture
def realtime(server: Server) -> Iterator[Any]:
    from openai import OpenAI

    client = OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=60)
    with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        yield connection


def test_server_vad_turn_gives_started_stopped_committed_and_completed(realtime: Any
                                                                        ) -> None:
    from openai.types.realtime import (
        ConversationItemInputAudioTranscriptionCompletedEvent,
        SessionCreatedEvent,
    )

    created = realtime.recv()
    assert isinstance(created, SessionCreatedEvent)
    assert created.session.type == "transcription"
    realtime.session.update(session={"type": "transcription", "audio": {"input": {
        "transcription": {"model": "whisper-1", "language": "en"},
        # jfk.flac pauses for 1.1 s twice: one turn needs a longer silence than that
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 1500}}}})
    assert realtime.recv().type == "session.updated"
    send_audio(realtime, pcm24k(2.5))
    events = events_until(realtime, COMPLETED)
    types = [e.type for e in events]
    assert types.index("input_audio_buffer.speech_started") < types.index(
        "input_audio_buffer.speech_stopped") < types.index("input_audio_buffer.committed")
    started = events[types.index("input_audio_buffer.speech_started")]
    stopped = events[types.index("input_audio_buffer.speech_stopped")]
    assert 0 <= started.audio_start_ms < 1000 and 11_000 <= stopped.audio_end_ms <= 12_600
    done = events[-1]
    assert isinstance(done, ConversationItemInputAudioTranscriptionCompletedEvent)
    assert done.item_id == started.item_id == stopped.item_id
    deltas = [e.delta for e in events if e.type.endswith("transcription.delta")]
    assert "".join(deltas) == done.transcript
    assert done.usage.type == "tokens"


def test_default_server_vad_cuts_turns_at_half_a_second_of_silence(realtime: Any) -> None:
    realtime.recv()
    send_audio(realtime, pcm24k(1.5))
    assert len(transcripts(realtime)) == 4  # jfk.flac's three pauses of 0.6-1.1 s


def test_client_commits_without_turn_detection(realtime: Any) -> None:
    realtime.recv()
    realtime.session.update(session={"type": "transcription",
                                     "audio": {"input": {"turn_detection": None}}})
    updated = realtime.recv()
    assert updated.type == "session.updated"
    assert updated.session.audio.input.turn_detection is None
    send_audio(realtime, pcm24k(0.2))
    realtime.input_audio_buffer.commit()
    events = events_until(realtime, COMPLETED)
    assert "input_audio_buffer.speech_started" not in [e.type for e in events]
    assert "input_audio_buffer.committed" in [e.type for e in events]


def test_unsupported_events_are_error_events_and_the_session_goes_on(realtime: Any) -> None:
    realtime.recv()
    realtime.response.create()
    error = realtime.recv()
    assert error.type == "error" and "not supported" in error.error.message
    realtime.session.update(session={"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcmu"}}}})
    error = realtime.recv()
    assert error.type == "error" and error.error.param == "session.audio.input.format"
    realtime.input_audio_buffer.commit()  # nothing appended
    assert realtime.recv().error.code == "input_audio_buffer_commit_empty"
    realtime.input_audio_buffer.clear()
    assert realtime.recv().type == "input_audio_buffer.cleared"


def test_conversation_intent_is_refused_with_an_error_event(server: Server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.api, api_key="unused", max_retries=0)
    with client.realtime.connect(model="gpt-realtime") as connection:
        error = connection.recv()
    assert error.type == "error" and "intent=transcription" in error.error.message


def test_idle_session_is_closed_with_an_error_event(realtime: Any) -> None:
    from openai import OpenAIError
    from websockets.exceptions import ConnectionClosed

    realtime.recv()
    started = time.monotonic()
    error = realtime.recv()
    assert error.type == "error" and error.error.code == "idle_timeout"
    assert REALTIME_IDLE_S - 0.5 < time.monotonic() - started < REALTIME_IDLE_S + 10
    with pytest.raises((ConnectionClosed, OpenAIError)):
        realtime.recv()


def test_sessions_past_the_limit_are_refused(server: Server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.api, api_key="unused", max_retries=0)
    held = [client.realtime.connect(extra_query={"intent": "transcription"}).enter()
            for _ in range(REALTIME_SESSIONS)]
    try:
        assert all(c.recv().type == "session.created" for c in held)
        with client.realtime.connect(extra_query={"intent": "transcription"}) as extra:
            error = extra.recv()
        assert error.type == "error" and error.error.code == "session_limit"
    finally:
        for connection in held:
            connection.close()
    time.sleep(0.5)
    with client.realtime.connect(extra_query={"intent": "transcription"}) as again:
        assert again.recv().type == "session.created"


def test_realtime_needs_the_key_where_keys_are_set(server: Server) -> None:
    from openai import OpenAI
    from websockets.exceptions import InvalidStatus

    wrong = OpenAI(base_url=server.locked_url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(InvalidStatus, match="403"):
        wrong.realtime.connect(extra_query={"intent": "transcription"}).enter()
    right = OpenAI(base_url=server.locked_url + "/v1", api_key=API_KEY, max_retries=0)
    with right.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        assert connection.recv().type == "session.created"
