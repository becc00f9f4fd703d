"""Segments from aligned words: a chunk decoded without timestamp tokens is one stretch of
text; its words, once aligned to the audio, are cut into segments at sentence ends and at
the pauses that voice activity detection took out of the chunk.

All times here are on the collapsed (speech-only) timeline, as the model saw the chunk.
"""

from __future__ import annotations

from collections.abc import Callable

from scribe.config import SAMPLE_RATE
from scribe.pipeline.chunking import ChunkPlan
from scribe.schema import Segment, Word

SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")
PAUSE_S = 1.0
"""A silence this long (on the session's own timeline) between two words ends a segment."""


def pauses(plan: ChunkPlan, min_gap_s: float = PAUSE_S) -> list[float]:
    """Where, on the collapsed timeline, two of the chunk's speech ranges meet that had at
    least ``min_gap_s`` of silence between them in the recording."""
    found: list[float] = []
    at = plan.offset_s
    for before, after in zip(plan.ranges, plan.ranges[1:], strict=False):
        at += (before["end"] - before["start"]) / SAMPLE_RATE
        if (after["start"] - before["end"]) / SAMPLE_RATE >= min_gap_s:
            found.append(at)
    return found


def split_segment(segment: Segment, breaks: list[float],
                  encode: Callable[[str], list[int]]) -> list[Segment]:
    """``segment`` cut after each word that ends a sentence and between two words with a
    pause (one of ``breaks``) between their middles. Each part keeps the decode's scores;
    its times, text and tokens are its words'. A segment without words stays whole."""
    from faster_whisper.transcribe import get_compression_ratio

    words = segment.get("words") or []
    if not words:
        return [segment]
    runs: list[list[Word]] = [[words[0]]]
    for before, word in zip(words, words[1:], strict=False):
        if _ends_sentence(before) or _pause_between(before, word, breaks):
            runs.append([])
        runs[-1].append(word)
    parts: list[Segment] = []
    for run in runs:
        text = "".join(w["word"] for w in run)
        parts.append({**segment, "start": run[0]["start"], "end": run[-1]["end"],
                      "text": text, "tokens": encode(text), "words": run,
                      "compression_ratio": get_compression_ratio(text)})
    return parts


def _ends_sentence(word: Word) -> bool:
    return str(word["word"]).strip().endswith(SENTENCE_ENDS)


def _pause_between(before: Word, after: Word, breaks: list[float]) -> bool:
    low = (before["start"] + before["end"]) / 2
    high = (after["start"] + after["end"]) / 2
    return any(low < at <= high for at in breaks)
