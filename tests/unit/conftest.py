"""What the model-stage and assembly tests share, built once per run: an engine over the
tiny test model and the example clips prepared for it."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from scribe.config import TranscribeOptions
from scribe.pipeline.audio import decode
from scribe.pipeline.preprocess import PreparedSession, preprocess
from scribe.pipeline.whisper import WhisperEngine
from tests.media import speech, write_audio

CLIPS = ["jfk.flac", "multilingual.mp3", "hotwords.mp3"]


@pytest.fixture(scope="session")
def exact_options(test_options: TranscribeOptions) -> TranscribeOptions:
    """The test model's options with preprocessing that leaves the samples as decoded."""
    # Same samples for both sides: no trim/normalise, so chunks equal faster-whisper's own;
    # no second decode of what a chunk's text leaves, and every chunk encoded in the full
    # 30 s window: that pipeline does neither.
    return test_options.model_copy(update={
        "language": "en", "normalize": False, "trim_silence": False, "max_new_tokens": 12,
        "remainder_s": None, "window_padding_s": None})


@pytest.fixture(scope="session")
def engine(exact_options: TranscribeOptions) -> WhisperEngine:
    """One engine over the tiny test model for every test that runs the model."""
    return WhisperEngine(exact_options, cpu_threads=2)


@pytest.fixture(scope="session")
def clips(exact_options: TranscribeOptions) -> dict[str, tuple[np.ndarray, PreparedSession]]:
    """Each example clip and 75 s of synthetic speech: (samples, prepared session)."""
    paths = {name: f"examples/sessions/{name}" for name in CLIPS}
    made = {name: (decode(path).samples, preprocess(path, exact_options, 80))
            for name, path in paths.items()}
    long = speech(75.0, seed=42)
    made["long"] = (long, _prepare_array(long, exact_options))
    return made


def _prepare_array(samples: np.ndarray, options: TranscribeOptions) -> PreparedSession:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        write_audio(f.name, samples)
        return preprocess(f.name, options, 80)
