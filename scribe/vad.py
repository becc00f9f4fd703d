"""Find speech: Silero VAD as faster-whisper ships it, with the batched pipeline's settings."""

from __future__ import annotations

from faster_whisper.vad import VadOptions, get_speech_timestamps

from scribe.audio import Audio
from scribe.config import SAMPLE_RATE, TranscribeOptions

SampleRange = dict[str, int]


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
    if len(samples) == 0:
        return []
    ranges: list[SampleRange] = get_speech_timestamps(samples, vad_options(options))
    return ranges


def fixed_windows(n_samples: int, window_s: int) -> list[SampleRange]:
    """Consecutive windows of ``window_s`` seconds covering ``n_samples`` samples."""
    step = window_s * SAMPLE_RATE
    return [{"start": s, "end": min(s + step, n_samples)} for s in range(0, n_samples, step)]
