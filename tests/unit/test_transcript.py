"""Assembly: a session's chunks back into segments on its own timeline, its language
voted over its chunks, nothing past the end of the recording, and the record's fields."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from scribe.config import TranscribeOptions
from scribe.pipeline.chunking import ChunkOutput
from scribe.pipeline.preprocess import PreparedSession
from scribe.pipeline.transcript import restore_segments, session_language
from scribe.pipeline.whisper import WhisperEngine

pytestmark = pytest.mark.unit


def _one_session(engine: WhisperEngine, prepared: PreparedSession,
                 options: TranscribeOptions) -> list[ChunkOutput]:
    """All of one session's chunks through one model call, ready to assemble."""
    return engine.transcribe([dataclasses.replace(c, session_id="s") for c in prepared.chunks],
                             options)


def test_detected_language_is_voted_per_session(engine: WhisperEngine,
                                                clips: dict[str, Any]) -> None:
    _, prepared = clips["long"]
    outputs = _one_session(engine, prepared, engine.options.model_copy(update={"language": None}))
    assert len({o.language for o in outputs}) == 1, "one session, one language in a batch"
    language, share = session_language(outputs)
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


def test_ok_and_error_records_share_the_base_fields(clips: dict[str, Any]) -> None:
    from scribe.pipeline.transcript import error_record, ok_record, record_base

    _, prepared = clips["jfk.flac"]
    before = record_base("s", model="m", uri="/s.wav", language="en")
    after = record_base("s", model="m", uri="/s.wav", language="en", analysis=prepared)
    assert set(before) == set(after)
    assert (before["duration_s"], before["timings"], before["source"]) == (0.0, {}, {})
    assert after["duration_s"] == prepared.duration_s and after["source"] == prepared.source
    assert after["timings"] is not prepared.timings, "a copy: the record's own"
    failed, done = error_record(before, "boom"), ok_record(after, [])
    assert set(failed) == set(done) and done["model"] == failed["model"] == "m"


def test_words_found_for_aligned_timestamps_leave_the_record_unless_asked_for(
        engine: WhisperEngine, clips: dict[str, Any]) -> None:
    from scribe.pipeline.transcript import ok_record, record_base

    _, prepared = clips["jfk.flac"]
    aligned = engine.options.model_copy(update={"timestamps": "aligned"})
    outputs = _one_session(engine, prepared, aligned)
    assert all(s["words"] for o in outputs for s in o.segments), "aligned: words found"
    for asked in (False, True):
        base = record_base("s", model="m", analysis=prepared,
                           options=TranscribeOptions(word_timestamps=asked))
        segments = ok_record(base, outputs)["segments"]
        assert segments and all(("words" in s) == asked for s in segments)


def test_timeline_only_moves_forward() -> None:
    from scribe.pipeline.transcript import in_order

    segs = [{"start": 60.0, "end": 68.82, "words": [{"start": 60.0, "end": 61.0}]},
            {"start": 68.28, "end": 98.66,
             "words": [{"start": 68.28, "end": 68.9}, {"start": 68.5, "end": 99.0}]},
            {"start": 98.0, "end": 97.0}]
    assert in_order(segs) == [
        {"start": 60.0, "end": 68.82, "words": [{"start": 60.0, "end": 61.0}]},
        {"start": 68.82, "end": 98.66,
         "words": [{"start": 68.82, "end": 68.9}, {"start": 68.9, "end": 98.66}]},
        {"start": 98.66, "end": 98.66}]


def test_assembled_timeline_is_ordered_across_chunk_boundaries(
        engine: WhisperEngine, clips: dict[str, Any]) -> None:
    """The random model's timestamps run backwards past a chunk's end at 48 tokens."""
    _, prepared = clips["long"]
    more = engine.options.model_copy(update={"max_new_tokens": 48})
    segments = restore_segments(_one_session(engine, prepared, more))
    bounds = [t for s in segments for t in (s["start"], s["end"])]
    assert len(segments) > 1 and bounds == sorted(bounds)


def test_a_record_is_in_order_and_inside_the_recording() -> None:
    """Times before 0, running backwards and past the end, from one chunk: the record's
    segments and words only move forward, each word inside its segment, all in
    ``[0, duration_s]``."""
    from scribe.pipeline.chunking import ChunkPlan
    from scribe.pipeline.transcript import ok_record, record_base

    def seg(start: float, end: float, *words: tuple[float, float]) -> Any:
        return {"start": start, "end": end, "text": "x", "avg_logprob": -0.1,
                "no_speech_prob": 0.0, "compression_ratio": 1.0,
                "words": [{"start": a, "end": b, "word": " x", "probability": 0.9}
                          for a, b in words]}

    plan = ChunkPlan(index=0, offset_s=0.0, duration_s=10.0,
                     ranges=[{"start": 0, "end": 160_000}])
    output = ChunkOutput(plan=plan, language="en", language_probability=1.0, segments=[
        seg(-0.5, 2.0, (-0.4, 0.5), (0.4, 3.0)), seg(1.5, 1.0), seg(8.0, 12.0, (8.0, 11.5))])
    base = record_base("s", model="m", options=TranscribeOptions(word_timestamps=True))
    base["duration_s"] = 9.0
    times = [t for s in ok_record(base, [output])["segments"]
             for t in (s["start"], *(u for w in s.get("words", [])
                                     for u in (w["start"], w["end"])),
                       s["end"])]
    assert times == sorted(times) and times[0] == 0.0 and times[-1] == 9.0
