"""The model stage: batching across sessions changes nothing but speed."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import pytest
from faster_whisper import BatchedInferencePipeline

from scribe.config import TranscribeOptions
from scribe.pipeline import whisper
from scribe.pipeline.chunking import ChunkOutput
from scribe.pipeline.features import N_FRAMES
from scribe.pipeline.preprocess import PreparedSession
from scribe.pipeline.transcript import restore_segments
from scribe.pipeline.whisper import WhisperEngine, model_n_mels

pytestmark = pytest.mark.unit


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
    results: dict[str, list[ChunkOutput]] = {name: [] for name in prepared}
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        outputs = engine.transcribe([dataclasses.replace(c, session_id=name) for name, c in batch])
        for (name, _), out in zip(batch, outputs, strict=True):
            results[name].append(out)
    return {name: [(s["start"], s["end"], s["text"]) for s in restore_segments(chunks)]
            for name, chunks in results.items()}


@pytest.mark.parametrize(("batch_size", "seed"), [(1, 0), (3, 1), (16, 2)])
def test_cross_session_batches_equal_faster_whispers_batched_pipeline(
        engine: WhisperEngine, exact_options: TranscribeOptions, clips: dict[str, Any],
        batch_size: int, seed: int) -> None:
    prepared = {name: p for name, (_, p) in clips.items()}
    ours = _ours(engine, prepared, batch_size, seed)
    for name, (samples, _) in clips.items():
        reference = _reference(engine, samples, exact_options)
        assert reference, name
        assert ours[name] == reference, name


def test_text_that_ends_early_is_decoded_again_from_its_last_timestamp(
        engine: WhisperEngine, clips: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = clips["long"][1].chunks[0]
    duration, frames = chunk.plan.duration_s, chunk.features.shape[1]
    tok = engine.tokenizer("en", "transcribe")
    words = tok.encode(" hello there")

    def ending_at(seconds: float) -> list[int]:
        return [tok.timestamp_begin, *words, tok.timestamp_begin + round(seconds / 0.02)]

    # the first decode stops at 10 s, the second 4 s into what was left, the third within
    # remainder_s of the chunk's end: three decodes, then done
    script = [ending_at(10.0), ending_at(4.0), ending_at(duration - 14.0 - 0.5)]
    widths: list[list[int]] = []
    stack = whisper.stack_padded

    def fake_generate(encoded: Any, tokenizers: list[Any], opts: Any, **_: Any) -> Any:
        return [{"tokens": script.pop(0), "avg_logprob": -0.1, "no_speech_prob": 0.0,
                 "temperature": opts.temperature} for _ in tokenizers]

    windows: list[int] = []

    def spy_stack(features: list[np.ndarray], frames: int = N_FRAMES) -> Any:
        widths.append([f.shape[1] for f in features])
        windows.append(frames)
        return stack(features, frames)

    monkeypatch.setattr(engine, "_generate", fake_generate)
    monkeypatch.setattr(whisper, "stack_padded", spy_stack)
    options = engine.options.model_copy(update={"remainder_s": 1.0,
                                                "window_padding_s": 2.0})
    out = engine.transcribe([dataclasses.replace(chunk, session_id="s")], options)[0]
    assert duration > 20.0 and script == []
    assert widths == [[frames], [frames - 1000], [frames - 1400]]
    # the chunk and each remainder are encoded at their own length plus 2 s, in 5 s steps
    assert windows == [min(N_FRAMES, -(-(n + 200) // 500) * 500)
                       for n in (frames, frames - 1000, frames - 1400)]
    assert windows[2] < N_FRAMES
    offset = chunk.plan.offset_s
    assert [(s["start"], s["text"].strip()) for s in out.segments] == [
        (offset, "hello there"), (offset + 10.0, "hello there"), (offset + 14.0, "hello there")]
    assert out.segments[-1]["end"] == pytest.approx(offset + duration - 0.5, abs=0.02)

    script[:] = [ending_at(10.0)]
    widths.clear()
    engine.transcribe([chunk], options.model_copy(update={"remainder_s": None}))
    assert widths == [[frames]] and script == [], "remainder_s=None: one decode"


def test_empty_batch_and_mel_bins(engine: WhisperEngine, tiny_model: str) -> None:
    assert engine.transcribe([]) == []
    assert engine.n_mels == model_n_mels(tiny_model) == 80
    assert model_n_mels("large-v3") == 128 and model_n_mels("Systran/faster-whisper-small") == 80


def test_unknown_model_is_a_clear_error() -> None:
    from scribe.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="no model folder at /nonexistent/model-dir"):
        WhisperEngine(TranscribeOptions(model="/nonexistent/model-dir", device="cpu"))


def test_chunk_output_is_plain_data(engine: WhisperEngine, clips: dict[str, Any]) -> None:
    _, prepared = clips["hotwords.mp3"]
    c = prepared.chunks[0]
    (out,) = engine.transcribe([c])
    assert isinstance(out, ChunkOutput) and out.language == "en"
    assert all(isinstance(s["text"], str) and s["end"] >= s["start"] for s in out.segments)


def test_each_output_carries_its_share_of_the_model_time(
        engine: WhisperEngine, clips: dict[str, Any]) -> None:
    _, prepared = clips["long"]
    outputs = engine.transcribe(prepared.chunks)
    shares = {out.timings["model"] for out in outputs}
    assert len(outputs) > 1 and len(shares) == 1 and shares.pop() > 0


def test_temperature_samples(engine: WhisperEngine, clips: dict[str, Any]) -> None:
    _, prepared = clips["multilingual.mp3"]
    items = prepared.chunks * 3
    hot = engine.options.model_copy(update={"temperature": 1.0, "max_new_tokens": 24})
    texts = {" ".join(s["text"] for s in o.segments) for o in engine.transcribe(items, hot)}
    greedy = {" ".join(s["text"] for s in o.segments) for o in engine.transcribe(items)}
    assert len(texts) > len(greedy), "sampling at temperature 1 varies; greedy does not"


def test_encodings_are_reused_not_recomputed(engine: WhisperEngine) -> None:
    """A redo's or a retry's chunks take their rows of the encoder output already computed:
    the output itself when it holds exactly them, on CPU the rows copied out; a chunk with
    none known is encoded."""
    rng = np.random.default_rng(3)
    features = [rng.standard_normal((engine.n_mels, 1200)).astype(np.float32) for _ in range(3)]
    width = 1500
    output = engine._encode(features, width, [None] * 3)
    assert engine._encode(features, width, [(output, n) for n in range(3)]) is output
    picked = engine._encode([features[2], features[0]], width, [(output, 2), (output, 0)])
    fresh = engine._encode([features[2], features[0]], width, [None, None])
    np.testing.assert_array_equal(np.asarray(picked), np.asarray(fresh))
    partly = engine._encode([features[1], features[0]], width, [None, (output, 0)])
    assert partly is not output
    np.testing.assert_array_equal(np.asarray(partly), np.asarray(
        engine._encode([features[1], features[0]], width, [(output, 1), (output, 0)])))
