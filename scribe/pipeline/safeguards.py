"""The quality gates sequential faster-whisper applies per 30 s window, as pure functions
over one chunk's decoding result, so the batched model stage can apply them per chunk.

A result is the dict :meth:`WhisperEngine._generate` returns per chunk: ``tokens``,
``avg_logprob`` and ``no_speech_prob``.
"""

from __future__ import annotations

from typing import Any

from scribe.config import TranscribeOptions
from scribe.schema import Segment, Word

Result = dict[str, Any]

# faster-whisper's punctuation set for the anomaly score (generate_segments).
_PUNCTUATION = "\"'“¿([{-\"'.。,，!！?？:：”)]}、"


def is_silence(result: Result, opts: TranscribeOptions) -> bool:
    """The no-speech gate: likely no speech, and the text not confident enough to keep."""
    if opts.no_speech_threshold is None or result["no_speech_prob"] <= opts.no_speech_threshold:
        return False
    return opts.log_prob_threshold is None or result["avg_logprob"] <= opts.log_prob_threshold


def compression_ratio(result: Result, tokenizer: Any) -> float:
    """gzip ratio of the chunk's text, as faster-whisper measures it for the fallback."""
    from faster_whisper.transcribe import get_compression_ratio

    return float(get_compression_ratio(tokenizer.decode(result["tokens"]).strip()))


def needs_fallback(result: Result, tokenizer: Any, opts: TranscribeOptions) -> bool:
    """True when the chunk is too repetitive or too improbable, unless it is silence
    (``generate_with_fallback``'s rule)."""
    too_repetitive = (opts.compression_ratio_threshold is not None and compression_ratio(
        result, tokenizer) > opts.compression_ratio_threshold)
    too_improbable = (opts.log_prob_threshold is not None
                      and result["avg_logprob"] < opts.log_prob_threshold)
    silent = (opts.no_speech_threshold is not None and opts.log_prob_threshold is not None
              and result["no_speech_prob"] > opts.no_speech_threshold and too_improbable)
    return (too_repetitive or too_improbable) and not silent


def best_attempt(attempts: list[Result], tokenizer: Any, opts: TranscribeOptions) -> Result:
    """When every temperature failed: the most probable attempt among those that are not
    too repetitive (or among all), as faster-whisper picks."""
    threshold = opts.compression_ratio_threshold
    varied = [a for a in attempts if threshold is None
              or compression_ratio(a, tokenizer) <= threshold]
    return max(varied or attempts, key=lambda a: float(a["avg_logprob"]))


def _word_anomaly(word: Word) -> float:
    """faster-whisper's score for a word: improbable, very short or very long."""
    duration = word["end"] - word["start"]
    score = 1.0 if word.get("probability", 0.0) < 0.15 else 0.0
    if duration < 0.133:
        score += (0.133 - duration) * 15
    return float(score + max(duration - 2.0, 0.0))


def is_anomaly(segment: Segment | None) -> bool:
    """faster-whisper's hallucination test over a segment's first eight words."""
    if segment is None or not segment.get("words"):
        return False
    words = [w for w in segment["words"] if w["word"] not in _PUNCTUATION][:8]
    score = sum(_word_anomaly(w) for w in words)
    return score >= 3 or score + 0.01 >= len(words)


def drop_hallucinations(segments: list[Segment], start_s: float, end_s: float,
                        threshold: float) -> list[Segment]:
    """A chunk's segments without the anomalous ones that silence surrounds.

    faster-whisper's ``hallucination_silence_threshold`` rule, on a chunk spanning
    ``start_s``-``end_s``: a chunk edge within 2 s counts as silence, as a window edge
    does there. Sequential decoding then seeks past the segment and decodes the rest
    again; in a batch the rest was decoded already, so only the segment goes.
    """
    kept: list[Segment] = []
    last_end = start_s
    for i, seg in enumerate(segments):
        if not seg.get("words") or not is_anomaly(seg):
            kept.append(seg)
            last_end = seg["end"] if seg.get("words") else last_end
            continue
        following = next((s for s in segments[i + 1:] if s.get("words")), None)
        next_start = following["words"][0]["start"] if following else end_s
        before = seg["start"] - last_end > threshold or seg["start"] - start_s < 2.0
        after = (next_start - seg["end"] > threshold or is_anomaly(following)
                 or end_s - seg["end"] < 2.0)
        if not (before and after):
            kept.append(seg)
            last_end = seg["end"]
    return kept
