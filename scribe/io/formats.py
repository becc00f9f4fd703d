"""Writers for a session's transcript: SRT, WebVTT, plain text and JSON.

A segment is a mapping (or an object with attributes) holding ``start`` and ``end`` in
seconds and ``text``; ``words`` may be there too and is ignored by the subtitle formats.
A record's segments come in the recording's bounds and in order
(:func:`scribe.pipeline.transcript.ok_record`); the writers take any segments, so a cue
still never starts before 0 or ends before it starts (players reject one that does), and
a missing or non-finite time reads as 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

__all__ = [
    "Segment",
    "SegmentLike",
    "format_timestamp",
    "full_text",
    "to_json",
    "to_srt",
    "to_txt",
    "to_vtt",
]


class Segment(Protocol):
    """The attributes a segment object needs (faster-whisper's ``Segment`` has them)."""

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...

    @property
    def text(self) -> str: ...


SegmentLike = Segment | Mapping[str, Any]
"""A segment as an object with attributes or as a dict (a transcript record's rows)."""


def format_timestamp(
    seconds: float, *, always_hours: bool = False, decimal: str = "."
) -> str:
    """``[HH:]MM:SS<decimal>mmm``; hours past 99 keep all their digits, negatives are 0."""
    ms = _milliseconds(seconds)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    hours_part = f"{hours:02d}:" if always_hours or hours else ""
    return f"{hours_part}{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def _milliseconds(seconds: float) -> int:
    if not math.isfinite(seconds) or seconds < 0:
        return 0
    return round(seconds * 1000)


def _get(segment: SegmentLike, name: str) -> Any:
    if isinstance(segment, Mapping):
        return segment.get(name)
    return getattr(segment, name, None)


def _clean(text: Any) -> str:
    """Whitespace collapsed to single spaces: a blank line inside a cue would end it."""
    return " ".join(str(text or "").split())


def _cues(segments: Iterable[SegmentLike]) -> list[tuple[float, float, str, str]]:
    """(start, end, text, speaker) for every segment with text, times clamped to
    0 <= start <= end; speaker is "" when the segment has none."""
    cues: list[tuple[float, float, str, str]] = []
    for segment in segments:
        text = _clean(_get(segment, "text"))
        if not text:
            continue
        start = max(_seconds(_get(segment, "start")), 0.0)
        end = max(_seconds(_get(segment, "end")), start)
        cues.append((start, end, text, _clean(_get(segment, "speaker"))))
    return cues


def _prefixed(text: str, speaker: str) -> str:
    """``speaker: text``, as SRT and plain text show who speaks (they have no markup)."""
    return f"{speaker}: {text}" if speaker else text


def _voiced(text: str, speaker: str) -> str:
    """WebVTT's voice span ``<v speaker>text``; ``<``, ``>`` and ``&`` cannot be in a name."""
    name = speaker.translate({ord(c): None for c in "<>&"})
    return f"<v {name}>{text}" if name else text


def _seconds(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def to_srt(segments: Iterable[SegmentLike]) -> str:
    """SubRip: numbered cues from 1, ``HH:MM:SS,mmm``, a blank line between cues."""
    blocks = [
        f"{n}\n{_span(start, end, ',')}\n{_prefixed(text, speaker)}\n"
        for n, (start, end, text, speaker) in enumerate(_cues(segments), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Iterable[SegmentLike]) -> str:
    """WebVTT: the ``WEBVTT`` header, then cues timed ``HH:MM:SS.mmm``; where segments are
    in more than one language, each cue's text is in a ``<lang xx>`` span."""
    segments = list(segments)
    spoken = [_clean(_get(s, "language")) for s in segments if _clean(_get(s, "text"))]
    mixed = len(set(spoken)) > 1
    blocks = [f"{_span(start, end, '.')}\n{_voiced(_in(text, lang if mixed else ''), speaker)}\n"
              for (start, end, text, speaker), lang in zip(_cues(segments), spoken,
                                                           strict=True)]
    return "\n".join(["WEBVTT\n", *blocks])


def _in(text: str, language: str) -> str:
    """WebVTT's language span, for a cue in another language than its neighbours."""
    return f"<lang {language}>{text}</lang>" if language else text


def _span(start: float, end: float, decimal: str) -> str:
    first = format_timestamp(start, always_hours=True, decimal=decimal)
    last = format_timestamp(end, always_hours=True, decimal=decimal)
    return f"{first} --> {last}"


def to_txt(segments: Iterable[SegmentLike]) -> str:
    """One line per segment with text."""
    return "".join(f"{_prefixed(text, speaker)}\n" for _, _, text, speaker in _cues(segments))


def full_text(segments: Iterable[SegmentLike]) -> str:
    """The whole transcript as one string: segment texts joined by single spaces."""
    return _clean(" ".join(_clean(_get(segment, "text")) for segment in segments))


def to_json(record: Mapping[str, Any]) -> str:
    """A transcript record as indented UTF-8 JSON; NaN and infinities become null."""
    return json.dumps(_finite(record), indent=2, ensure_ascii=False, default=_plain) + "\n"


def _finite(value: Any) -> Any:
    # json.dumps would write NaN, which is not JSON: strict parsers reject the whole file.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays (from the model's outputs) as plain Python values."""
    for method in ("tolist", "item"):
        if hasattr(value, method):
            return _finite(getattr(value, method)())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
