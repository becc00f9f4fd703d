"""Speaker turns, and speakers on segments and words.

Turns come from labelled voice windows (each 10 ms frame goes to the speaker whose windows
weigh most there, a window weighing most at its centre) or from channels. A word takes
the speaker of the turn it overlaps most; a segment whose words change speaker is split
at the change, so every segment has one speaker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scribe.schema import Segment, Word

FRAME_S = 0.01


@dataclass(frozen=True)
class Turn:
    """One speaker's stretch of speech, in session seconds."""

    start: float
    end: float
    speaker: str


def turns_from_windows(
    spans: Sequence[tuple[float, float]], labels: Sequence[int], names: Sequence[str]
) -> list[Turn]:
    """Turns from windows ``spans`` labelled ``labels`` (indices into ``names``)."""
    if not spans:
        return []
    n_frames = int(np.ceil(max(e for _, e in spans) / FRAME_S)) + 1
    weight = np.zeros((len(names), n_frames), dtype=np.float32)
    for (start, end), label in zip(spans, labels, strict=True):
        a, b = int(start / FRAME_S), max(int(end / FRAME_S), int(start / FRAME_S) + 1)
        weight[label, a:b] += 1.0 - np.abs(np.linspace(-1.0, 1.0, b - a)) + 1e-3
    covered = weight.sum(axis=0) > 0
    best = np.where(covered, weight.argmax(axis=0), -1)
    edges = np.flatnonzero(np.diff(best)) + 1
    turns = []
    for a, b in zip([0, *edges], [*edges, n_frames], strict=True):
        if best[a] >= 0:
            turns.append(Turn(round(a * FRAME_S, 3), round(b * FRAME_S, 3), names[best[a]]))
    return turns


def speaker_at(start: float, end: float, turns: Sequence[Turn]) -> str | None:
    """The speaker whose turns overlap ``[start, end]`` most; the nearest turn's if none."""
    if not turns:
        return None
    overlap: dict[str, float] = {}
    for t in turns:
        shared = min(end, t.end) - max(start, t.start)
        if shared > 0:
            overlap[t.speaker] = overlap.get(t.speaker, 0.0) + shared
    if overlap:
        return max(overlap, key=overlap.__getitem__)
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(middle - t.start), abs(middle - t.end))).speaker


def label_segments(segments: list[Segment], turns: Sequence[Turn]) -> list[Segment]:
    """``segments`` with ``speaker`` on each segment and word, split where words change
    speaker; ids renumbered. Without turns (no speech found) speakers are ``None``."""
    out: list[Segment] = []
    for seg in segments:
        words = seg.get("words") or []
        for w in words:
            w["speaker"] = speaker_at(w["start"], w["end"], turns)
        if not words:
            out.append({**seg, "speaker": speaker_at(seg["start"], seg["end"], turns)})
            continue
        out.extend(_split_by_speaker(seg, words))
    for i, seg in enumerate(out):
        seg["id"] = i
    return out


def _split_by_speaker(seg: Segment, words: list[Word]) -> list[Segment]:
    runs: list[list[Word]] = []
    for w in words:
        if runs and runs[-1][-1]["speaker"] == w["speaker"]:
            runs[-1].append(w)
        else:
            runs.append([w])
    if len(runs) == 1:
        return [{**seg, "speaker": runs[0][0]["speaker"]}]
    return [
        {**seg, "start": run[0]["start"], "end": run[-1]["end"], "words": run,
         "text": "".join(w["word"] for w in run).strip(), "speaker": run[0]["speaker"]}
        for run in runs
    ]


def label_channel(segments: list[Segment], speaker: str) -> list[Segment]:
    """``segments`` transcribed from one speaker's channel, labelled with that speaker."""
    for seg in segments:
        seg["speaker"] = speaker
        for w in seg.get("words") or []:
            w["speaker"] = speaker
    return segments
