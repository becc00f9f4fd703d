"""faster-whisper's quality gates, per chunk and in batch."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from scribe.config import TranscribeOptions
from scribe.pipeline import repair, safeguards
from scribe.pipeline.chunking import Chunk
from scribe.pipeline.preprocess import preprocess
from scribe.pipeline.sentences import pauses, split_segment
from scribe.pipeline.transcript import restore_segments
from scribe.pipeline.whisper import WhisperEngine

pytestmark = pytest.mark.unit

DEFAULTS = TranscribeOptions()


class Words:
    """A tokenizer whose tokens are words: enough for the gates' compression ratio."""

    def decode(self, tokens: list[str]) -> str:
        return " ".join(tokens)


def result(text: str, logprob: float = -0.3, no_speech: float = 0.1) -> dict[str, Any]:
    return {"tokens": text.split(), "avg_logprob": logprob, "no_speech_prob": no_speech}


@pytest.mark.parametrize(("res", "expected"), [
    (result("a varied sentence with several different words"), False),
    (result("the same " * 40), True),                         # repetitive
    (result("a varied sentence", logprob=-1.5), True),          # improbable
    (result("a varied sentence", logprob=-1.5, no_speech=0.9), False),  # silence: no retry
])
def test_fallback_gates(res: dict[str, Any], expected: bool) -> None:
    assert safeguards.needs_fallback(res, Words(), DEFAULTS) is expected


def test_silence_needs_both_no_speech_and_low_logprob() -> None:
    assert safeguards.is_silence(result("thanks", logprob=-1.5, no_speech=0.9), DEFAULTS)
    assert not safeguards.is_silence(result("thanks", logprob=-0.2, no_speech=0.9), DEFAULTS)
    assert not safeguards.is_silence(result("thanks", logprob=-1.5, no_speech=0.3), DEFAULTS)
    off = DEFAULTS.model_copy(update={"no_speech_threshold": None})
    assert not safeguards.is_silence(result("thanks", logprob=-1.5, no_speech=0.9), off)


def test_all_failed_keeps_the_most_probable_varied_attempt() -> None:
    attempts = [result("the same " * 40, logprob=-0.1), result("words here", logprob=-1.8),
                result("other words", logprob=-1.2)]
    assert safeguards.best_attempt(attempts, Words(), DEFAULTS) is attempts[2]


def _words(start: float, n: int, step: float, probability: float) -> list[dict[str, Any]]:
    return [{"word": f" w{i}", "start": start + i * step, "end": start + (i + 1) * step,
             "probability": probability} for i in range(n)]


def _segment(start: float, n: int, step: float = 0.4, probability: float = 0.9
             ) -> dict[str, Any]:
    words = _words(start, n, step, probability)
    return {"start": start, "end": words[-1]["end"], "words": words}


def test_hallucination_in_silence_is_dropped_speech_is_kept() -> None:
    speech, ghost, more = _segment(2.0, 5), _segment(12.0, 3, probability=0.05), _segment(20, 4)
    assert safeguards.drop_hallucinations([speech, ghost, more], 0.0, 30.0, 2.0) == [
        speech, more]
    assert safeguards.drop_hallucinations([speech, ghost, more], 0.0, 30.0, 9.0) == [
        speech, ghost, more]
    assert safeguards.drop_hallucinations([speech, more], 0.0, 30.0, 2.0) == [speech, more]


@pytest.fixture(scope="module")
def engine(test_options: TranscribeOptions) -> WhisperEngine:
    return WhisperEngine(test_options.model_copy(update={"language": "en"}), cpu_threads=2)


@pytest.fixture(scope="module")
def items(engine: WhisperEngine) -> list[Chunk]:
    prepared = [preprocess(f"examples/sessions/{name}", engine.options, 80)
                for name in ("multilingual.mp3", "jfk.flac", "hotwords.mp3")]
    return [c for p in prepared for c in p.chunks]


def test_fallback_redecodes_only_failing_chunks_batched(
        engine: WhisperEngine, items: list[Chunk], monkeypatch: pytest.MonkeyPatch) -> None:
    # one window for all, so that the first decode is one call
    full = engine.options.model_copy(update={"window_padding_s": None})
    greedy = engine.transcribe(items, full)
    logprobs = [o.segments[0]["avg_logprob"] for o in greedy]
    threshold = statistics.median(logprobs)  # half the chunks pass, half fall back
    failing = sum(lp < threshold for lp in logprobs)
    calls: list[tuple[int, float]] = []
    generate = engine._generate

    def spy(encoded: Any, tokenizers: list[Any], opts: TranscribeOptions, **kw: Any) -> Any:
        calls.append((len(tokenizers), opts.temperature))
        return generate(encoded, tokenizers, opts, **kw)

    monkeypatch.setattr(engine, "_generate", spy)
    gated = full.model_copy(update={
        "log_prob_threshold": threshold, "compression_ratio_threshold": None,
        "temperature_fallback": (0.5, 1.0)})
    outputs = engine.transcribe(items, gated)
    assert 0 < failing < len(items)
    assert calls[0] == (len(items), 0.0) and calls[1] == (failing, 0.5)
    assert all(size <= failing for size, _ in calls[1:]) and len(calls) <= 3
    for lp, before, after in zip(logprobs, greedy, outputs, strict=True):
        if lp >= threshold:
            assert after.segments == before.segments
    calls.clear()
    engine.transcribe(items, gated.model_copy(update={"temperature": 1.0}))
    assert len(calls) == 1, "no fallback to temperatures below the one asked for"


def test_segments_carry_the_temperature_they_were_decoded_at(
        engine: WhisperEngine, items: list[Chunk], monkeypatch: pytest.MonkeyPatch) -> None:
    generate = engine._generate

    def gated(encoded: Any, tokenizers: list[Any], opts: TranscribeOptions, **kw: Any) -> Any:
        # at the call's temperature every other chunk fails the gate; every retry passes
        results = generate(encoded, tokenizers, opts, **kw)
        for n, res in enumerate(results):
            res["avg_logprob"] = -5.0 if opts.temperature == 0.2 and n % 2 else -0.1
        return results

    monkeypatch.setattr(engine, "_generate", gated)
    outputs = engine.transcribe(items, engine.options.model_copy(update={
        "window_padding_s": None, "temperature": 0.2, "temperature_fallback": (0.6, 1.0),
        "log_prob_threshold": -1.0, "compression_ratio_threshold": None}))
    assert all(o.segments for o in outputs) and len(outputs) > 2
    assert [{s["temperature"] for s in o.segments} for o in outputs] == [
        {0.6 if n % 2 else 0.2} for n in range(len(outputs))]
    record = restore_segments([outputs[1]])
    assert [s["temperature"] for s in record] == [0.6] * len(outputs[1].segments)


def test_aligned_chunks_retry_with_timestamp_tokens_before_sampling(
        engine: WhisperEngine, items: list[Chunk], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, float, str]] = []
    generate = engine._generate

    def spy(encoded: Any, tokenizers: list[Any], opts: TranscribeOptions, **kw: Any) -> Any:
        calls.append((len(tokenizers), opts.temperature, opts.timestamps))
        return generate(encoded, tokenizers, opts, **kw)

    monkeypatch.setattr(engine, "_generate", spy)
    # every decode fails a log-probability gate of 0: each retry takes every chunk
    failing = engine.options.model_copy(update={
        "timestamps": "aligned", "window_padding_s": None, "log_prob_threshold": 0.0,
        "no_speech_threshold": None, "temperature_fallback": (0.5,)})
    outputs = engine.transcribe(items, failing)
    n = len(items)
    assert calls == [(n, 0.0, "aligned"), (n, 0.0, "predicted"), (n, 0.5, "aligned")]
    assert len(outputs) == n
    calls.clear()
    engine.transcribe(items, failing.model_copy(update={"temperature_fallback": ()}))
    assert calls == [(n, 0.0, "aligned")], "no fallback asked for: no retry at all"


def test_aligned_text_that_ends_early_is_decoded_again_with_timestamp_tokens(
        engine: WhisperEngine, items: list[Chunk], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, str]] = []
    generate = engine._generate

    def spy(encoded: Any, tokenizers: list[Any], opts: TranscribeOptions, **kw: Any) -> Any:
        calls.append((len(tokenizers), opts.timestamps))
        return generate(encoded, tokenizers, opts, **kw)

    first = items[0].plan

    def last_word_end(output: Any) -> float:
        # the first chunk's text stops 2 s in; every other chunk's runs to its end
        plan = output.plan
        return plan.offset_s + (2.0 if plan == first else plan.duration_s)

    aligned = engine.options.model_copy(update={
        "timestamps": "aligned", "window_padding_s": None, "remainder_s": 1.0})
    monkeypatch.setattr(repair, "_last_word_end", last_word_end)
    monkeypatch.setattr(engine, "_generate", spy)
    outputs = engine.transcribe(items, aligned)
    assert calls[:2] == [(len(items), "aligned"), (1, "predicted")]
    assert all(mode == "predicted" for _, mode in calls[1:])
    monkeypatch.undo()
    again = engine.transcribe(items[:1], aligned.model_copy(
        update={"timestamps": "predicted", "word_timestamps": True}))[0]
    assert [s["text"] for s in outputs[0].segments] == [
        p["text"] for s in again.segments for p in split_segment(
            s, pauses(first), engine.tokenizer("en", "transcribe").encode)]
    calls.clear()
    monkeypatch.setattr(repair, "_last_word_end", last_word_end)
    monkeypatch.setattr(engine, "_generate", spy)
    engine.transcribe(items, aligned.model_copy(update={"remainder_s": None}))
    assert calls == [(len(items), "aligned")], "remainder_s=None: never decoded again"


def test_no_speech_gate_silences_chunks(engine: WhisperEngine, items: list[Chunk]) -> None:
    strict = engine.options.model_copy(update={"no_speech_threshold": 0.0,
                                               "log_prob_threshold": 0.0})
    assert all(o.segments == [] for o in engine.transcribe(items, strict))


def test_fallback_temperatures_are_flags() -> None:
    import argparse

    from scribe.config import add_arguments, build

    parser = argparse.ArgumentParser()
    add_arguments(parser, TranscribeOptions)
    none = vars(parser.parse_args(["--temperature-fallback"]))
    two = vars(parser.parse_args(["--temperature-fallback", "0.3", "0.7"]))
    assert build(TranscribeOptions, {}, none).temperature_fallback == ()
    assert build(TranscribeOptions, {}, two).temperature_fallback == (0.3, 0.7)
    assert build(TranscribeOptions, {"temperature_fallback": [0.5]}, {}).temperature_fallback \
        == (0.5,)
