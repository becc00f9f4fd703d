"""A session's whole CPU side: decode, trim, normalise, VAD, chunk, features.

Two steps so a long session never holds all its features at once: :func:`analyse`
(decode to VAD, and the chunk plan) then :func:`iter_chunks` (each chunk's features, built
as they are consumed). :func:`preprocess` does both eagerly, for short inputs and tests.
The batch job's CPU actors and the online service's preprocessing deployment call these.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from scribe.config import SAMPLE_RATE, TranscribeOptions
from scribe.errors import EmptyAudioError
from scribe.io import storage
from scribe.pipeline.audio import Audio, decode, peak_normalize, trim_silence
from scribe.pipeline.chunking import Chunk, ChunkPlan, chunk_samples, plan_chunks
from scribe.pipeline.features import log_mel
from scribe.pipeline.vad import speech_ranges


@dataclass
class AnalysedSession:
    """A decoded session and its chunk plan; features not computed yet."""

    samples: Audio
    origin: int
    plans: list[ChunkPlan]
    duration_s: float
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def speech_duration_s(self) -> float:
        return sum(p.duration_s for p in self.plans)


@dataclass
class PreparedSession:
    """Everything the model stage and the assembler need to know about one session."""

    duration_s: float
    speech_duration_s: float
    chunks: list[Chunk]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _stage(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def analyse(source: str | BinaryIO | Any, options: TranscribeOptions) -> AnalysedSession:
    """Decode, trim, normalise and find speech; plan the chunks. Raises the audio errors."""
    timings: dict[str, float] = {}
    with _stage(timings, "decode"):
        decoded = decode(
            source, max_duration_s=options.max_duration_s, timeout_s=options.decode_timeout_s
        )
    with _stage(timings, "trim"):
        start, end = (trim_silence(decoded.samples, options.trim_threshold_db)
                      if options.trim_silence else (0, len(decoded.samples)))
        kept = decoded.samples[start:end]
        if options.normalize:
            peak_normalize(kept, in_place=True)
    with _stage(timings, "vad"):
        speech = speech_ranges(kept, options)
    with _stage(timings, "chunk"):
        plans = plan_chunks(speech, options.chunk_length_s, origin=start)
    return AnalysedSession(
        samples=kept, origin=start, plans=plans, duration_s=decoded.duration_s,
        timings=timings, warnings=decoded.warnings,
        source={
            "sample_rate": decoded.source_sample_rate,
            "channels": decoded.source_channels,
            "codec": decoded.codec,
            "trimmed_start_s": start / SAMPLE_RATE,
            "trimmed_end_s": end / SAMPLE_RATE,
        },
    )


def analyse_input(source: str | IO[bytes], options: TranscribeOptions, *,
                  size: int | None = None) -> AnalysedSession:
    """:func:`analyse` one whole input, refusing an empty one (0 bytes) before decoding:
    a uri, opened through :mod:`scribe.io.storage` (its ``size``, when a listing already
    read it, spares a stat), or a seekable file, read from its start."""
    if isinstance(source, str):
        if size is None:
            fs, path = storage.resolve(source)
            size = storage.file_info(fs, path, source).size
        _refuse_empty(size)
        with storage.open_input(source) as f:
            return analyse(f, options)
    source.seek(0, os.SEEK_END)
    _refuse_empty(source.tell())
    source.seek(0)
    return analyse(source, options)


def _refuse_empty(size: int | None) -> None:
    if size == 0:
        raise EmptyAudioError("the file is empty (0 bytes)")


def iter_chunks(session: AnalysedSession, n_mels: int) -> Iterator[Chunk]:
    """Each planned chunk with its log-mel features, computed when it is asked for."""
    session.timings.setdefault("features", 0.0)
    for plan in session.plans:
        with _stage(session.timings, "features"):
            features = log_mel(chunk_samples(session.samples, plan, origin=session.origin),
                               n_mels)
        yield Chunk(plan=plan, features=features)


def preprocess(
    source: str | BinaryIO | Any, options: TranscribeOptions, n_mels: int
) -> PreparedSession:
    """Turn one recording into model-ready chunks, all at once."""
    session = analyse(source, options)
    chunks = list(iter_chunks(session, n_mels))
    return PreparedSession(
        duration_s=session.duration_s, speech_duration_s=session.speech_duration_s,
        chunks=chunks, timings=session.timings, warnings=session.warnings,
        source=session.source,
    )
