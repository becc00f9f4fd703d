"""Pack speech into model-sized chunks, exactly as faster-whisper's batched pipeline does.

A chunk is speech regions concatenated up to ``chunk_length_s``. Its ``offset_s`` lives on
the *collapsed* timeline (speech only), and ``segments`` keeps the regions' sample ranges on
the session's own timeline, so timestamps can be mapped back later.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from faster_whisper.vad import collect_chunks

from scribe.audio import Audio
from scribe.config import SAMPLE_RATE
from scribe.vad import SampleRange


@dataclass(frozen=True)
class AudioChunk:
    """One chunk's samples and where they came from."""

    index: int
    samples: Audio
    offset_s: float
    duration_s: float
    segments: list[SampleRange]


def make_chunks(
    samples: Audio, speech: list[SampleRange], chunk_length_s: int, *, origin: int = 0
) -> list[AudioChunk]:
    """Chunks of ``samples`` holding the ``speech`` ranges; none when there is no speech.

    ``origin`` is where ``samples`` starts in the session (samples cut by trimming), added
    to each segment so they refer to the session's own timeline.
    """
    speech = _split_long(speech, chunk_length_s * SAMPLE_RATE)
    if not speech:
        return []
    pieces, metadata = collect_chunks(samples, speech, max_duration=chunk_length_s)
    owners = _ranges_by_chunk(speech, [int(round(m["offset"] * SAMPLE_RATE)) for m in metadata])
    return [
        AudioChunk(
            index=i,
            samples=piece,
            offset_s=float(meta["offset"]),
            duration_s=float(meta["duration"]),
            segments=[{"start": r["start"] + origin, "end": r["end"] + origin} for r in ranges],
        )
        for i, (piece, meta, ranges) in enumerate(
            (p, m, r) for p, m, r in zip(pieces, metadata, owners, strict=True) if len(p))
    ]


def _split_long(speech: list[SampleRange], limit: int) -> list[SampleRange]:
    """Ranges no longer than ``limit`` samples: a longer one would be cut to the model's
    window later and its tail silently lost."""
    out: list[SampleRange] = []
    for r in speech:
        out.extend({"start": s, "end": min(s + limit, r["end"])}
                   for s in range(r["start"], r["end"], limit))
    return out


def _ranges_by_chunk(speech: list[SampleRange], offsets: list[int]) -> list[list[SampleRange]]:
    """The speech ranges each chunk holds, found from where each range starts once silence
    is removed. (``collect_chunks``'s own per-chunk ``segments`` drops the first range of
    every chunk after the first, so it cannot be used to restore timestamps.)"""
    owners: list[list[SampleRange]] = [[] for _ in offsets]
    collapsed = 0
    for r in speech:
        owners[bisect.bisect_right(offsets, collapsed) - 1].append(r)
        collapsed += r["end"] - r["start"]
    return owners
