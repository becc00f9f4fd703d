"""Find speech: Silero VAD as faster-whisper ships it, with the batched pipeline's settings."""

from __future__ import annotations

from faster_whisper.vad import VadOptions, get_speech_timestamps

from scribe.config import SAMPLE_RATE, TranscribeOptions
from scribe.pipeline.audio import Audio

SampleRange = dict[str, int]

# Silero runs on windows of this length. faster-whisper's VAD copies the whole signal twice
# (padding, then framing with context), which for a 3-hour session is ~1.5 GB; per window
# it is ~80 MB. Ranges are contiguous across a window edge; the model's state restarts there.
VAD_WINDOW_S = 600


def vad_options(options: TranscribeOptions) -> VadOptions:
    """The Silero options for ``options``; chunks never exceed the model's 30 s window."""
    return VadOptions(
        threshold=options.vad_threshold,
        min_silence_duration_ms=options.vad_min_silence_ms,
        speech_pad_ms=options.vad_speech_pad_ms,
        max_speech_duration_s=options.chunk_length_s,
    )


def speech_ranges(samples: Audio, options: TranscribeOptions) -> list[SampleRange]:
    """Speech as ``{"start", "end"}`` sample ranges; fixed windows when VAD is off."""
    if not options.vad_filter:
        return fixed_windows(len(samples), options.chunk_length_s)
    vad = vad_options(options)
    step = VAD_WINDOW_S * SAMPLE_RATE
    ranges: list[SampleRange] = []
    for start in range(0, len(samples), step):
        found = get_speech_timestamps(samples[start:start + step], vad)
        ranges.extend({"start": r["start"] + start, "end": r["end"] + start} for r in found)
    return ranges


def fixed_windows(n_samples: int, window_s: int) -> list[SampleRange]:
    """Consecutive windows of ``window_s`` seconds covering ``n_samples`` samples."""
    step = window_s * SAMPLE_RATE
    return [{"start": s, "end": min(s + step, n_samples)} for s in range(0, n_samples, step)]
