"""Conditioning on the text before a chunk, in batch: chains of consecutive chunks decoded
side by side, prompts cut to fixed lengths, skipped speech decoded again without the
prompt."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from scribe.config import TranscribeOptions
from scribe.pipeline import chains, chunking, repair, whisper
from scribe.pipeline.chunking import Chunk, ChunkPlan
from scribe.pipeline.languages import Detected
from scribe.pipeline.preprocess import preprocess
from scribe.pipeline.whisper import WhisperEngine

pytestmark = pytest.mark.unit


def _chunk(group: str, index: int, channel: int | None = None) -> Chunk:
    plan = ChunkPlan(index=index, offset_s=30.0 * index, duration_s=30.0,
                     ranges=[{"start": 0, "end": 16_000}], channel=channel)
    return Chunk(plan=plan, features=np.zeros((80, 10), np.float32), session_id=group)


def test_chains_are_a_sessions_chunks_by_index_in_fours() -> None:
    items = [_chunk("a", i) for i in range(2, 9)] + [_chunk("b", 0), _chunk("a", 10),
                                                      _chunk("c", 0, 0), _chunk("c", 1, 1)]
    # a: 2-3 | 4-7 | 8 (its chain's rest is not in this call) | 10; b; c's two channels
    assert chains._chains(items, 4) == [[0, 1], [2, 3, 4, 5], [6], [8], [7], [9], [10]]
    assert chains._chains(items[:6], 2) == [[0, 1], [2, 3], [4, 5]]
    assert chains._chains(items[:6][::-1], 4) == [[5, 4], [3, 2, 1, 0]], "any order"


@pytest.fixture(scope="module")
def engine(test_options: TranscribeOptions) -> WhisperEngine:
    return WhisperEngine(test_options.model_copy(update={"language": "en"}), cpu_threads=2)


@pytest.fixture(scope="module")
def session(engine: WhisperEngine) -> list[Chunk]:
    """Eight consecutive chunks of one session (jfk's, renumbered), and two of another."""
    jfk = preprocess("examples/sessions/jfk.flac", engine.options, 80).chunks[0]
    return ([dataclasses.replace(jfk, session_id="s", plan=dataclasses.replace(jfk.plan, index=i))
             for i in range(8)]
            + [dataclasses.replace(jfk, session_id="t", plan=dataclasses.replace(jfk.plan, index=i))
               for i in range(2)])


def _spy(engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch) -> list[list[list[int]]]:
    calls: list[list[list[int]]] = []
    generate = engine._generate

    def spy(encoded: Any, tokenizers: list[Any], opts: TranscribeOptions, **kw: Any) -> Any:
        calls.append(kw.get("previous") or [[]] * len(tokenizers))
        return generate(encoded, tokenizers, opts, **kw)

    monkeypatch.setattr(engine, "_generate", spy)
    return calls


def test_each_chunk_is_prompted_with_its_chain_text_before_it(
        engine: WhisperEngine, session: list[Chunk], monkeypatch: pytest.MonkeyPatch) -> None:
    # the random model gives a token or two a chunk: prompt levels of that size
    monkeypatch.setattr(whisper, "_PROMPT_LEVELS", (1, 2))
    opts = engine.options.model_copy(update={"condition_on_previous_text": True,
                                             "prompt_chain": 4, "prompt_tokens": 4})
    calls = _spy(engine, monkeypatch)
    outputs = engine.transcribe(session, opts)
    assert len(outputs) == len(session)
    # 10 chunks, chains [s0-3] [s4-7] [t0-1]: waves of 3, 3, 2, 2 chunks, in calls of 3
    assert [len(c) for c in calls] == [3, 3, 2, 2]
    assert calls[0] == [[], [], []], "no chain's first chunk has a prompt"
    hf = engine.model.hf_tokenizer

    def said(*indices: int) -> list[int]:
        text = " ".join(s["text"].strip() for i in indices for s in outputs[i].segments)
        tokens: list[int] = hf.encode(" " + text.strip(), add_special_tokens=False).ids
        level = max(n for n in (1, 2, 4) if n <= len(tokens))
        return tokens[len(tokens) - level:]

    assert calls[1] == [said(0), said(4), said(8)]
    assert calls[3] == [said(0, 1, 2), said(4, 5, 6)]
    assert all(len({len(p) for p in call}) == 1 for call in calls), "one length a call"
    calls.clear()
    engine.transcribe(session, opts, batch_size=2)
    assert [len(c) for c in calls] == [2, 1, 2, 1, 2, 2], "waves of 3, 3, 2, 2 in calls of 2"
    # what the job's model stage reports as its batch: the same rule
    assert engine.chunks_per_call(10, opts) == 3 and engine.chunks_per_call(
        10, opts, batch_size=2) == 2
    assert engine.chunks_per_call(10, opts.model_copy(update={
        "condition_on_previous_text": False}), batch_size=2) == 10, "one call unprompted"


def test_chunks_given_their_chain_text_decode_as_their_chains_do_in_any_batch(
        engine: WhisperEngine, session: list[Chunk], monkeypatch: pytest.MonkeyPatch) -> None:
    """The online service's way (each chunk sent with its chain's text once the chunk
    before it is done, batched with whatever else is queued) gives the job's chains'
    prompts and text, however the chunks are batched."""
    monkeypatch.setattr(whisper, "_PROMPT_LEVELS", (1, 2))
    opts = engine.options.model_copy(update={"condition_on_previous_text": True,
                                             "prompt_chain": 4, "prompt_tokens": 4})
    calls = _spy(engine, monkeypatch)
    whole = engine.transcribe(session[:8], opts)
    chained = sorted(p for call in calls for p in call)
    calls.clear()
    said = {0: "", 4: ""}  # chain start -> its text so far
    got: dict[int, list[str]] = {}
    for position, others in enumerate([[], session[8:], session[9:], []]):
        # chunk `position` of each chain: one call with both, beside other sessions',
        # or one call each
        batches = ([[0, 4]] if position % 2 else [[0], [4]])
        for starts in batches:
            items = [session[start + position] for start in starts] + others
            outs = engine.transcribe(items, opts, prompts=[
                *(said[start] or None for start in starts), *[None] * len(others)])
            for start, out in zip(starts, outs, strict=False):
                got[start + position] = [seg["text"] for seg in out.segments]
                said[start] = chains.said_after(said[start], out)
    assert got == {i: [seg["text"] for seg in out.segments] for i, out in enumerate(whole)}
    prompted = sorted(p for call in calls for p in call if p)
    assert len(prompted) == 6, "chunks 1-3 of both chains prompted"
    assert prompted == [p for p in chained if p], "the same prompts as the chains'"
    assert chains.chained(session[2].plan, session[3].plan, 4)
    assert not chains.chained(session[3].plan, session[4].plan, 4), "a new chain at 4"
    # a chunk split in two languages: its prompt for the first part only, as in a chain
    assert chains.first_parts(["a", "b"], [0, 0, 1]) == ["a", None, "b"]


def test_a_prompt_is_the_initial_prompt_and_the_last_tokens_said_cut_to_a_level(
        engine: WhisperEngine) -> None:
    hf = engine.model.hf_tokenizer
    said = " ".join(f"word{i}" for i in range(100))
    tokens = hf.encode(" " + said, add_special_tokens=False).ids
    assert len(tokens) > 200

    def prompt(text: str | None, **update: Any) -> list[int]:
        return engine._previous_tokens(engine.options.model_copy(update=update), text)

    assert prompt(said, prompt_tokens=64) == tokens[-64:]
    assert prompt(said, prompt_tokens=50) == tokens[-50:], "the cap is a level"
    assert prompt(said, prompt_tokens=223) == tokens[-223:]
    short = hf.decode(tokens[:40])
    assert prompt(short, prompt_tokens=64) == hf.encode(
        " " + short.strip(), add_special_tokens=False).ids[-32:], "the largest level reached"
    assert prompt("word1 word2", prompt_tokens=64) == [], "too short for the least level"
    names = hf.encode("Berlin, Bundestag", add_special_tokens=False).ids
    assert prompt(said, prompt_tokens=64, initial_prompt="Berlin, Bundestag") == [
        *names, *tokens[-64:]], "the initial prompt stays in front"
    assert prompt(None, initial_prompt="Berlin, Bundestag") == names


def test_a_prompted_chunk_that_skips_speech_is_decoded_again_without_its_prompt(
        engine: WhisperEngine, session: list[Chunk], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whisper, "_PROMPT_LEVELS", (1, 2, 4))
    late = session[1].plan  # the second chunk of the first chain: prompted

    def longest_gap(output: Any) -> float:
        # 1.8 s is the limit: remainder_s (1) and twice the VAD padding (0.4 s)
        return 1.9 if output.plan == late else 1.7

    monkeypatch.setattr(repair, "_longest_gap", longest_gap)
    monkeypatch.setattr(repair, "_last_word_end",
                        lambda out: out.plan.offset_s + out.plan.duration_s)
    calls = _spy(engine, monkeypatch)
    opts = engine.options.model_copy(update={
        "condition_on_previous_text": True, "timestamps": "aligned", "remainder_s": 1.0})
    engine.transcribe(session[:2], opts)
    # wave 0 (chunk 0, no prompt), wave 1 (chunk 1, prompted), its redo (no prompt)
    assert calls[0] == [[]] and len(calls[1][0]) > 0 and calls[2] == [[]]
    calls.clear()
    # chunk 0 has no prompt to blame for a gap: it is not decoded again
    monkeypatch.setattr(repair, "_longest_gap", lambda out: 5.0)
    engine.transcribe(session[:1], opts)
    assert calls == [[[]]]


def test_each_chunk_of_a_chain_keeps_its_own_language(
        test_options: TranscribeOptions, session: list[Chunk],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Language not given: a chain does not force its first chunk's language on the rest,
    so a session that changes language changes with it (each chunk's language as
    detection gave it)."""
    engine = WhisperEngine(test_options.model_copy(update={
        "condition_on_previous_text": True, "language": None}), cpu_threads=2)
    assert engine.is_multilingual
    codes = ["en", "de", "fr", "es"]

    def detect(_: Any, items: list[Chunk], __: Any) -> Detected:
        return Detected([dataclasses.replace(c, language=codes[c.plan.index % 4])
                         for c in items], [None] * len(items), list(range(len(items))),
                        [0.5 + c.plan.index / 100 for c in items])

    monkeypatch.setattr(whisper, "detect", detect)
    outputs = engine.transcribe(session[:8])
    assert [(o.language, o.language_probability) for o in outputs] == [
        (codes[i % 4], 0.5 + i / 100) for i in range(8)]
    assert all(seg["language"] == o.language for o in outputs for seg in o.segments)


def test_the_longest_stretch_without_a_word() -> None:
    plan = ChunkPlan(index=0, offset_s=10.0, duration_s=20.0, ranges=[])

    def out(*spans: tuple[float, float]) -> chunking.ChunkOutput:
        words = [{"word": " w", "start": a, "end": b, "probability": 0.9} for a, b in spans]
        return chunking.ChunkOutput(plan=plan, segments=[{"words": words[:1]},
                                                        {"words": words[1:]}],
                                   language="en", language_probability=1.0)

    assert repair._longest_gap(out((10.0, 10.5), (10.9, 11.2))) == pytest.approx(0.4)
    assert repair._longest_gap(out((13.0, 13.5), (13.9, 14.2))) == pytest.approx(3.0)
    assert repair._longest_gap(out((10.0, 10.5), (17.5, 18.0))) == pytest.approx(7.0)
    assert repair._longest_gap(chunking.ChunkOutput(
        plan=plan, segments=[], language="en", language_probability=1.0)) == 0.0
