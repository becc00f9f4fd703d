"""The batch job with a real Whisper: in-process, and as a newcomer runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ray_jobs.transcribe import run_job
from scribe.config import JobConfig, ResourceConfig, TranscribeOptions
from tests.real.conftest import EXAMPLES, JFK_WORDS, words

pytestmark = [pytest.mark.real, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]


def _record(out: Path, session_id: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((out / f"{session_id}.json").read_text())
    assert record["status"] == "ok", record["error"]
    return record


def test_job_transcribes_every_example_in_words(
        ray_local: Any, real_options: TranscribeOptions, tmp_path: Path) -> None:
    config = JobConfig(input=str(EXAMPLES), output=str(tmp_path),
                       transcribe=real_options.model_copy(update={"word_timestamps": True}),
                       resources=ResourceConfig(model_batch_size=8))
    summary = run_job(config)
    assert summary["sessions"]["failed"] == 0
    assert words(_record(tmp_path, "jfk")["text"]) == JFK_WORDS
    for clip in EXAMPLES.iterdir():
        if clip.suffix != ".md":
            record = _record(tmp_path, clip.stem)
            assert len(words(record["text"]).split()) >= 8, record["text"]
            assert all(seg["words"] for seg in record["segments"])


def test_prompt_chains_reach_the_model_whole(
        ray_local: Any, real_options: TranscribeOptions, tmp_path: Path) -> None:
    """Chunks conditioned on the text before them, the default, in model calls of one
    batch of 1 x 4 rows: two sessions of six chunks (chains 0-3 and 4-5 each) and the
    example clips. Unpadded, the second session's first chain would be cut between two
    calls (rows 4-5 of the first session lead its call). Each session reads as the engine
    reads it alone, chain by chain: no call cut a chain, and the filler rows that keep
    blocks whole left no trace. (No temperature fallback: it samples, and the English-only
    model falls back on the multilingual clip.)"""
    from scribe.pipeline.audio import decode
    from scribe.pipeline.preprocess import preprocess
    from scribe.pipeline.transcript import restore_segments
    from scribe.pipeline.whisper import WhisperEngine
    from tests.media import write_audio

    src = tmp_path / "in"
    src.mkdir()
    clips = sorted(p for p in EXAMPLES.iterdir() if p.suffix != ".md")
    for clip in clips:
        (src / clip.name).symlink_to(clip)
    gap = np.zeros(16_000, np.float32)
    for name, order in (("long", clips * 2), ("again", clips[::-1] * 2)):
        pieces = [decode(str(c)).samples for c in order]
        write_audio(str(src / f"{name}.wav"), np.concatenate([x for p in pieces
                                                              for x in (p, gap)]))
    options = real_options.model_copy(update={"temperature_fallback": ()})
    chain = options.prompt_chain
    config = JobConfig(input=str(src), output=str(tmp_path / "out"), transcribe=options,
                       resources=ResourceConfig(model_batch_size=1, model_actors=2))
    assert run_job(config)["sessions"]["failed"] == 0
    engine = WhisperEngine(options.resolved(), cpu_threads=2)
    for path in [src / "long.wav", src / "again.wav", *(src / c.name for c in clips)]:
        chunks = preprocess(str(path), engine.options, engine.n_mels).chunks
        if path.suffix == ".wav" and path.stem in ("long", "again"):
            assert len(chunks) % chain == 2, "blocks of 4 + 2 chunks"
        outputs = [out for i in range(0, len(chunks), chain)
                   for out in engine.transcribe(chunks[i:i + chain])]
        alone = " ".join(s["text"].strip() for s in restore_segments(outputs))
        assert words(_record(tmp_path / "out", path.stem)["text"]) == words(alone), path.stem


def test_scribe_transcribe_with_the_model_named_tiny_en(ray_local: Any, tmp_path: Path) -> None:
    """``python -m ray_scribe.cli transcribe --model tiny.en``: the installed model, found by
    name with the Hugging Face hub unreachable, on the tests' Ray."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "jfk.flac").symlink_to(EXAMPLES / "jfk.flac")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    done = subprocess.run(
        [sys.executable, "-m", "ray_scribe.cli", "transcribe", "--input", str(src),
         "--output", str(tmp_path / "out"), "--model", "tiny.en", "--device", "cpu"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert words((tmp_path / "out" / "jfk.txt").read_text()) == JFK_WORDS
    segments = _record(tmp_path / "out", "jfk")["segments"]
    assert segments and not any("words" in s for s in segments), "no words unless asked for"
