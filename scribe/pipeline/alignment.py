"""Word timestamps: a batch's text aligned to its audio, then faster-whisper's own word
placement chunk by chunk, each chunk from its own offset."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from scribe.pipeline.chunking import Chunk, ChunkOutput, ChunkPlan
from scribe.schema import Segment

# faster-whisper's batched defaults, kept in one place.
_PREPEND_PUNCTUATIONS = "\"'“¿([{-"
_APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


def add_words(model: Any, items: Sequence[Chunk], outputs: list[ChunkOutput],
              tokenizers: list[Any], encode: Callable[[list[int]], Any], *,
              one_by_one: bool) -> None:
    """Word timestamps for ``outputs``: the chunks' text aligned to their audio by
    ``model`` (faster-whisper's ``WhisperModel``), then its word placement chunk by chunk;
    ``encode(indices)`` gives those chunks' encoder output. A GPU aligns the batch in one
    call per language; on CPU (``one_by_one``) each chunk is aligned alone: CTranslate2's
    CPU aligner, like its encoder, costs less per chunk so (tiny.en, int8, eight chunks:
    0.6-0.75 CPU-s one by one against 0.9-1.1 in batches of four or eight).

    ``add_word_timestamps`` carries the last word's end from one list element to the
    next, so over a whole batch one session's last word would steer another's first.
    Each chunk starts instead from its own offset (speech ran up to its cut), which no
    neighbour changes. A chunk without text has no words, and makes no call.
    """
    text_tokens = {i: [t for s in out.segments for t in s["tokens"]
                       if t < tokenizers[i].eot] for i, out in enumerate(outputs)}
    for i in (i for i, tokens in text_tokens.items() if not tokens and outputs[i].segments):
        place_words(model, items[i].plan, outputs[i].segments, tokenizers[i], [])
    by_language: defaultdict[str, list[int]] = defaultdict(list)
    for i, tokens in text_tokens.items():
        if tokens:
            by_language[outputs[i].language].append(i)
    calls = ([[i] for indices in by_language.values() for i in indices]
             if one_by_one else list(by_language.values()))
    for indices in calls:
        tokenizer = tokenizers[indices[0]]
        alignments = model.find_alignment(
            tokenizer, [text_tokens[i] for i in indices], encode(indices),
            [plan_frames(model, items[i].plan) for i in indices])
        for i, alignment in zip(indices, alignments, strict=True):
            place_words(model, items[i].plan, outputs[i].segments, tokenizer, alignment)


def plan_frames(model: Any, plan: ChunkPlan) -> int:
    """The chunk's length in encoder frames, whole seconds up."""
    return int(math.ceil(plan.duration_s) * model.frames_per_second)


def place_words(model: Any, plan: ChunkPlan, segments: list[Segment], tokenizer: Any,
                alignment: list[dict[str, Any]]) -> None:
    """faster-whisper's own word placement for one chunk, on its precomputed alignment."""
    from faster_whisper import WhisperModel

    WhisperModel.add_word_timestamps(
        _Aligned(alignment, model.frames_per_second), [segments], tokenizer, None,
        plan_frames(model, plan), _PREPEND_PUNCTUATIONS, _APPEND_PUNCTUATIONS, plan.offset_s)


@dataclass(frozen=True)
class _Aligned:
    """What ``WhisperModel.add_word_timestamps`` reads from its model when placing one
    chunk's words: the frame rate, and the alignment the batch already computed."""

    alignment: list[dict[str, Any]]
    frames_per_second: int

    def find_alignment(self, *_: Any) -> list[list[dict[str, Any]]]:
        return [self.alignment]
