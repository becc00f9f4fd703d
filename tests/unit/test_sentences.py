"""Aligned timestamps: a chunk's words cut into segments at sentence ends and pauses."""

from __future__ import annotations

from typing import Any

import pytest

from scribe.pipeline.chunking import ChunkPlan
from scribe.pipeline.sentences import pauses, split_segment

pytestmark = pytest.mark.unit

SR = 16_000


def _word(text: str, start: float, end: float) -> dict[str, Any]:
    return {"word": text, "start": start, "end": end, "probability": 0.9}


def _segment(words: list[dict[str, Any]]) -> dict[str, Any]:
    return {"start": 100.0, "end": 130.0, "text": "".join(w["word"] for w in words),
            "tokens": [1, 2, 3], "avg_logprob": -0.2, "no_speech_prob": 0.01,
            "compression_ratio": 1.0, "seek": 0, "words": words}


def _encode(text: str) -> list[int]:
    return [len(w) for w in text.split()]


def test_pauses_are_where_ranges_a_second_apart_meet_on_the_collapsed_timeline() -> None:
    # 2 s of speech, 0.5 s silence, 3 s, 4 s silence, 1 s: only the 4 s pause counts
    ranges = [{"start": 0, "end": 2 * SR}, {"start": int(2.5 * SR), "end": int(5.5 * SR)},
              {"start": int(9.5 * SR), "end": int(10.5 * SR)}]
    plan = ChunkPlan(index=3, offset_s=100.0, duration_s=6.0, ranges=ranges)
    assert pauses(plan) == [105.0]
    assert pauses(plan, min_gap_s=0.5) == [102.0, 105.0]
    assert pauses(ChunkPlan(index=0, offset_s=0.0, duration_s=2.0, ranges=ranges[:1])) == []


def test_segments_end_after_sentences_and_at_pauses() -> None:
    words = [_word(" Thank", 100.0, 100.3), _word(" you.", 100.3, 100.6),
             _word(" Could", 101.0, 101.2), _word(" you", 101.2, 101.4),
             _word(" send", 101.4, 101.8), _word(" it", 104.2, 104.4),
             _word(" today?", 104.4, 104.9), _word(" Yes", 105.5, 105.8)]
    parts = split_segment(_segment(words), [102.0], _encode)
    assert [p["text"] for p in parts] == [" Thank you.", " Could you send", " it today?",
                                          " Yes"]
    assert [(p["start"], p["end"]) for p in parts] == [
        (100.0, 100.6), (101.0, 101.8), (104.2, 104.9), (105.5, 105.8)]
    assert [len(p["words"]) for p in parts] == [2, 3, 2, 1]
    assert parts[1]["tokens"] == [5, 3, 4], "the part's own text, encoded"
    assert all(p["avg_logprob"] == -0.2 and p["no_speech_prob"] == 0.01 for p in parts)
    assert "".join(p["text"] for p in parts) == _segment(words)["text"], "no word lost"


def test_a_pause_inside_a_word_does_not_split_it_and_no_words_stay_whole() -> None:
    words = [_word(" long", 100.0, 103.0), _word(" word", 103.0, 103.5)]
    # the pause at 101.0 lies before the first word's middle (101.5): no cut
    assert len(split_segment(_segment(words), [101.0], _encode)) == 1
    assert len(split_segment(_segment(words), [102.0], _encode)) == 2
    bare = {**_segment([]), "words": []}
    assert split_segment(bare, [102.0], _encode) == [bare]
