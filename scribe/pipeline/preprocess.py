"""A session's whole CPU side: decode, trim, normalise, VAD, chunk, features.

Two steps so a long session never holds all its features at once: analysing (decode to
VAD, and the chunk plans) then :func:`iter_chunks` (each chunk's features, built as they
are consumed). The entry points, by caller:

- the batch job's CPU actors and the online service's preprocessing deployment:
  :func:`open_input` (decode, trim) then :func:`plan_session`, which yields plans as VAD
  finds them, so a long session's first chunks need not wait for the rest to be
  searched, then :func:`iter_chunks`;
- :func:`analyse`: the same, planned whole before it returns (tests, the memory check);
- :func:`preprocess`, which does it all eagerly, for short inputs, tests, benchmarks and
  CPU calibration.
"""

from __future__ import annotations

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
from scribe.pipeline.chunking import (
    Chunk,
    ChunkPlan,
    chunk_plans,
    chunk_samples,
    pack,
    plan_chunks,
    stream_chunks,
)
from scribe.pipeline.features import log_mel
from scribe.pipeline.speakers import channels as speaker_channels
from scribe.pipeline.vad import speech_ranges, speech_windows
from scribe.schema import Analysis

T = TypeVar("T")


@dataclass(kw_only=True)
class AnalysedSession(Analysis):
    """A session at work on the CPU side: its decoded audio and its chunk plans, as they
    are made (:func:`plan_session`, which adds them with :meth:`add_plans`), and what
    analysing it has found so far; features not computed yet.

    With one speaker per channel, ``channel_samples`` holds each channel, and each plan
    says which one it was cut from; with speakers from voices, each plan carries its
    embedded voice windows."""

    samples: Audio
    origin: int
    plans: list[ChunkPlan] = field(default_factory=list)
    channel_samples: list[Audio] = field(default_factory=list)

    def add_plans(self, plans: list[ChunkPlan]) -> None:
        """``plans`` planned: the session's speech grows by theirs."""
        for plan in plans:
            self.plans.append(plan)
            self.speech_duration_s += plan.duration_s


@dataclass(kw_only=True)
class PreparedSession(Analysis):
    """A session prepared all at once (:func:`preprocess`): what analysing it found, and
    every chunk with its features, its audio let go."""

    chunks: list[Chunk]


@contextmanager
def _stage(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


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
        samples=split[0] if split else decoded.samples[start:end], origin=start,
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
        batches: Iterable[list[ChunkPlan]] = [_plan_channels(session, options)]
    elif options.speakers == "off":
        batches = _stream_mono(session, options, vad_threads)
    else:
        batches = [_plan_voices(session, options, vad_threads)]
    for plans in batches:
        if plans:
            session.add_plans(plans)
            yield plans


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


def _plan_voices(session: AnalysedSession, options: TranscribeOptions, vad_threads: int
                 ) -> list[ChunkPlan]:
    """Mono with speakers from voices, planned whole: each chunk's speech windows are
    embedded before its plan is made, so that the plan carries them."""
    from scribe.pipeline.speakers.encoder import load_encoder
    from scribe.pipeline.speakers.voices import embed_speech

    if options.normalize:
        peak_normalize(session.samples, in_place=True)
    with _stage(session.timings, "vad"):
        speech = [r for found in speech_windows(session.samples, options, vad_threads)
                  for r in found]
    with _stage(session.timings, "chunk"):
        groups = pack(speech, options.chunk_length_s, origin=session.origin)
    with _stage(session.timings, "speakers"):
        encoder = load_encoder(options.speaker_encoder, options.speaker_encoder_path)
        voices = embed_speech(session.samples, groups, encoder, origin=session.origin)
    return chunk_plans(groups, voices=voices)


def _plan_channels(session: AnalysedSession, options: TranscribeOptions
                   ) -> list[ChunkPlan]:
    """Each channel is normalised, searched for speech and chunked on its own; plan
    indices run on across channels, so the model stage sees ordinary chunks."""
    split = session.channel_samples
    plans: list[ChunkPlan] = []
    for number, samples in enumerate(split):
        if options.normalize:
            peak_normalize(samples, in_place=True)
        with _stage(session.timings, "vad"):
            speech = speech_ranges(samples, options)
            speech = speaker_channels.drop_bleed(speech, samples, split[1 - number])
        with _stage(session.timings, "chunk"):
            plans += plan_chunks(speech, options.chunk_length_s, origin=session.origin,
                                 first=len(plans), channel=number)
    return plans


def analyse(source: str | IO[bytes], options: TranscribeOptions, *,
            size: int | None = None) -> AnalysedSession:
    """One whole input opened (:func:`open_input`) and planned whole
    (:func:`plan_session`) before it returns; its features still to compute
    (:func:`iter_chunks`)."""
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
    """Turn one recording into model-ready chunks, all at once. ``source`` is decoded as
    it is (a path, or any file object that ``av`` reads), with no check for an empty file
    before decoding: a 0-byte file is a decode error."""
    session = _planned(_open_session(source, options), options)
    chunks = list(iter_chunks(session, n_mels))
    return PreparedSession(
        duration_s=session.duration_s, speech_duration_s=session.speech_duration_s,
        chunks=chunks, timings=session.timings, warnings=session.warnings,
        source=session.source,
    )
