"""A session's whole CPU side: decode, trim, normalise, VAD, chunk, features.

Two steps so a long session never holds all its features at once: analysing (decode to
VAD, and the chunk plan) then :func:`iter_chunks` (each chunk's features, built as they
are consumed). The entry points, by caller:

- the batch job's CPU actors and the online service's preprocessing deployment:
  :func:`open_input` (decode, trim) then :func:`plan_session`, which yields plans as VAD
  finds them, so a long session's first chunks need not wait for the rest to be
  searched, then :func:`iter_chunks`;
- :func:`analyse_input`: the same on an upload, planned whole before it returns;
- :func:`analyse` (any source, no empty-input check) then :func:`iter_chunks`, and
  :func:`preprocess`, which does it all eagerly, for short inputs, tests and benchmarks.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, TypeVar

from scribe.config import SAMPLE_RATE, TranscribeOptions
from scribe.errors import EmptyAudioError
from scribe.io import storage
from scribe.pipeline.audio import Audio, DecodedAudio, decode, peak_normalize, trim_silence
from scribe.pipeline.chunking import Chunk, ChunkPlan, chunk_samples, plan_chunks, stream_chunks
from scribe.pipeline.features import log_mel
from scribe.pipeline.speakers import channels as speaker_channels
from scribe.pipeline.vad import speech_ranges, speech_windows

T = TypeVar("T")


@dataclass
class AnalysedSession:
    """A decoded session and its chunk plan; features not computed yet.

    With one speaker per channel, ``channel_samples`` holds each channel, and each plan
    says which one it was cut from; with speakers from voices, each plan carries its
    embedded voice windows."""

    samples: Audio
    origin: int
    plans: list[ChunkPlan]
    duration_s: float
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    channel_samples: list[Audio] = field(default_factory=list)

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
    """Decode, trim, normalise and find speech; plan the chunks; with speakers on, split
    the channels or embed the voices. Raises the audio errors."""
    return _planned(_open_session(source, options), options)


def _planned(session: AnalysedSession, options: TranscribeOptions) -> AnalysedSession:
    for _ in plan_session(session, options):
        pass
    return session


def _open_session(source: str | BinaryIO | Any, options: TranscribeOptions
                  ) -> AnalysedSession:
    """Decode and trim: a session with no chunk plans yet (:func:`plan_session` makes
    them). With one speaker per channel, the channels to transcribe are split here.
    Raises the audio errors."""
    timings: dict[str, float] = {}
    with _stage(timings, "decode"):
        decoded = decode(
            source, max_duration_s=options.max_duration_s, timeout_s=options.decode_timeout_s,
            keep_channels=options.speakers in ("auto", "channels"),
        )
    with _stage(timings, "trim"):
        start, end = (trim_silence(decoded.samples, options.trim_threshold_db)
                      if options.trim_silence else (0, len(decoded.samples)))
    split = _speaker_channels(decoded, options, start, end)
    return AnalysedSession(
        # with channels split, the mono mix is not transcribed: let it go
        samples=split[0] if split else decoded.samples[start:end], origin=start, plans=[],
        duration_s=decoded.duration_s, timings=timings, warnings=decoded.warnings,
        source={
            "sample_rate": decoded.source_sample_rate,
            "channels": decoded.source_channels,
            "codec": decoded.codec,
            "trimmed_start_s": start / SAMPLE_RATE,
            "trimmed_end_s": end / SAMPLE_RATE,
        },
        channel_samples=split,
    )


def plan_session(session: AnalysedSession, options: TranscribeOptions, *,
                 vad_threads: int = 1) -> Iterator[list[ChunkPlan]]:
    """Plan an opened session's chunks, adding them to ``session.plans`` and yielding
    each batch as it is final. Mono without speaker labels streams: a long session's
    first chunks are final once its first VAD windows are searched, before the rest is
    (:func:`scribe.pipeline.chunking.stream_chunks`), ``vad_threads`` windows searched
    at once. Split channels, or voices to embed, are planned whole and yielded once."""
    if session.channel_samples:
        _plan_channels(session, options)
    elif options.speakers == "off":
        for plans in _stream_mono(session, options, vad_threads):
            session.plans.extend(plans)
            yield plans
        return
    else:
        session.plans = [p for plans in _stream_mono(session, options, vad_threads)
                         for p in plans]
        with _stage(session.timings, "speakers"):
            session.plans = _embed_voices(session, options)
    if session.plans:
        yield session.plans


def _speaker_channels(decoded: DecodedAudio, options: TranscribeOptions, start: int,
                      end: int) -> list[Audio]:
    """The channels to transcribe one by one, or none (mono, or not one per speaker)."""
    if decoded.channels is None:
        return []
    left, right = (c[start:end] for c in decoded.channels)
    if options.speakers == "channels" or speaker_channels.one_speaker_per_channel(left, right):
        return [left, right]
    return []


def _stream_mono(session: AnalysedSession, options: TranscribeOptions, vad_threads: int = 1
                 ) -> Iterator[list[ChunkPlan]]:
    if options.normalize:
        peak_normalize(session.samples, in_place=True)
    timings = session.timings
    windows = _timed(speech_windows(session.samples, options, vad_threads), timings, "vad")
    spent: dict[str, float] = {}  # VAD and packing: what is not VAD is packing
    yield from _timed(stream_chunks(windows, options.chunk_length_s, origin=session.origin),
                      spent, "planning")
    timings["chunk"] = spent.get("planning", 0.0) - timings.get("vad", 0.0)


def _timed(items: Iterator[T], timings: dict[str, float], name: str) -> Iterator[T]:
    """``items``, the time spent making each added to ``timings[name]``."""
    while True:
        with _stage(timings, name):
            item = next(items, None)
        if item is None:
            return
        yield item


def _embed_voices(session: AnalysedSession, options: TranscribeOptions) -> list[ChunkPlan]:
    """The plans, each with its speech windows' embeddings."""
    from scribe.pipeline.speakers.encoder import load_encoder
    from scribe.pipeline.speakers.voices import embed_speech

    encoder = load_encoder(options.speaker_encoder, options.speaker_encoder_path)
    found = embed_speech(session.samples, [p.ranges for p in session.plans], encoder,
                         origin=session.origin)
    return [dataclasses.replace(p, voices=tuple(w))
            for p, w in zip(session.plans, found, strict=True)]


def _plan_channels(session: AnalysedSession, options: TranscribeOptions) -> None:
    """Each channel is normalised, searched for speech and chunked on its own; plan
    indices run on across channels, so the model stage sees ordinary chunks."""
    split = session.channel_samples
    for number, samples in enumerate(split):
        if options.normalize:
            peak_normalize(samples, in_place=True)
        with _stage(session.timings, "vad"):
            speech = speech_ranges(samples, options)
            speech = speaker_channels.drop_bleed(speech, samples, split[1 - number])
        with _stage(session.timings, "chunk"):
            plans = plan_chunks(speech, options.chunk_length_s, origin=session.origin)
        first = len(session.plans)
        session.plans.extend([dataclasses.replace(plan, index=first + i, channel=number)
                              for i, plan in enumerate(plans)])


def analyse_input(source: str | IO[bytes], options: TranscribeOptions, *,
                  size: int | None = None) -> AnalysedSession:
    """:func:`analyse` one whole input (see :func:`open_input`)."""
    return _planned(open_input(source, options, size=size), options)


def open_input(source: str | IO[bytes], options: TranscribeOptions, *,
               size: int | None = None) -> AnalysedSession:
    """Decode and trim one whole input (a session with no chunk plans yet:
    :func:`plan_session` makes them), refusing an empty one (0 bytes) before decoding: a
    uri, opened through :mod:`scribe.io.storage` (its ``size``, when a listing already
    read it, spares a stat), or a seekable file, read from its start. With one speaker
    per channel, the channels to transcribe are split here. Raises the audio errors."""
    if isinstance(source, str):
        if size is None:
            fs, path = storage.resolve(source)
            size = storage.file_info(fs, path, source).size
        _refuse_empty(size)
        with storage.open_input(source) as f:
            return _open_session(f, options)
    source.seek(0, os.SEEK_END)
    _refuse_empty(source.tell())
    source.seek(0)
    return _open_session(source, options)


def _refuse_empty(size: int | None) -> None:
    if size == 0:
        raise EmptyAudioError("the file is empty (0 bytes)")


def iter_chunks(session: AnalysedSession, n_mels: int,
                plans: Iterable[ChunkPlan] | None = None) -> Iterator[Chunk]:
    """Each planned chunk (``plans``, by default all the session's) with its log-mel
    features, computed when it is asked for."""
    session.timings.setdefault("features", 0.0)
    for plan in session.plans if plans is None else plans:
        samples = (session.samples if plan.channel is None
                   else session.channel_samples[plan.channel])
        with _stage(session.timings, "features"):
            features = log_mel(chunk_samples(samples, plan, origin=session.origin), n_mels)
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
