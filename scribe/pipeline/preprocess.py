"""A session's whole CPU side: decode, trim, normalise, VAD, chunk, features.

Two steps so a long session never holds all its features at once: :func:`analyse`
(decode to VAD, and the chunk plan) then :func:`iter_chunks` (each chunk's features, built
as they are consumed). :func:`preprocess` does both eagerly, for short inputs and tests.
The batch job's CPU actors and the online service's preprocessing deployment call these.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from scribe.config import SAMPLE_RATE, TranscribeOptions
from scribe.errors import EmptyAudioError
from scribe.io import storage
from scribe.pipeline.audio import Audio, DecodedAudio, decode, peak_normalize, trim_silence
from scribe.pipeline.chunking import Chunk, ChunkPlan, chunk_samples, plan_chunks
from scribe.pipeline.features import log_mel
from scribe.pipeline.speakers import channels as speaker_channels
from scribe.pipeline.vad import speech_ranges


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
    timings: dict[str, float] = {}
    with _stage(timings, "decode"):
        decoded = decode(
            source, max_duration_s=options.max_duration_s, timeout_s=options.decode_timeout_s,
            keep_channels=options.speakers in ("auto", "channels"),
        )
    with _stage(timings, "trim"):
        start, end = (trim_silence(decoded.samples, options.trim_threshold_db)
                      if options.trim_silence else (0, len(decoded.samples)))
    session = AnalysedSession(
        samples=decoded.samples[start:end], origin=start, plans=[],
        duration_s=decoded.duration_s, timings=timings, warnings=decoded.warnings,
        source={
            "sample_rate": decoded.source_sample_rate,
            "channels": decoded.source_channels,
            "codec": decoded.codec,
            "trimmed_start_s": start / SAMPLE_RATE,
            "trimmed_end_s": end / SAMPLE_RATE,
        },
    )
    split = _speaker_channels(decoded, options, start, end)
    if split:
        _plan_channels(session, split, options)
    else:
        _plan_mono(session, options)
    return session


def _speaker_channels(decoded: DecodedAudio, options: TranscribeOptions, start: int,
                      end: int) -> list[Audio]:
    """The channels to transcribe one by one, or none (mono, or not one per speaker)."""
    if decoded.channels is None:
        return []
    left, right = (c[start:end] for c in decoded.channels)
    if options.speakers == "channels" or speaker_channels.one_speaker_per_channel(left, right):
        return [left, right]
    return []


def _plan_mono(session: AnalysedSession, options: TranscribeOptions) -> None:
    if options.normalize:
        peak_normalize(session.samples, in_place=True)
    with _stage(session.timings, "vad"):
        speech = speech_ranges(session.samples, options)
    with _stage(session.timings, "chunk"):
        session.plans = plan_chunks(speech, options.chunk_length_s, origin=session.origin)
    if options.speakers != "off":
        with _stage(session.timings, "speakers"):
            session.plans = _embed_voices(session, options)


def _embed_voices(session: AnalysedSession, options: TranscribeOptions) -> list[ChunkPlan]:
    """The plans, each with its speech windows' embeddings."""
    from scribe.pipeline.speakers.encoder import load_encoder
    from scribe.pipeline.speakers.voices import embed_speech

    encoder = load_encoder(options.speaker_encoder, options.speaker_encoder_path)
    found = embed_speech(session.samples, [p.ranges for p in session.plans], encoder,
                         origin=session.origin)
    return [dataclasses.replace(p, voices=tuple(w))
            for p, w in zip(session.plans, found, strict=True)]


def _plan_channels(session: AnalysedSession, split: list[Audio],
                   options: TranscribeOptions) -> None:
    """Each channel is normalised, searched for speech and chunked on its own; plan
    indices run on across channels, so the model stage sees ordinary chunks."""
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
    session.channel_samples = split
    session.samples = split[0]  # the mono mix is not transcribed: let it go


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
