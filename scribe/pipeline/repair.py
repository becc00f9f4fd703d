"""The engine's repair passes: what a batch's first decode got wrong, decoded again.

- :func:`fall_back`: chunks that fail the quality gates, at each fallback temperature;
- :func:`decode_remainders`: what the model left after an early end at a timestamp;
- :func:`redo_early_ends`: aligned text that ends early or skips speech, again with
  timestamp tokens.

Each works on a batch at once through the engine (:class:`Decoder`, which
:class:`scribe.pipeline.whisper.WhisperEngine` is), so a pass makes one model call for all
the chunks that need it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from scribe.config import TranscribeOptions
from scribe.pipeline.chunking import Chunk, ChunkOutput
from scribe.pipeline.safeguards import best_attempt, is_silence, needs_fallback

logger = logging.getLogger(__name__)

_BEST_OF = 5  # samples per fallback decode, faster-whisper's best_of
_REMAINDER_PASSES = 3  # at most this many more decodes of one chunk's remainder

# One decode of a chunk: where in the chunk it starts (seconds), and its result.
Piece = tuple[float, dict[str, Any]]
# Where a chunk's encoding already is: an encoder output, and the chunk's row in it.
EncodedRow = tuple[Any, int]
# Marks a result of the fallback's first retry: decoded with timestamp tokens, unprompted,
# at the call's temperature, which is the decode the early-end redo makes.
_TIMESTAMPED = "timestamped_retry"


class Decoder(Protocol):
    """What the repair passes use of the engine: its model, encoder and decoder."""

    model: Any

    @property
    def _fps(self) -> int: ...

    def _encode(self, features: Sequence[Any], width: int,
                known: Sequence[EncodedRow | None]) -> Any: ...

    def _window(self, frames: int, opts: TranscribeOptions) -> int: ...

    def _generate(self, encoder_output: Any, tokenizers: list[Any], opts: TranscribeOptions,
                  best_of: int = 1, previous: Sequence[list[int]] | None = None
                  ) -> list[dict[str, Any]]: ...

    def _transcribe(self, items: Sequence[Chunk], opts: TranscribeOptions,
                    prompts: Sequence[str | None],
                    known: Sequence[EncodedRow | None] | None = None,
                    decoded: Sequence[dict[str, Any] | None] | None = None
                    ) -> list[ChunkOutput]: ...


def fall_back(engine: Decoder, items: Sequence[Chunk], tokenizers: list[Any],
               results: list[dict[str, Any]], opts: TranscribeOptions,
               frames: int, encoded: Any) -> list[dict[str, Any]]:
    """Re-decode the chunks that fail the quality gates, at each fallback temperature in
    turn, all failing chunks of the batch in one call, until they pass.

    With aligned timestamps the first retry is not sampled: it decodes the chunk again
    with Whisper's timestamp tokens, which keep the model's place in the audio where
    text alone ran into a repetition loop (the English-only tiny.en on a minute of
    other languages: one beam decode that passes, against five best-of-5 samplings
    that do not). Only then come the temperatures.

    The failing chunks' rows of ``encoded`` (the batch's encoder output, at ``frames``)
    are taken out of it, or encoded again where it cannot be sliced (the engine's
    ``_encode``): measured with tiny.en on CPU, encoding is about a quarter of the time of
    the best-of-5 decode that follows. Retries carry no prompt: faster-whisper's
    sequential decoding also drops it once it samples, as the text before can be what
    misled the model.
    """
    attempts = [[r] for r in results]
    failing = [i for i, r in enumerate(results) if needs_fallback(r, tokenizers[i], opts)]
    retries = [opts.model_copy(update={"temperature": t})
               for t in opts.temperature_fallback if t > opts.temperature]
    if retries and opts.timestamps == "aligned":
        retries.insert(0, opts.model_copy(update={"timestamps": "predicted"}))
    for retry in retries:
        if not failing:
            break
        retried = engine._generate(
            engine._encode([items[i].features for i in failing], frames,
                         [(encoded, i) for i in failing]),
            [tokenizers[i] for i in failing], retry, best_of=_BEST_OF)
        for i, result in zip(failing, retried, strict=True):
            result[_TIMESTAMPED] = retry.timestamps != opts.timestamps
            attempts[i].append(result)
        failing = [i for i in failing if needs_fallback(attempts[i][-1], tokenizers[i], opts)]
    logger.debug("%d of %d chunks fell back", sum(len(a) > 1 for a in attempts), len(items))
    return [best_attempt(a, tokenizers[i], opts) if i in failing else a[-1]
            for i, a in enumerate(attempts)]

def decode_remainders(engine: Decoder, items: Sequence[Chunk], tokenizers: list[Any],
                       pieces: list[list[Piece]], opts: TranscribeOptions
                       ) -> list[list[Piece]]:
    """Decode again what the model left: a chunk whose text ends at a timestamp more
    than ``remainder_s`` before the chunk does is decoded from that timestamp to its
    end, all such chunks of the batch in one call, up to :data:`_REMAINDER_PASSES`
    times. Sequential decoding seeks to the last timestamp the same way; without it,
    a 30 s chunk loses the sentence after the model's early end (tiny.en on the quality
    benchmark's sessions: one chunk in three, 4-5 s of speech each).

    A remainder is encoded at its own window (the engine's ``_window``), typically 15 s for its
    4-5 s; remainders of equal window share a call. A remainder depends only on its
    own chunk's decoding and length, so batch neighbours still change nothing."""
    if opts.timestamps != "predicted" or opts.remainder_s is None:
        return pieces
    for _ in range(_REMAINDER_PASSES):
        todo = [(i, end) for i, item in enumerate(items)
                if (end := text_end(engine, pieces[i][-1], tokenizers[i], opts)) is not None
                and item.plan.duration_s - end > opts.remainder_s]
        if not todo:
            break
        by_width: defaultdict[int, list[tuple[int, float, Chunk]]] = defaultdict(list)
        for i, end in todo:
            rest = Chunk(plan=items[i].plan, session_id=items[i].session_id,
                         language=items[i].language,
                         features=items[i].features[:, round(end * engine._fps):])
            by_width[engine._window(rest.features.shape[1], opts)].append((i, end, rest))
        for width, group in by_width.items():
            rests = [rest for _, _, rest in group]
            toks = [tokenizers[i] for i, _, _ in group]
            encoded = engine._encode([c.features for c in rests], width,
                                     [None] * len(rests))
            results = fall_back(engine, rests, toks, engine._generate(encoded, toks, opts),
                                      opts, width, encoded)
            for (i, end, _), result in zip(group, results, strict=True):
                pieces[i].append((end, result))
    return pieces

def redo_early_ends(engine: Decoder, items: Sequence[Chunk], outputs: list[ChunkOutput],
                     opts: TranscribeOptions, prompts: Sequence[str | None],
                     rows: Sequence[EncodedRow], results: Sequence[dict[str, Any]]
                     ) -> None:
    """Aligned text whose last word ends more than ``remainder_s`` before its chunk
    does is decoded again with timestamp tokens, so that what it left is read from the
    last timestamp (:func:`decode_remainders`), all such chunks of the batch in one
    call. Text alone can end early too: tiny.en read the first 2.7 s of a 16 s clip
    and stopped (one chunk in about forty); with timestamp tokens it reads on. A chunk
    with no words (silence) is left as it is.

    A prompted chunk with speech no word covers, at its start or between two words,
    is decoded again the same way, without its prompt: the text before it made the
    model skip what it had just read there. Tiny.en on six 10-minute sessions: 5 of 97
    prompted chunks began 3.8-16.8 s in and lost 192 words; on a 12-minute one, two
    left 6.8-12.1 s between two words. VAD keeps at most two paddings of silence
    between speech regions, so an unprompted chunk's longest gap is about a second
    (1.2 s on those sessions); the limit is ``remainder_s`` plus two paddings. The
    redo carries no prompt either, and reuses the chunks' encodings (``rows``), and
    their decodes (``results``) where the fallback's first retry made them: that retry
    decodes as the redo does (timestamp tokens, no prompt, the call's temperature), so
    a chunk whose result it gave is not decoded twice alike (tiny.en on the multilingual
    clip: 1.7 s of its 7.4 s went to the second of two identical 224-token decodes),
    nor sampled again where the temperatures after it failed too."""
    if opts.remainder_s is None:
        return
    limit = opts.remainder_s
    gap = limit + 2 * opts.vad_speech_pad_ms / 1000
    early = [i for i, (item, out) in enumerate(zip(items, outputs, strict=True))
             if ((end := _last_word_end(out)) is not None
                 and item.plan.offset_s + item.plan.duration_s - end > limit)
             or (prompts[i] and _longest_gap(out) > gap)]
    if not early:
        return
    # the hallucination filter runs once, on every chunk, after this
    redone = engine._transcribe([items[i] for i in early], opts.model_copy(update={
        "timestamps": "predicted", "word_timestamps": True,
        "hallucination_silence_threshold": None}), [None] * len(early),
        [rows[i] for i in early],
        [results[i] if results[i].get(_TIMESTAMPED) else None for i in early])
    for i, out in zip(early, redone, strict=True):
        outputs[i].segments = out.segments

def text_end(engine: Decoder, piece: Piece, tokenizer: Any, opts: TranscribeOptions
              ) -> float | None:
    """Where in the chunk a decode's text ended, when it ended cleanly at a timestamp
    past its start; None when it was silence, ended in text (cut by the token cap,
    and already spanning the rest) or made no progress."""
    start, result = piece
    tokens = [t for t in result["tokens"]
              if t < tokenizer.eot or t >= tokenizer.timestamp_begin]
    if is_silence(result, opts) or not tokens or tokens[-1] < tokenizer.timestamp_begin:
        return None
    end = start + (tokens[-1] - tokenizer.timestamp_begin) * engine.model.time_precision
    return end if end > start else None


def _longest_gap(output: ChunkOutput) -> float:
    """The longest stretch of the chunk without a word, before its first word or between
    two (0 without words: silence is not a skip)."""
    words = [w for seg in output.segments for w in seg.get("words") or []]
    if not words:
        return 0.0
    ends = [output.plan.offset_s] + [w["end"] for w in words[:-1]]
    return float(max(w["start"] - end for w, end in zip(words, ends, strict=True)))


def _last_word_end(output: ChunkOutput) -> float | None:
    ends = [seg["words"][-1]["end"] for seg in output.segments if seg.get("words")]
    return float(ends[-1]) if ends else None
