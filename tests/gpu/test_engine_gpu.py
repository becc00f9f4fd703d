"""The engine on a CUDA GPU: float16 and int8_float16 load and batch. Skipped without one."""

from __future__ import annotations

import dataclasses

import pytest

from scribe.config import TranscribeOptions
from scribe.pipeline.preprocess import preprocess
from scribe.pipeline.whisper import WhisperEngine

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("compute_type", ["float16", "int8_float16"])
def test_engine_batches_on_cuda(tiny_model: str, compute_type: str) -> None:
    options = TranscribeOptions(model=tiny_model, device="cuda", compute_type=compute_type,
                                beam_size=1, max_new_tokens=8, language="en",
                                temperature_fallback=())  # random weights fail every gate
    engine = WhisperEngine(options)
    prepared = preprocess("examples/sessions/multilingual.mp3", options, engine.n_mels)
    # four sessions of the same audio, whose chunks (prompt chains) share the calls
    items = [dataclasses.replace(c, session_id=f"m{k}") for k in range(4) for c in prepared.chunks]
    outputs = engine.transcribe(items)
    assert len(outputs) == len(items)
    n = len(prepared.chunks)
    assert [o.segments for o in outputs[:n]] == [o.segments for o in outputs[n: 2 * n]]
