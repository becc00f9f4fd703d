"""Kaldi's log mel filterbank, as ``torchaudio.compliance.kaldi.fbank`` computes it.

CAM++ was trained on 80-bin Kaldi fbank with each utterance's mean subtracted (3D-Speaker's
``FBank(80, mean_nor=True)``, dither off). This is that computation in numpy, with Kaldi's
defaults as torchaudio sets them: 25 ms Povey windows every 10 ms with ``snip_edges`` (no
padding: the first frame starts at sample 0, a partial last frame is dropped), DC offset
removed and 0.97 pre-emphasis per frame, a 512-point power spectrum, triangular filters
evenly spaced on Kaldi's mel scale from 20 Hz to Nyquist, and the log floored at float32's
epsilon. ``tests/data/kaldi_fbank_reference.npz`` holds torchaudio's output on a real clip
(written by ``benchmarks/kaldi_fbank_reference.py``) and a unit test compares against it.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from scribe.config import SAMPLE_RATE
from scribe.pipeline.audio import Audio

Array = npt.NDArray[np.float32]
FRAME_LENGTH = SAMPLE_RATE * 25 // 1000
FRAME_SHIFT = SAMPLE_RATE // 100
N_FFT = 512  # the frame length rounded up to a power of two (Kaldi's round_to_power_of_two)
N_MELS = 80
_PREEMPHASIS = 0.97
_LOW_HZ = 20.0
_EPSILON = float(np.finfo(np.float32).eps)


def _mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = 1127.0 * np.log1p(hz / 700.0)
    return result


@functools.lru_cache(maxsize=1)
def mel_banks() -> Array:
    """``(N_FFT // 2 + 1, N_MELS)`` triangular filters (Kaldi's, no VTLN)."""
    low, high = _mel(np.array(_LOW_HZ)), _mel(np.array(SAMPLE_RATE / 2))
    delta = (high - low) / (N_MELS + 1)
    left = low + delta * np.arange(N_MELS)[:, None]
    center, right = left + delta, left + 2 * delta
    mel = _mel(SAMPLE_RATE / N_FFT * np.arange(N_FFT // 2, dtype=np.float64))[None, :]
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))
    # Kaldi has no filter weight on the Nyquist bin
    return np.pad(banks, ((0, 0), (0, 1))).T.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _povey() -> Array:
    n = np.arange(FRAME_LENGTH)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME_LENGTH - 1))
    return (hann ** 0.85).astype(np.float32)


def frames(samples: Audio) -> Array:
    """``(n, FRAME_LENGTH)`` frames every 10 ms, the last one whole (``snip_edges``)."""
    count = 1 + (len(samples) - FRAME_LENGTH) // FRAME_SHIFT if len(samples) >= FRAME_LENGTH else 0
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    view = np.lib.stride_tricks.as_strided(
        samples, shape=(count, FRAME_LENGTH),
        strides=(samples.strides[0] * FRAME_SHIFT, samples.strides[0]))
    return np.array(view, dtype=np.float32)


def fbank(samples: Audio) -> Array:
    """``(frames, 80)`` log mel energies of 16 kHz ``samples`` in [-1, 1]."""
    x = frames(samples)
    x -= x.mean(axis=1, keepdims=True)
    previous = np.concatenate([x[:, :1], x[:, :-1]], axis=1)  # the first sample repeats
    windowed = (x - np.float32(_PREEMPHASIS) * previous) * _povey()
    spectrum = np.fft.rfft(windowed, n=N_FFT, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    result: Array = np.log(np.maximum(power @ mel_banks(), _EPSILON))
    return result


def normalised_fbank(samples: Audio) -> Array:
    """:func:`fbank` less its mean over time (3D-Speaker's per-utterance normalisation)."""
    features = fbank(samples)
    if len(features) == 0:
        return features
    result: Array = features - features.mean(axis=0, keepdims=True)
    return result
