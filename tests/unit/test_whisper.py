"""The model stage: batching across sessions changes nothing but speed."""

from __future__ import annotations

import random
import tempfile
from typing import Any

import numpy as np
import pytest
from faster_whisper import BatchedInferencePipeline

from scribe.config import TranscribeOptions
from scribe.pipeline.audio import decode
from scribe.pipeline.preprocess import PreparedSession, preprocess
from scribe.pipeline.transcript import AssembledChunk, restore_segments, session_language
from scribe.pipeline.whisper import ChunkInput, ChunkOutput, WhisperEngine, model_n_mels
from tests.media import speech, write_audio

pytestmark = pytest.mark.unit

CLIPS = ["jfk.flac", "multilingual.mp3", "hotwords.mp3"]


@pytest.fixture(scope="module")
def options(test_options: TranscribeOptions) -> TranscribeOptions:
    # Same samples for both sides: no trim/normalise, so chunks equal faster-whisper's own.
    return test_options.model_copy(update={
        "language": "en", "normalize": False, "trim_silence": False, "max_new_tokens": 12})


@pytest.fixture(scope="module")
def engine(options: TranscribeOptions) -> WhisperEngine:
    return WhisperEngine(options, cpu_threads=2)


@pytest.fixture(scope="module")
def sessions(options: TranscribeOptions) -> dict[str, tuple[np.ndarray, PreparedSession]]:
    paths = {name: f"examples/sessions/{name}" for name in CLIPS}
    made = {name: (decode(path).samples, preprocess(path, options, 80))
            for name, path in paths.items()}
    long = speech(75.0, seed=42)
    made["long"] = (long, _prepare_array(long, options))
    return made


def _prepare_array(samples: np.ndarray, options: TranscribeOptions) -> PreparedSession:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        write_audio(f.name, samples)
        return preprocess(f.name, options, 80)


def _reference(engine: WhisperEngine, samples: np.ndarray, options: TranscribeOptions
               ) -> list[tuple[float, float, str]]:
    pipeline = BatchedInferencePipeline(engine.model)
    segments, _ = pipeline.transcribe(
        samples, language="en", beam_size=1, max_new_tokens=options.max_new_tokens,
        without_timestamps=False, batch_size=4)
    return [(s.start, s.end, s.text.strip()) for s in segments]


def _ours(engine: WhisperEngine, prepared: dict[str, PreparedSession], batch_size: int,
          seed: int) -> dict[str, list[tuple[float, float, str]]]:
    """Every session's segments when all chunks are shuffled into shared batches."""
    items = [(name, c) for name, p in prepared.items() for c in p.chunks]
    random.Random(seed).shuffle(items)
    results: dict[str, list[AssembledChunk]] = {name: [] for name in prepared}
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        outputs = engine.transcribe([
            ChunkInput(c.features, c.offset_s, c.duration_s, group=name) for name, c in batch])
        for (name, chunk), out in zip(batch, outputs, strict=True):
            results[name].append(AssembledChunk(chunk.index, chunk.segments, out))
    return {name: [(s["start"], s["end"], s["text"]) for s in restore_segments(chunks)]
            for name, chunks in results.items()}


@pytest.mark.parametrize(("batch_size", "seed"), [(1, 0), (3, 1), (16, 2)])
def test_cross_session_batches_equal_faster_whispers_batched_pipeline(
        engine: WhisperEngine, options: TranscribeOptions, sessions: dict[str, Any],
        batch_size: int, seed: int) -> None:
    prepared = {name: p for name, (_, p) in sessions.items()}
    ours = _ours(engine, prepared, batch_size, seed)
    for name, (samples, _) in sessions.items():
        reference = _reference(engine, samples, options)
        assert reference, name
        assert ours[name] == reference, name


def _one_session(engine: WhisperEngine, prepared: PreparedSession,
                 options: TranscribeOptions) -> list[AssembledChunk]:
    """All of one session's chunks through one model call, ready to assemble."""
    outputs = engine.transcribe([
        ChunkInput(c.features, c.offset_s, c.duration_s, group="s") for c in prepared.chunks
    ], options)
    return [AssembledChunk(c.index, c.segments, o)
            for c, o in zip(prepared.chunks, outputs, strict=True)]


def test_detected_language_is_voted_per_session(engine: WhisperEngine,
                                                sessions: dict[str, Any]) -> None:
    _, prepared = sessions["long"]
    chunks = _one_session(engine, prepared, engine.options.model_copy(update={"language": None}))
    outputs = [c.output for c in chunks]
    assert len({o.language for o in outputs}) == 1, "one session, one language in a batch"
    language, share = session_language(chunks)
    assert language == outputs[0].language and share == 1.0


def test_word_timestamps_land_inside_their_segments(engine: WhisperEngine,
                                                    sessions: dict[str, Any]) -> None:
    _, prepared = sessions["jfk.flac"]
    words_opts = engine.options.model_copy(update={"word_timestamps": True})
    segments = restore_segments(_one_session(engine, prepared, words_opts))
    words = [w for s in segments for w in s.get("words", [])]
    assert words
    for s in segments:
        for w in s.get("words", []):
            assert s["start"] - 0.01 <= w["start"] <= w["end"] <= s["end"] + 0.01


def test_empty_batch_and_mel_bins(engine: WhisperEngine, tiny_model: str) -> None:
    assert engine.transcribe([]) == []
    assert engine.n_mels == model_n_mels(tiny_model) == 80
    assert model_n_mels("large-v3") == 128 and model_n_mels("Systran/faster-whisper-small") == 80


def test_unknown_model_is_a_clear_error() -> None:
    from scribe.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="make-test-model"):
        WhisperEngine(TranscribeOptions(model="/nonexistent/model-dir", device="cpu"))


def test_chunk_output_is_plain_data(engine: WhisperEngine, sessions: dict[str, Any]) -> None:
    _, prepared = sessions["hotwords.mp3"]
    c = prepared.chunks[0]
    (out,) = engine.transcribe([ChunkInput(c.features, c.offset_s, c.duration_s)])
    assert isinstance(out, ChunkOutput) and out.language == "en"
    assert all(isinstance(s["text"], str) and s["end"] >= s["start"] for s in out.segments)


def test_temperature_samples(engine: WhisperEngine, sessions: dict[str, Any]) -> None:
    _, prepared = sessions["multilingual.mp3"]
    items = [ChunkInput(c.features, c.offset_s, c.duration_s) for c in prepared.chunks] * 3
    hot = engine.options.model_copy(update={"temperature": 1.0, "max_new_tokens": 24})
    texts = {" ".join(s["text"] for s in o.segments) for o in engine.transcribe(items, hot)}
    greedy = {" ".join(s["text"] for s in o.segments) for o in engine.transcribe(items)}
    assert len(texts) > len(greedy), "sampling at temperature 1 varies; greedy does not"


def test_segments_never_pass_the_recording() -> None:
    from scribe.pipeline.transcript import clamp_to

    segs = [{"start": -0.5, "end": 3.0, "words": [{"start": 2.0, "end": 12.0}]},
            {"start": 9.0, "end": 26.0}]
    assert clamp_to(segs, 11.0) == [
        {"start": 0.0, "end": 3.0, "words": [{"start": 2.0, "end": 11.0}]},
        {"start": 9.0, "end": 11.0}]


def test_timeline_only_moves_forward() -> None:
    from scribe.pipeline.transcript import in_order

    segs = [{"start": 60.0, "end": 68.82, "words": [{"start": 60.0, "end": 61.0}]},
            {"start": 68.28, "end": 98.66,
             "words": [{"start": 68.28, "end": 68.9}, {"start": 68.5, "end": 99.0}]},
            {"start": 98.0, "end": 97.0}]
    assert in_order(segs) == [
        {"start": 60.0, "end": 68.82, "words": [{"start": 60.0, "end": 61.0}]},
        {"start": 68.82, "end": 98.66,
         "words": [{"start": 68.82, "end": 68.9}, {"start": 68.9, "end": 98.66}]},
        {"start": 98.66, "end": 98.66}]


def test_assembled_timeline_is_ordered_across_chunk_boundaries(
        engine: WhisperEngine, sessions: dict[str, Any]) -> None:
    """The random model's timestamps run backwards past a chunk's end at 48 tokens."""
    _, prepared = sessions["long"]
    more = engine.options.model_copy(update={"max_new_tokens": 48})
    segments = restore_segments(_one_session(engine, prepared, more))
    bounds = [t for s in segments for t in (s["start"], s["end"])]
    assert len(segments) > 1 and bounds == sorted(bounds)
