"""Log-mel features on the CPU, so model actors spend their time in the model only."""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
from faster_whisper.audio import pad_or_trim
from faster_whisper.feature_extractor import FeatureExtractor

from scribe.pipeline.audio import Audio

Features = npt.NDArray[np.float32]
N_FRAMES = 3000


@functools.lru_cache(maxsize=4)
def extractor(n_mels: int) -> FeatureExtractor:
    """faster-whisper's extractor for ``n_mels`` bins (80, or 128 for large-v3)."""
    return FeatureExtractor(feature_size=n_mels)


def log_mel(samples: Audio, n_mels: int) -> Features:
    """``(n_mels, frames)`` log-mel features of one chunk, unpadded (as the batched pipeline)."""
    features: Features = extractor(n_mels)(samples)[..., :-1]
    return np.ascontiguousarray(features, dtype=np.float32)


def stack_padded(features: list[Features]) -> Features:
    """A ``(batch, n_mels, 3000)`` model input from unpadded chunk features."""
    batch: Features = np.stack([pad_or_trim(f) for f in features]).astype(np.float32, copy=False)
    return batch
