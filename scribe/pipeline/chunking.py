"""Pack speech into model-sized chunks, exactly as faster-whisper's batched pipeline does.

A chunk is speech regions concatenated up to ``chunk_length_s``. Its ``offset_s`` lives on
the *collapsed* timeline (speech only), and ``ranges`` keeps the regions' sample ranges on
the session's own timeline, so timestamps can be mapped back later.

The engine's three chunk types live here: :class:`ChunkPlan`, where a chunk lies,
:class:`Chunk`, a planned chunk with its features, as the model takes it, and
:class:`ChunkOutput`, what the model made of one.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from faster_whisper.vad import collect_chunks

from scribe.config import SAMPLE_RATE
from scribe.pipeline.audio import Audio
from scribe.pipeline.features import Features
from scribe.pipeline.vad import SampleRange
from scribe.schema import Segment

if TYPE_CHECKING:
    from scribe.pipeline.speakers.voices import VoiceWindow

_NO_AUDIO: Audio = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class ChunkPlan:
    """Where one chunk's speech lies: ranges on the session's timeline, and its place on the
    collapsed timeline. Planning needs no samples, so a long session's chunks can be built
    one at a time. With speaker labels on, ``channel`` is the channel it was cut from (one
    speaker per channel) and ``voices`` its speech windows' embeddings (voices)."""

    index: int
    offset_s: float
    duration_s: float
    ranges: list[SampleRange]
    channel: int | None = None
    voices: tuple[VoiceWindow, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A planned chunk with its log-mel features, ready for the model. ``session_id`` names
    its session (for the language vote and prompt chains; in Serve, its request) and
    ``language`` is the one asked for, if any."""

    plan: ChunkPlan
    features: Features
    session_id: str = ""
    language: str | None = None


@dataclass
class ChunkOutput:
    """The model's segments for one chunk, on the collapsed (speech-only) timeline, with
    the chunk's plan (to map them back onto the session's). ``timings["model"]`` is the
    chunk's share of its model call's time."""

    plan: ChunkPlan
    segments: list[Segment]
    language: str
    language_probability: float
    timings: dict[str, float] = field(default_factory=dict)


def plan_chunks(
    speech: list[SampleRange], chunk_length_s: int, *, origin: int = 0, first: int = 0,
    channel: int | None = None,
) -> list[ChunkPlan]:
    """Pack ``speech`` ranges into chunks of at most ``chunk_length_s`` seconds, numbered
    from ``first`` (``channel``: the channel they were cut from, if split).

    ``origin`` is where the analysed samples start in the session (samples cut by
    trimming); it is added to each range so plans refer to the session's own timeline.
    """
    return chunk_plans(pack(speech, chunk_length_s, origin=origin), first=first,
                       channel=channel)


def pack(speech: list[SampleRange], chunk_length_s: int, *, origin: int = 0
         ) -> list[list[SampleRange]]:
    """Each chunk's speech ranges on the session's timeline (``speech`` starts at
    ``origin``), packed as faster-whisper's batched pipeline packs them: its own
    ``collect_chunks``, run on the ranges alone (an empty signal), gives the same chunks
    without materialising any chunk's audio. Packing reads only the ranges' lengths."""
    speech = _split_long(_on_session(speech, origin), chunk_length_s * SAMPLE_RATE)
    if not speech:
        return []
    _, metadata = collect_chunks(_NO_AUDIO, speech, max_duration=chunk_length_s)
    owners = _ranges_by_chunk(speech, [int(round(m["offset"] * SAMPLE_RATE)) for m in metadata])
    return [ranges for ranges in owners if ranges]


def chunk_plans(groups: list[list[SampleRange]], *, first: int = 0, collapsed: int = 0,
                channel: int | None = None,
                voices: list[list[VoiceWindow]] | None = None) -> list[ChunkPlan]:
    """The plans of chunks holding ``groups`` of ranges (the session's timeline), in
    order: numbered from ``first``, the first starting ``collapsed`` samples into the
    collapsed timeline, each after the one before (offsets and durations exact: whole
    samples over the rate, as faster-whisper's packing gives them); with ``voices``,
    each group's embedded speech windows. The one place a plan is made."""
    plans = []
    for n, ranges in enumerate(groups):
        samples = _samples(ranges)
        plans.append(ChunkPlan(index=first + n, offset_s=collapsed / SAMPLE_RATE,
                               duration_s=samples / SAMPLE_RATE, ranges=ranges,
                               channel=channel, voices=tuple(voices[n]) if voices else ()))
        collapsed += samples
    return plans


def stream_chunks(
    windows: Iterable[list[SampleRange]], chunk_length_s: int, *, origin: int = 0
) -> Iterator[list[ChunkPlan]]:
    """:func:`plan_chunks` for speech ranges that arrive window by window (VAD's windows):
    each batch of plans as soon as it is final, the same plans as :func:`plan_chunks`
    gives for all the ranges. The packing is greedy, so when a window's ranges are added
    every chunk but the last is final; the last one's ranges are packed again with the
    next window's, and it is yielded at the end."""
    carry: list[SampleRange] = []  # the last chunk's ranges, not final yet
    first = collapsed = 0  # the carried chunk's index and collapsed start (samples)
    for found in windows:
        groups = pack(carry + _on_session(found, origin), chunk_length_s)
        if not groups:
            continue
        if len(groups) > 1:
            final = chunk_plans(groups[:-1], first=first, collapsed=collapsed)
            yield final
            first += len(final)
            collapsed += sum(_samples(ranges) for ranges in groups[:-1])
        carry = groups[-1]
    if carry:
        yield chunk_plans([carry], first=first, collapsed=collapsed)


def _samples(ranges: list[SampleRange]) -> int:
    return sum(r["end"] - r["start"] for r in ranges)


def _on_session(speech: list[SampleRange], origin: int) -> list[SampleRange]:
    """``speech`` (samples from ``origin``) on the session's timeline."""
    return [{"start": r["start"] + origin, "end": r["end"] + origin} for r in speech]


def chunk_samples(samples: Audio, plan: ChunkPlan, *, origin: int = 0) -> Audio:
    """The chunk's audio: its speech ranges of ``samples`` (which start at ``origin``)."""
    pieces = [samples[r["start"] - origin: r["end"] - origin] for r in plan.ranges]
    joined: Audio = np.concatenate(pieces) if len(pieces) > 1 else pieces[0].copy()
    return joined


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


def _split_long(speech: list[SampleRange], limit: int) -> list[SampleRange]:
    """Ranges no longer than ``limit`` samples: a longer one would be cut to the model's
    window later and its tail silently lost."""
    out: list[SampleRange] = []
    for r in speech:
        out.extend({"start": s, "end": min(s + limit, r["end"])}
                   for s in range(r["start"], r["end"], limit))
    return out
