"""The engine with a real Whisper: exact words, and batching that changes nothing."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import itertools
import random
import tempfile
import time
from typing import Any

import numpy as np
import pytest

from scribe.config import TranscribeOptions
from scribe.pipeline.audio import decode
from scribe.pipeline.chunking import ChunkOutput
from scribe.pipeline.preprocess import PreparedSession, preprocess
from scribe.pipeline.transcript import restore_segments
from scribe.pipeline.whisper import WhisperEngine
from tests.media import write_audio
from tests.real.conftest import EXAMPLES, JFK_WORDS, words

pytestmark = pytest.mark.real

CLIPS = sorted(p.name for p in EXAMPLES.iterdir() if p.suffix != ".md")
PAUSE_S = 6.0


@pytest.fixture(scope="module")
def options(real_options: TranscribeOptions) -> TranscribeOptions:
    """With word timestamps, and without temperature fallback: a chunk that falls back is
    decoded again by sampling, which is random, batched or not (the English-only model on
    the multilingual clip falls back at times)."""
    return real_options.model_copy(update={"word_timestamps": True,
                                           "temperature_fallback": ()})


@pytest.fixture(scope="module")
def engine(options: TranscribeOptions) -> WhisperEngine:
    return WhisperEngine(options, cpu_threads=2)


@pytest.fixture(scope="module")
def sessions(options: TranscribeOptions) -> dict[str, PreparedSession]:
    """The example clips, a 90 s session of them in a row (several chunks), and jfk after
    a pause (kept, VAD off), whose long first word the previous session once steered."""
    made = {name: preprocess(str(EXAMPLES / name), options, 80) for name in CLIPS}
    clips = [decode(str(EXAMPLES / name)).samples for name in CLIPS]
    gap = np.zeros(16_000, np.float32)
    made["joined"] = _prepare(np.concatenate([s for c in clips for s in (c, gap)]), options)
    jfk = clips[CLIPS.index("jfk.flac")]
    paused = np.concatenate([np.zeros(int(PAUSE_S * 16_000), np.float32), jfk])
    made["paused"] = _prepare(paused, options.model_copy(
        update={"vad_filter": False, "trim_silence": False}))
    return made


def _prepare(samples: np.ndarray, options: TranscribeOptions) -> PreparedSession:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        write_audio(f.name, samples)
        return preprocess(f.name, options, 80)


def transcribe(engine: WhisperEngine, sessions: dict[str, PreparedSession],
               batch_size: int, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Every session's segments, its prompt chains (chunks conditioned on the text before
    them, four in a row) shuffled with all others' into shared calls of ``batch_size``
    chains, as the job's blocks keep chains whole."""
    chain = engine.options.prompt_chain
    queue = [(sid, [dataclasses.replace(c, session_id=sid) for c in p.chunks[i:i + chain]])
             for sid, p in sessions.items() for i in range(0, len(p.chunks), chain)]
    random.Random(seed).shuffle(queue)
    done: dict[str, list[ChunkOutput]] = {sid: [] for sid in sessions}
    while queue:
        batch, queue = queue[:batch_size], queue[batch_size:]
        outputs = iter(engine.transcribe([c for _, chunks in batch for c in chunks],
                                         batch_size=batch_size))
        for sid, chunks in batch:
            done[sid] += [next(outputs) for _ in chunks]
    return {sid: restore_segments(chunks) for sid, chunks in done.items()}


@pytest.fixture(scope="module")
def alone(engine: WhisperEngine, sessions: dict[str, PreparedSession]
          ) -> dict[str, list[dict[str, Any]]]:
    """Each session through the model on its own, one prompt chain per call."""
    return {sid: transcribe(engine, {sid: p}, 1)[sid] for sid, p in sessions.items()}


def _text(segments: list[dict[str, Any]]) -> str:
    return words(" ".join(s["text"] for s in segments))


def test_jfk_word_for_word(alone: dict[str, list[dict[str, Any]]]) -> None:
    assert _text(alone["jfk.flac"]) == JFK_WORDS
    assert _text(alone["paused"]).startswith("and so my fellow americans")


@pytest.mark.parametrize("clip", CLIPS)
def test_every_example_clip_gives_words(alone: dict[str, Any], clip: str) -> None:
    assert len(_text(alone[clip]).split()) >= 8, alone[clip]


@pytest.mark.parametrize(("batch_size", "seed"), [(3, 1), (16, 2)])
def test_shared_batches_change_no_word_nor_time(
        engine: WhisperEngine, sessions: dict[str, PreparedSession],
        alone: dict[str, Any], batch_size: int, seed: int) -> None:
    shared = transcribe(engine, sessions, batch_size, seed)
    for sid, segments in alone.items():
        assert shared[sid] == segments, sid


def test_calls_at_once_on_workers_of_one_engine_change_nothing(
        options: TranscribeOptions, sessions: dict[str, PreparedSession]) -> None:
    """The job's model actor on CPU runs a call per worker at once, in threads sharing one
    engine: each call gives what it gives when the calls come one at a time."""
    engine = WhisperEngine(options, cpu_threads=1, workers=2)
    chain = options.prompt_chain
    calls = [[dataclasses.replace(c, session_id=sid) for c in p.chunks[i:i + chain]]
             for sid, p in sessions.items() for i in range(0, len(p.chunks), chain)]
    spans: list[tuple[float, float]] = []

    def run(call: list[Any]) -> list[tuple[Any, str]]:
        start = time.perf_counter()
        outputs = engine.transcribe(call, batch_size=1)
        spans.append((start, time.perf_counter()))
        return [(out.segments, out.language) for out in outputs]

    one_by_one = [run(call) for call in calls]
    spans.clear()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        together = list(pool.map(run, calls))
    assert together == one_by_one
    spans.sort()
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans)), "no two calls overlapped"


def test_first_word_after_a_pause_is_its_own(alone: dict[str, Any]) -> None:
    """faster-whisper's word placement once carried the previous session's last word into
    this one: batched after jfk, the first word of jfk-after-a-pause began at 0.0."""
    first = alone["paused"][0]["words"][0]
    assert PAUSE_S - 0.5 < first["start"] < first["end"] < PAUSE_S + 1.5, first


@pytest.mark.parametrize("sid", ["joined", "multilingual.mp3", "paused"])
def test_words_in_order_inside_their_segment_and_the_audio(
        alone: dict[str, Any], sessions: dict[str, PreparedSession], sid: str) -> None:
    duration = sessions[sid].duration_s
    times = [0.0]
    for seg in alone[sid]:
        assert seg["words"], seg
        for w in seg["words"]:
            assert seg["start"] <= w["start"] <= w["end"] <= seg["end"], (seg, w)
            times += [w["start"], w["end"]]
    assert times == sorted(times) and times[-1] <= duration


def test_aligned_segments_are_sentences(alone: dict[str, Any],
                                        sessions: dict[str, PreparedSession]) -> None:
    """The default timestamps: each chunk's text decoded alone, its aligned words cut
    after each sentence: the joined clips' three chunks give more segments, none with a
    sentence end inside it."""
    segments = alone["joined"]
    assert len(segments) >= len(sessions["joined"].chunks) + 2
    for seg in segments:
        inner = [w["word"].strip() for w in seg["words"][:-1]]
        assert not any(w.endswith((".", "?", "!")) for w in inner), seg["text"]


def test_safeguards_keep_room_tone_wordless(engine: WhisperEngine,
                                            real_options: TranscribeOptions) -> None:
    """40 s of low noise with VAD off: tiny.en makes up a repetition loop and a "thank you
    for watching"; the fallback and the no-speech gate (the defaults) leave no words."""
    noise = (np.random.default_rng(0).standard_normal(40 * 16_000) * 0.004).astype(np.float32)
    raw = real_options.model_copy(update={"vad_filter": False, "trim_silence": False,
                                          "word_timestamps": True})
    prepared = _prepare(noise, raw)
    items = prepared.chunks
    ungated = raw.model_copy(update={"temperature_fallback": (), "no_speech_threshold": None})
    assert any(o.segments for o in engine.transcribe(items, ungated))
    assert all(o.segments == [] for o in engine.transcribe(items, raw))


def test_no_chunk_is_decoded_twice_alike(real_options: TranscribeOptions) -> None:
    """The fallback's first retry (timestamp tokens, no prompt) is the decode the early-end
    redo makes: tiny.en on the multilingual clip needs both for one chunk, and the second
    was once made again, identical (1.7 s of the clip's 7.4 s)."""
    engine = WhisperEngine(real_options, cpu_threads=2)
    model = engine.model.model
    decodes: list[tuple[str, tuple[int, ...], float]] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(model, name)

        def generate(self, features: Any, prompts: list[list[int]], **kwargs: Any) -> Any:
            for row, prompt in zip(np.asarray(features), prompts, strict=True):
                decodes.append((hashlib.sha256(row.tobytes()).hexdigest(), tuple(prompt),
                                kwargs["sampling_temperature"]))
            return model.generate(features, prompts, **kwargs)

    engine.model.model = Recording()
    chunks = preprocess(str(EXAMPLES / "multilingual.mp3"), real_options, 80).chunks
    outputs = engine.transcribe(chunks)
    assert len(decodes) > len(chunks), "no chunk fell back: the test checks nothing"
    assert len(decodes) == len(set(decodes)), decodes
    assert all(out.segments for out in outputs)


class _Calls:
    """CTranslate2's Whisper, recording how many chunks each encode and align call is
    given; ``device`` stands in for the one the engine plans its calls by."""

    def __init__(self, model: Any, device: str) -> None:
        self._model = model
        self.device = device
        self.rows: dict[str, list[int]] = {"encode": [], "align": []}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, features: Any, **kwargs: Any) -> Any:
        self.rows["encode"].append(len(np.asarray(features)))
        return self._model.encode(features, **kwargs)

    def align(self, features: Any, start: list[int], text: list[list[int]],
              *args: Any, **kwargs: Any) -> Any:
        self.rows["align"].append(len(text))
        return self._model.align(features, start, text, *args, **kwargs)


def test_cpu_encodes_and_aligns_chunk_by_chunk_to_the_same_words(
        engine: WhisperEngine, sessions: dict[str, PreparedSession],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPU each chunk is encoded and aligned alone (cheaper there than in a batch);
    the segments, words and times are those of the batched calls a GPU is given."""
    some = {sid: sessions[sid] for sid in ("joined", "jfk.flac", "paused")}
    found = {}
    model = engine.model.model
    for device in ("cpu", "cuda"):
        calls = _Calls(model, device)
        monkeypatch.setattr(engine.model, "model", calls)
        found[device] = (transcribe(engine, some, 3), calls.rows)
    (on_cpu, cpu_rows), (batched, gpu_rows) = found["cpu"], found["cuda"]
    assert on_cpu == batched
    assert set(cpu_rows["encode"]) == set(cpu_rows["align"]) == {1}, cpu_rows
    assert max(gpu_rows["encode"]) > 1 and max(gpu_rows["align"]) > 1, gpu_rows
