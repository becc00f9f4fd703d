"""A session's whole CPU side: decode, trim, normalise, VAD, chunk, features.

One pure function, :func:`preprocess`, that the batch job's CPU actors and the online
service's preprocessing deployment both call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from scribe.audio import decode, peak_normalize, trim_silence
from scribe.chunking import make_chunks
from scribe.config import SAMPLE_RATE, TranscribeOptions
from scribe.features import Features, log_mel
from scribe.vad import SampleRange, speech_ranges


@dataclass(frozen=True)
class PreparedChunk:
    """A chunk ready for the model: its features and where it sits in its session."""

    index: int
    features: Features
    offset_s: float
    duration_s: float
    segments: list[SampleRange]


@dataclass
class PreparedSession:
    """Everything the model stage and the assembler need to know about one session."""

    duration_s: float
    speech_duration_s: float
    chunks: list[PreparedChunk]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def preprocess(
    source: str | BinaryIO | Any, options: TranscribeOptions, n_mels: int
) -> PreparedSession:
    """Turn one recording into model-ready chunks. Raises the engine's audio errors."""
    watch = _Stopwatch()
    with watch.stage("decode"):
        decoded = decode(
            source, max_duration_s=options.max_duration_s, timeout_s=options.decode_timeout_s
        )
    samples = decoded.samples
    with watch.stage("trim"):
        start, end = trim_silence(samples, options.trim_threshold_db) if options.trim_silence \
            else (0, len(samples))
        kept = samples[start:end]
        if options.normalize:
            kept = peak_normalize(kept)
    with watch.stage("vad"):
        speech = speech_ranges(kept, options)
    with watch.stage("chunk"):
        chunks = make_chunks(kept, speech, options.chunk_length_s, origin=start)
    with watch.stage("features"):
        prepared = [
            PreparedChunk(c.index, log_mel(c.samples, n_mels), c.offset_s, c.duration_s,
                          c.segments)
            for c in chunks
        ]
    return PreparedSession(
        duration_s=decoded.duration_s,
        speech_duration_s=sum(c.duration_s for c in chunks),
        chunks=prepared,
        timings=watch.timings,
        warnings=decoded.warnings,
        source={
            "sample_rate": decoded.source_sample_rate,
            "channels": decoded.source_channels,
            "codec": decoded.codec,
            "trimmed_start_s": start / SAMPLE_RATE,
            "trimmed_end_s": end / SAMPLE_RATE,
        },
    )
