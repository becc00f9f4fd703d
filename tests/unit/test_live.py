"""The pure parts of live transcripts: deltas in order, realtime settings and buffer."""

from __future__ import annotations

import numpy as np
import pytest

from scribe.io.formats import full_text
from scribe.pipeline.chunking import ChunkOutput, ChunkPlan
from serve_app.realtime import Buffer, Settings, TurnDetection, Unsupported, apply_update
from serve_app.streaming import InOrder

pytestmark = pytest.mark.unit


def _output(index: int, *texts: str) -> ChunkOutput:
    plan = ChunkPlan(index=index, offset_s=30.0 * index, duration_s=30.0, ranges=[])
    return ChunkOutput(plan=plan, segments=[{"text": t} for t in texts], language="en",
                       language_probability=1.0)


def test_deltas_follow_the_chunks_order_and_join_into_the_full_text() -> None:
    outputs = [_output(0, " Hello there."), _output(1, ""), _output(2, " Two ", "parts "),
               _output(3, "last")]
    order = InOrder()
    deltas = []
    for number in (2, 0, 3, 1):  # done out of order, as batches finish
        deltas.append(list(order.add(number, outputs[number])))
    assert deltas == [[], ["Hello there."], [], [" Two parts", " last"]]
    whole = full_text([s for out in outputs for s in out.segments])
    assert "".join(d for step in deltas for d in step) == whole == order.said


def test_session_update_changes_what_it_names_and_keeps_the_rest() -> None:
    first = apply_update(Settings(), {"type": "transcription", "audio": {"input": {
        "transcription": {"language": "de", "prompt": "Ray"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}}})
    assert (first.language, first.prompt) == ("de", "Ray")
    assert first.turns == TurnDetection(silence_duration_ms=800)
    second = apply_update(first, {"audio": {"input": {"turn_detection": None}}})
    assert second.turns is None and second.language == "de"
    assert Settings().session()["audio"]["input"]["format"] == {"type": "audio/pcm",
                                                                 "rate": 24000}


@pytest.mark.parametrize(("session", "param"), [
    ({"type": "realtime"}, "session.type"),
    ({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
     "session.audio.input.format"),
    ({"audio": {"input": {"noise_reduction": {"type": "near_field"}}}},
     "session.audio.input.noise_reduction"),
    ({"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}},
     "session.audio.input.turn_detection.type"),
])
def test_what_is_not_supported_is_named(session: dict[str, object], param: str) -> None:
    with pytest.raises(Unsupported) as caught:
        apply_update(Settings(), session)
    assert caught.value.param == param


def test_buffer_takes_turns_and_keeps_the_session_clock() -> None:
    buffer = Buffer()
    for start in range(0, 48_000, 2_400):
        buffer.append(np.arange(start, start + 2_400, dtype=np.int32).astype(np.int16))
    assert np.array_equal(buffer.tail(45_000), np.arange(45_000, 48_000).astype(np.int16))
    turn = buffer.take(24_000)
    assert len(turn) == 24_000 and buffer.samples == 24_000
    assert buffer.ms(0) == 1000 and buffer.speech_from is None
