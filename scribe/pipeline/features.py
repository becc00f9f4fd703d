"""Log-mel features on the CPU, so model actors spend their time in the model only."""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt
from faster_whisper.audio import pad_or_trim
from faster_whisper.feature_extractor import FeatureExtractor
from threadpoolctl import ThreadpoolController

from scribe.pipeline.audio import Audio

Features = npt.NDArray[np.float32]
N_FRAMES = 3000


@functools.lru_cache(maxsize=4)
def extractor(n_mels: int) -> FeatureExtractor:
    """faster-whisper's extractor for ``n_mels`` bins (80, or 128 for large-v3)."""
    return FeatureExtractor(feature_size=n_mels)


@functools.lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def log_mel(samples: Audio, n_mels: int) -> Features:
    """``(n_mels, frames)`` log-mel features of one chunk, unpadded (as the batched pipeline).

    The mel projection runs on one BLAS thread, so its sums always come out in the same
    order and a chunk's features are bit-identical in every process: Ray's workers run
    BLAS on one thread, a driver or a notebook on every core, and a last-bit difference in
    the features was enough to change beam search's words on unclear speech (the job and
    the engine in one process disagreed on a German clip through tiny.en)."""
    with _blas().limit(limits=1, user_api="blas"):
        features: Features = extractor(n_mels)(samples)[..., :-1]
    return np.ascontiguousarray(features, dtype=np.float32)


def stack_padded(features: list[Features], frames: int = N_FRAMES) -> Features:
    """A ``(batch, n_mels, frames)`` model input from unpadded chunk features: Whisper's
    30 s window unless a shorter one is asked for (CTranslate2 encodes any width up to it)."""
    batch: Features = np.stack([pad_or_trim(f, frames) for f in features]).astype(
        np.float32, copy=False)
    return batch


def window_frames(frames: int, padding_s: float | None, fps: int = 100) -> int:
    """The encoder width for ``frames`` of audio followed by ``padding_s`` seconds of
    padding, rounded up to a multiple of 5 s (so that similar widths share a model call), at
    most Whisper's 30 s window; the full window when ``padding_s`` is None."""
    if padding_s is None:
        return N_FRAMES
    step = 5 * fps
    return min(N_FRAMES, math.ceil((frames + padding_s * fps) / step) * step)
