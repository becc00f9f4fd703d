"""Find speech: Silero VAD as faster-whisper ships it, with the batched pipeline's settings."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from faster_whisper.vad import VadOptions, get_speech_timestamps

from scribe.config import SAMPLE_RATE, TranscribeOptions
from scribe.pipeline.audio import Audio

SampleRange = dict[str, int]

# Silero runs on windows of this length. faster-whisper's VAD copies the whole signal twice
# (padding, then framing with context), which for a 3-hour session is ~1.5 GB; per window
# it is ~16 MB. Ranges are contiguous across a window edge; the model's state restarts there.
# A session's first chunks leave once its first windows are searched (speech_windows), so
# shorter windows start the model sooner. With tiny.en on the quality benchmark's two
# 12-minute sessions, WER was 0.0881 at 120 s, 0.0885 at 600 s, 0.0901 at 60 s.
VAD_WINDOW_S = 120


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
    return [r for found in speech_windows(samples, options) for r in found]


def speech_windows(samples: Audio, options: TranscribeOptions,
                   threads: int = 1) -> Iterator[list[SampleRange]]:
    """:func:`speech_ranges` one VAD window at a time, each as soon as it is searched, so
    a long session's first chunks can leave before the rest is searched. ``threads``
    search that many windows at once (Silero runs outside the GIL, and its state restarts
    at each window, so the ranges are the same), still yielded in order."""
    if not options.vad_filter:
        yield fixed_windows(len(samples), options.chunk_length_s)
        return
    vad = vad_options(options)
    step = VAD_WINDOW_S * SAMPLE_RATE
    starts = range(0, len(samples), step)

    def search(start: int) -> list[SampleRange]:
        found = get_speech_timestamps(samples[start:start + step], vad)
        return [{"start": r["start"] + start, "end": r["end"] + start} for r in found]

    if threads <= 1:
        yield from map(search, starts)
        return
    # a consumer that stops early (a failed session) waits for no window it left: closing
    # the map's iterator cancels the windows not yet started
    with ThreadPoolExecutor(threads, thread_name_prefix="scribe-vad") as pool:
        yield from pool.map(search, starts)


def fixed_windows(n_samples: int, window_s: int) -> list[SampleRange]:
    """Consecutive windows of ``window_s`` seconds covering ``n_samples`` samples."""
    step = window_s * SAMPLE_RATE
    return [{"start": s, "end": min(s + step, n_samples)} for s in range(0, n_samples, step)]
