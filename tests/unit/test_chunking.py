"""Silero VAD finds speech and nothing else; chunks pack it into <= 30 s pieces that keep
track of where every speech range came from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from scribe.config import TranscribeOptions
from scribe.pipeline import vad
from scribe.pipeline.chunking import ChunkPlan, chunk_samples, plan_chunks, stream_chunks
from scribe.pipeline.vad import SampleRange, fixed_windows, speech_ranges, speech_windows
from tests import media


@dataclass(frozen=True)
class AudioChunk:
    """A planned chunk with its audio, the way the pipeline builds it."""

    index: int
    samples: np.ndarray
    offset_s: float
    duration_s: float
    segments: list[SampleRange]


def make_chunks(samples: np.ndarray, speech: list[SampleRange], chunk_length_s: int, *,
                origin: int = 0) -> list[AudioChunk]:
    return [AudioChunk(p.index, chunk_samples(samples, p, origin=origin), p.offset_s,
                       p.duration_s, p.ranges)
            for p in plan_chunks(speech, chunk_length_s, origin=origin)]

pytestmark = pytest.mark.unit

SR = media.SAMPLE_RATE
OPTIONS = TranscribeOptions()
LIMIT = OPTIONS.chunk_length_s * SR


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    return media.speech(95.0, seed=7)


@pytest.fixture(scope="module")
def ranges(samples: np.ndarray) -> list[SampleRange]:
    return speech_ranges(samples, OPTIONS)


def _span(ranges: list[SampleRange]) -> int:
    return sum(r["end"] - r["start"] for r in ranges)


# --- VAD -----------------------------------------------------------------------------------


def test_vad_finds_speech_in_real_speech(samples: np.ndarray, ranges: list[SampleRange]) -> None:
    assert len(ranges) > 5
    assert 0.5 * len(samples) < _span(ranges) <= len(samples)
    assert all(0 <= r["start"] < r["end"] <= len(samples) for r in ranges)
    assert all(a["end"] <= b["start"] for a, b in zip(ranges, ranges[1:], strict=False))
    assert max(r["end"] - r["start"] for r in ranges) <= LIMIT


def test_vad_drops_the_gaps_between_clips(ranges: list[SampleRange]) -> None:
    gaps = [b["start"] - a["end"] for a, b in zip(ranges, ranges[1:], strict=False)]
    assert any(gap > 0.2 * SR for gap in gaps)


@pytest.mark.parametrize("level", [0.0, 0.003, 0.05])
def test_vad_finds_nothing_in_silence_or_noise(level: float) -> None:
    noise = level * np.random.default_rng(1).standard_normal(10 * SR)
    assert speech_ranges(noise.astype(np.float32), OPTIONS) == []


def test_vad_on_empty_audio() -> None:
    assert speech_ranges(np.zeros(0, np.float32), OPTIONS) == []


@pytest.mark.parametrize("n", [0, 1, LIMIT - 1, LIMIT, LIMIT + 1, 95 * SR + 1234])
def test_without_vad_fixed_windows_cover_everything(n: int) -> None:
    audio = np.ones(n, np.float32)
    windows = speech_ranges(audio, OPTIONS.model_copy(update={"vad_filter": False}))
    assert windows == fixed_windows(n, OPTIONS.chunk_length_s)
    assert len(windows) == -(-n // LIMIT)
    assert [w["start"] for w in windows] == list(range(0, n, LIMIT))
    assert all(w["end"] - w["start"] <= LIMIT for w in windows)
    assert (windows[-1]["end"] if windows else 0) == n
    assert all(a["end"] == b["start"] for a, b in zip(windows, windows[1:], strict=False))


# --- chunking ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chunks(samples: np.ndarray, ranges: list[SampleRange]) -> list[AudioChunk]:
    return make_chunks(samples, ranges, OPTIONS.chunk_length_s)


def test_several_chunks_each_within_the_limit(chunks: list[AudioChunk]) -> None:
    assert len(chunks) >= 3
    assert all(0 < len(c.samples) <= LIMIT for c in chunks)
    assert all(c.duration_s <= OPTIONS.chunk_length_s for c in chunks)
    assert all(c.duration_s == pytest.approx(len(c.samples) / SR) for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_offsets_are_cumulative_speech_durations(chunks: list[AudioChunk]) -> None:
    cumulative = np.cumsum([0.0] + [c.duration_s for c in chunks[:-1]])
    assert [c.offset_s for c in chunks] == pytest.approx(list(cumulative))


def test_every_range_lands_in_exactly_one_chunk(chunks: list[AudioChunk],
                                                ranges: list[SampleRange]) -> None:
    assert [r for c in chunks for r in c.segments] == ranges


def test_chunk_samples_are_its_ranges_concatenated(samples: np.ndarray,
                                                   chunks: list[AudioChunk]) -> None:
    for c in chunks:
        expected = np.concatenate([samples[r["start"]:r["end"]] for r in c.segments])
        np.testing.assert_array_equal(c.samples, expected)


def test_durations_sum_to_total_speech(chunks: list[AudioChunk],
                                       ranges: list[SampleRange]) -> None:
    assert sum(c.duration_s for c in chunks) == pytest.approx(_span(ranges) / SR)


def test_origin_shifts_segments_only(samples: np.ndarray, ranges: list[SampleRange],
                                     chunks: list[AudioChunk]) -> None:
    shifted = make_chunks(samples, ranges, OPTIONS.chunk_length_s, origin=12_345)
    assert len(shifted) == len(chunks)
    for a, b in zip(chunks, shifted, strict=True):
        assert (a.index, a.offset_s, a.duration_s) == (b.index, b.offset_s, b.duration_s)
        assert b.segments == [{"start": r["start"] + 12_345, "end": r["end"] + 12_345}
                              for r in a.segments]


def test_no_speech_no_chunks(samples: np.ndarray) -> None:
    assert make_chunks(samples, [], OPTIONS.chunk_length_s) == []


def test_a_range_of_exactly_the_limit_is_one_chunk(samples: np.ndarray) -> None:
    out = make_chunks(samples, [{"start": 0, "end": LIMIT}], OPTIONS.chunk_length_s)
    assert [(c.index, len(c.samples), c.offset_s) for c in out] == [(0, LIMIT, 0.0)]


def test_fixed_windows_chunk_one_to_one(samples: np.ndarray) -> None:
    windows = fixed_windows(len(samples), OPTIONS.chunk_length_s)
    out = make_chunks(samples, windows, OPTIONS.chunk_length_s)
    assert [c.segments for c in out] == [[w] for w in windows]
    assert sum(len(c.samples) for c in out) == len(samples)


def test_a_range_longer_than_the_limit_is_split(samples: np.ndarray) -> None:
    ranges = [{"start": 0, "end": 40 * SR}, {"start": 41 * SR, "end": 45 * SR}]
    out = make_chunks(samples, ranges, OPTIONS.chunk_length_s)
    assert all(len(c.samples) <= LIMIT for c in out)
    assert [c.index for c in out] == list(range(len(out)))
    assert sum(len(c.samples) for c in out) == 44 * SR


def test_a_range_longer_than_the_limit_keeps_its_audio(samples: np.ndarray) -> None:
    ranges = [{"start": 0, "end": 40 * SR}, {"start": 41 * SR, "end": 45 * SR}]
    out = make_chunks(samples, ranges, OPTIONS.chunk_length_s)
    assert [r for c in out for r in c.segments] == [
        {"start": 0, "end": 30 * SR}, {"start": 30 * SR, "end": 40 * SR}, ranges[1]]
    assert sum(len(c.samples) for c in out) == 44 * SR


# --- streaming: chunks planned as VAD's windows are searched ---------------------------------


def _split(ranges: list[SampleRange], cuts: list[int]) -> list[list[SampleRange]]:
    """``ranges`` as windows ending before each cut (a range is not cut: VAD's edges are)."""
    windows: list[list[SampleRange]] = [[] for _ in range(len(cuts) + 1)]
    for r in ranges:
        windows[sum(r["start"] >= c for c in cuts)].append(r)
    return windows


def _streamed(windows: list[list[SampleRange]], origin: int = 0) -> list[list[ChunkPlan]]:
    return list(stream_chunks(iter(windows), OPTIONS.chunk_length_s, origin=origin))


@pytest.mark.parametrize("seed", range(6))
def test_streamed_plans_are_the_whole_plan(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # speech ranges of 0.1-40 s (longer than the limit: split) after gaps of 0-3 s
    lengths, gaps = rng.integers(int(0.1 * SR), 40 * SR, 60), rng.integers(0, 3 * SR, 60)
    ends = np.cumsum(gaps + lengths)
    ranges = [{"start": int(e - n), "end": int(e)} for e, n in zip(ends, lengths, strict=True)]
    cuts = sorted(int(c) for c in rng.integers(0, int(ends[-1]), 8))
    windows = _split(ranges, cuts) + [[]]  # empty windows too: silence between
    whole = plan_chunks(ranges, OPTIONS.chunk_length_s, origin=777)
    streamed = _streamed(windows, origin=777)
    assert [p for batch in streamed for p in batch] == whole
    assert all(batch for batch in streamed)


def test_streamed_plans_of_real_speech(ranges: list[SampleRange]) -> None:
    windows = _split(ranges, [20 * SR, 40 * SR, 60 * SR])
    streamed = _streamed(windows)
    assert [p for batch in streamed for p in batch] == plan_chunks(ranges,
                                                                   OPTIONS.chunk_length_s)
    assert len(streamed) > 1, "chunks left before the last window"


def test_a_chunk_is_yielded_once_final_before_later_windows_are_searched(
        ranges: list[SampleRange]) -> None:
    windows = _split(ranges, [20 * SR, 40 * SR, 60 * SR, 80 * SR])
    searched = 0

    def search() -> Iterator[list[SampleRange]]:
        nonlocal searched
        for window in windows:
            searched += 1
            yield window

    seen = [searched for _ in stream_chunks(search(), OPTIONS.chunk_length_s)]
    assert seen[0] < len(windows), "the first chunks waited for every window"
    assert seen == sorted(seen)


def test_no_speech_streams_no_plans() -> None:
    assert _streamed([[], [], []]) == [] and _streamed([]) == []


def test_speech_windows_are_the_speech_ranges(samples: np.ndarray,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vad, "VAD_WINDOW_S", 30)
    windows = list(speech_windows(samples, OPTIONS))
    assert len(windows) == -(-len(samples) // (30 * SR))
    assert all(r["start"] >= i * 30 * SR for i, w in enumerate(windows) for r in w)
    assert [r for w in windows for r in w] == speech_ranges(samples, OPTIONS)
    assert list(speech_windows(samples, OPTIONS, threads=2)) == windows, "searched at once"


def test_windows_searched_at_once_stop_with_their_consumer(
        samples: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """A session that fails after its first window waits for no other window."""
    monkeypatch.setattr(vad, "VAD_WINDOW_S", 5)
    searched: list[int] = []
    search = vad.get_speech_timestamps

    def counted(audio: np.ndarray, options: object) -> list[SampleRange]:
        searched.append(len(audio))
        return search(audio, options)

    monkeypatch.setattr(vad, "get_speech_timestamps", counted)
    windows = speech_windows(samples, OPTIONS, threads=2)
    next(windows)
    windows.close()
    assert len(searched) < -(-len(samples) // (5 * SR)) // 2, searched
