"""Embed the speech the VAD found, window by window, where the audio already is.

Each speech range is cut into 1.6 s windows every 0.8 s (the last one ends with the
range; a range under 1.6 s is one shorter window). Each window's embedding is what
clustering and turn-finding use later, after the audio is gone: 256 floats per 0.8 s of
speech, about 4.6 MB per hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from scribe.config import SAMPLE_RATE, TranscribeOptions
from scribe.errors import InvalidInputError
from scribe.pipeline.audio import Audio, decode
from scribe.pipeline.speakers.encoder import WINDOW_FRAMES, SpeakerEncoder, level, load_encoder
from scribe.pipeline.vad import SampleRange, speech_ranges

WINDOW = WINDOW_FRAMES * SAMPLE_RATE // 100
HOP = WINDOW // 2
MIN_WINDOW = SAMPLE_RATE * 4 // 10  # shorter speech says too little about a voice


@dataclass(frozen=True)
class VoiceWindow:
    """One window of speech (session seconds) and its embedding."""

    start_s: float
    end_s: float
    embedding: list[float]


def windows(r: SampleRange) -> list[tuple[int, int]]:
    """Sample ranges of the windows that cover the speech range ``r`` (see the module)."""
    start, end = r["start"], r["end"]
    if end - start < MIN_WINDOW:
        return []
    last = max(end - WINDOW, start)
    return [(s, min(s + WINDOW, end)) for s in [*range(start, last, HOP), last]]


def embed_speech(
    samples: Audio, groups: list[list[SampleRange]], encoder: SpeakerEncoder, *, origin: int = 0
) -> list[list[VoiceWindow]]:
    """For each group of speech ranges (a chunk's), its windows' embeddings. Every window
    of the session goes through the encoder in one call, which is what keeps it cheap."""
    cuts: list[list[tuple[int, int]]] = []
    audio: list[Audio] = []
    for group in groups:
        cuts.append([])
        for r in group:
            levelled = level(samples[r["start"] - origin:r["end"] - origin])
            for s, e in windows(r):
                cuts[-1].append((s, e))
                audio.append(levelled[s - r["start"]:e - r["start"]])
    vectors = encoder.embed(audio) if audio else np.zeros((0, encoder.dimension), np.float32)
    out: list[list[VoiceWindow]] = []
    position = 0
    for group_cuts in cuts:
        out.append([VoiceWindow(s / SAMPLE_RATE, e / SAMPLE_RATE, vectors[position + i].tolist())
                    for i, (s, e) in enumerate(group_cuts)])
        position += len(group_cuts)
    return out


REFERENCE_MAX_S = 30.0  # OpenAI asks for 2-10 s clips; longer ones are refused as a guard


def reference_embedding(source: str | BinaryIO | Any, options: TranscribeOptions) -> list[float]:
    """A known speaker's voice from a short clip: the mean direction of its speech's
    windows. Raises the audio errors, or :class:`InvalidInputError` when it has no speech."""
    samples = decode(source, max_duration_s=REFERENCE_MAX_S).samples
    encoder = load_encoder(options.speaker_encoder, options.speaker_encoder_path)
    found = embed_speech(samples, [speech_ranges(samples, options)], encoder)[0]
    if not found:
        raise InvalidInputError("the clip holds no speech long enough to know a voice by")
    mean = np.mean([w.embedding for w in found], axis=0)
    return [float(x) for x in mean / max(float(np.linalg.norm(mean)), 1e-8)]
