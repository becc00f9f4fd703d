"""The transcript's types, declared once: a :class:`Word`, a :class:`Segment`, a session's
:class:`RecordBase` (what it is and what analysing its audio found) and its
:class:`Record` (the JSON file, Serve's responses' source); and :class:`Analysis`, what
analysing a session's audio found, from which a record base takes those facts.

The transcript's types are ``TypedDict``\\ s, so a record stays the plain JSON-ready dict
the writers, the row codec (:mod:`ray_jobs.rows`, whose Arrow schema a test checks against
these) and Serve's responses already take, with its keys and their types stated in one
place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict


@dataclass
class Analysis:
    """What analysing a session's audio found, as its record reports it (zeros and empties
    before anything is found). The three analysis types are this and their own job:
    ``AnalysedSession``, the CPU side's session at work (its audio and chunk plans);
    ``PreparedSession``, the eager result (every chunk with its features); Serve's
    ``Analysed``, the message between its deployments (how far planning is, or why the
    upload failed)."""

    duration_s: float = 0.0
    speech_duration_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


class Word(TypedDict):
    """A word with its times (seconds on the session's timeline) and the model's confidence;
    ``speaker`` when speakers are labelled."""

    start: float
    end: float
    word: str
    probability: float
    speaker: NotRequired[str | None]


class Segment(TypedDict):
    """A stretch of text with its times and the model's scores, and the ``temperature`` it
    was decoded at (the call's, or a fallback's). In a chunk's output it carries the
    model's ``tokens`` and ``seek`` (collapsed timeline); in a record its ``id`` (session
    timeline) and ``language`` (the language it was decoded in; a session may change
    language). ``words`` when aligned or asked for, ``speaker`` when speakers are
    labelled. Records written before segments had a temperature lack it."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: NotRequired[float]
    id: NotRequired[int]
    language: NotRequired[str | None]
    tokens: NotRequired[list[int]]
    seek: NotRequired[int]
    words: NotRequired[list[Word]]
    speaker: NotRequired[str | None]


class RecordBase(TypedDict):
    """What a session's record starts from: which session, where, the model, the language
    asked for, how to label its speakers, whether its words go in the record, and what
    analysing its audio found (zeros and empties before that)."""

    session_id: str
    uri: str
    model: str | None
    language: str | None
    speakers: str
    num_speakers: int | None
    min_speakers: int
    max_speakers: int
    word_timestamps: bool
    duration_s: float
    speech_duration_s: float
    timings: dict[str, float]
    warnings: list[str]
    source: dict[str, Any]


class Record(TypedDict):
    """A session's record, ok or error, with the same keys either way (the JSON file)."""

    session_id: str
    uri: str
    status: Literal["ok", "error"]
    error: str | None
    language: str | None
    language_probability: float
    duration_s: float
    speech_duration_s: float
    segments: list[Segment]
    text: str
    timings: dict[str, float]
    warnings: list[str]
    source: dict[str, Any]
    model: str | None
