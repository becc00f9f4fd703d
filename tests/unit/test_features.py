"""Log-mel features match faster-whisper's batched pipeline bit for bit (on one BLAS
thread), are the same in any process whatever its BLAS threads, and stack into the model's
(batch, n_mels, 3000) input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor
from threadpoolctl import threadpool_limits

from scribe.pipeline.features import N_FRAMES, extractor, log_mel, stack_padded, window_frames
from tests import media

pytestmark = pytest.mark.unit

SR = media.SAMPLE_RATE
HOP = 160


@pytest.fixture(scope="module")
def chunk() -> np.ndarray:
    return media.speech(7.3, seed=11)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_shape_is_mels_by_hops(chunk: np.ndarray, n_mels: int) -> None:
    features = log_mel(chunk, n_mels)
    assert features.shape == (n_mels, len(chunk) // HOP)
    assert features.dtype == np.float32
    assert features.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("n", [HOP, HOP + 1, 2 * HOP - 1, SR, SR + 161, 30 * SR])
def test_frames_are_whole_hops(n: int) -> None:
    samples = 0.1 * np.random.default_rng(n).standard_normal(n).astype(np.float32)
    assert log_mel(samples, 80).shape == (80, n // HOP)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_equals_faster_whisper_batched_features(chunk: np.ndarray, n_mels: int) -> None:
    # BatchedInferencePipeline computes `feature_extractor(chunk)[..., :-1]` per chunk.
    with threadpool_limits(limits=1, user_api="blas"):
        theirs = FeatureExtractor(feature_size=n_mels)(chunk)[..., :-1]
    np.testing.assert_array_equal(log_mel(chunk, n_mels), theirs)


def test_full_window_equals_the_extractor_at_30_s() -> None:
    samples = media.speech(30.0, seed=12)
    with threadpool_limits(limits=1, user_api="blas"):
        theirs = FeatureExtractor(feature_size=128)(samples)[..., :-1]
    assert theirs.shape == (128, N_FRAMES)
    np.testing.assert_array_equal(log_mel(samples, 128), theirs)


def test_extractor_is_built_once_per_mel_count() -> None:
    assert extractor(80) is extractor(80)
    assert extractor(80) is not extractor(128)
    assert extractor(128).mel_filters.shape[0] == 128


@pytest.mark.parametrize("n_mels", [80, 128])
def test_stack_padded_gives_model_input(n_mels: int) -> None:
    lengths = [int(s * SR) for s in (30.0, 12.5, 0.4)]
    features = [log_mel(media.speech(n / SR, seed=n), n_mels) for n in lengths]
    batch = stack_padded(features)
    assert batch.shape == (3, n_mels, N_FRAMES)
    assert batch.dtype == np.float32
    for row, f in zip(batch, features, strict=True):
        np.testing.assert_array_equal(row[:, : f.shape[1]], f)
        assert not row[:, f.shape[1]:].any()  # zero padding, as the batched pipeline pads


def test_stack_padded_cuts_what_is_too_long() -> None:
    too_long = np.ones((80, N_FRAMES + 7), np.float32)
    assert stack_padded([too_long]).shape == (1, 80, N_FRAMES)


def test_a_shorter_window_is_the_audio_and_its_padding_in_5_s_steps() -> None:
    # 4.5 s + 10 s of padding: a 15 s window; 12 s + 10 s: 25 s; never past 30 s
    assert [window_frames(f, 10.0) for f in (450, 1200, 2400, 3000)] == [
        1500, 2500, N_FRAMES, N_FRAMES]
    assert window_frames(450, 0.0) == 500
    assert window_frames(450, None) == N_FRAMES
    batch = stack_padded([np.ones((80, 450), np.float32)], window_frames(450, 10.0))
    assert batch.shape == (1, 80, 1500) and not batch[:, :, 450:].any()


FEATURES_DIGEST = (
    "import hashlib, sys\n"
    "from scribe.pipeline.features import log_mel\n"
    "from tests import media\n"
    "print(hashlib.sha256(log_mel(media.speech(30.0, seed=12), 80).tobytes()).hexdigest())\n")


def test_the_same_features_whatever_blas_threads_the_process_runs() -> None:
    """A Ray worker runs BLAS on one thread, a driver on every core: the features (and so
    the words) must not depend on which."""
    digests = set()
    for threads in ("1", "4"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        found = subprocess.run([sys.executable, "-c", FEATURES_DIGEST], env=env, check=True,
                               capture_output=True, text=True, timeout=120)
        digests.add(found.stdout.strip())
    assert len(digests) == 1
