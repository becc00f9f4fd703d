"""Assembly: a session's chunks back into segments on its own timeline, its language
voted over its chunks, and nothing past the end of the recording."""

from __future__ import annotations

from typing import Any

import pytest

from scribe.config import TranscribeOptions
from scribe.pipeline.preprocess import PreparedSession
from scribe.pipeline.transcript import AssembledChunk, restore_segments, session_language
from scribe.pipeline.whisper import ChunkInput, WhisperEngine

pytestmark = pytest.mark.unit


def _one_session(engine: WhisperEngine, prepared: PreparedSession,
                 options: TranscribeOptions) -> list[AssembledChunk]:
    """All of one session's chunks through one model call, ready to assemble."""
    outputs = engine.transcribe([
        ChunkInput(c.features, c.offset_s, c.duration_s, group="s") for c in prepared.chunks
    ], options)
    return [AssembledChunk(c.index, c.segments, o)
            for c, o in zip(prepared.chunks, outputs, strict=True)]


def test_detected_language_is_voted_per_session(engine: WhisperEngine,
                                                clips: dict[str, Any]) -> None:
    _, prepared = clips["long"]
    chunks = _one_session(engine, prepared, engine.options.model_copy(update={"language": None}))
    outputs = [c.output for c in chunks]
    assert len({o.language for o in outputs}) == 1, "one session, one language in a batch"
    language, share = session_language(chunks)
    assert language == outputs[0].language and share == 1.0


def test_word_timestamps_land_inside_their_segments(engine: WhisperEngine,
                                                    clips: dict[str, Any]) -> None:
    _, prepared = clips["jfk.flac"]
    words_opts = engine.options.model_copy(update={"word_timestamps": True})
    segments = restore_segments(_one_session(engine, prepared, words_opts))
    words = [w for s in segments for w in s.get("words", [])]
    assert words
    for s in segments:
        for w in s.get("words", []):
            assert s["start"] - 0.01 <= w["start"] <= w["end"] <= s["end"] + 0.01


def test_segments_never_pass_the_recording() -> None:
    from scribe.pipeline.transcript import clamp_to

    segs = [{"start": -0.5, "end": 3.0, "words": [{"start": 2.0, "end": 12.0}]},
            {"start": 9.0, "end": 26.0}]
    assert clamp_to(segs, 11.0) == [
        {"start": 0.0, "end": 3.0, "words": [{"start": 2.0, "end": 11.0}]},
        {"start": 9.0, "end": 11.0}]
