"""3D-Speaker's CAM++ speaker encoder (Chinese + English "common advanced", 192-d) in numpy.

The network is 3D-Speaker's ``CAMPPlus`` (speakerlab/models/campplus) in inference form:
a 2-D residual front end over the fbank (FCM), a strided TDNN, three densely connected
blocks of context-aware masked TDNN layers with transitions, statistics pooling and a
linear layer with a non-affine batch norm. Batch norms that follow a convolution are
folded into it when the weights load; those that precede one (before a ReLU) stay affine
maps. Activations are kept channel-first across the batch, ``(channels, batch, frames)``,
so every convolution is one large matrix product per kernel tap. Windows of one length go
through together; the context masks pool over each window alone, as in training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from scribe.pipeline.audio import Audio
from scribe.pipeline.speakers.fbank import normalised_fbank

Array = npt.NDArray[np.float32]
State = dict[str, Array]
_EPS = 1e-5  # torch's BatchNorm default
_BLOCKS = ((12, 1), (24, 2), (16, 2))  # (layers, dilation) of the three dense blocks
_SEGMENT = 100  # frames the context mask pools over, besides the whole window
_BATCH_FRAMES = 4096  # fbank frames per pass: bounds the front end's im2col buffer (~190 MB)


def _bn(state: State, prefix: str, affine: bool = True) -> tuple[Array, Array]:
    """A batch norm as ``x * scale + shift`` per channel."""
    scale = 1.0 / np.sqrt(state[f"{prefix}.running_var"] + _EPS)
    shift = -state[f"{prefix}.running_mean"] * scale
    if affine:
        scale, shift = scale * state[f"{prefix}.weight"], shift * state[f"{prefix}.weight"]
        shift = shift + state[f"{prefix}.bias"]
    return scale.astype(np.float32), shift.astype(np.float32)


def _folded(state: State, conv: str, bn: str, affine: bool = True) -> tuple[Array, Array]:
    """A bias-free convolution followed by a batch norm, as one convolution with a bias."""
    scale, shift = _bn(state, bn, affine)
    weight = state[f"{conv}.weight"] * scale.reshape(-1, *[1] * (state[f"{conv}.weight"].ndim - 1))
    return weight.astype(np.float32), shift


class CamPlusPlus:
    """CAM++ from its state dict; ``embed`` gives L2-normalised 192-d embeddings."""

    name = "campplus"
    dimension = 192

    def __init__(self, state: State) -> None:
        self._head = self._load_head(state)
        self._tdnn = _folded(state, "xvector.tdnn.linear", "xvector.tdnn.nonlinear.batchnorm")
        self._blocks = [self._load_block(state, b + 1, layers)
                        for b, (layers, _) in enumerate(_BLOCKS)]
        self._transits = [
            (*_bn(state, f"xvector.transit{b}.nonlinear.batchnorm"),
             state[f"xvector.transit{b}.linear.weight"][:, :, 0])
            for b in (1, 2, 3)]
        self._out = _bn(state, "xvector.out_nonlinear.batchnorm")
        weight, shift = _folded(state, "xvector.dense.linear", "xvector.dense.nonlinear.batchnorm",
                                affine=False)
        self._dense = (weight[:, :, 0], shift)

    @staticmethod
    def _load_head(state: State) -> dict[str, tuple[Array, Array]]:
        convs = {"conv1": "bn1", "conv2": "bn2"}
        for layer in ("layer1", "layer2"):
            for block in ("0", "1"):
                p = f"{layer}.{block}"
                convs.update({f"{p}.conv1": f"{p}.bn1", f"{p}.conv2": f"{p}.bn2"})
                if f"head.{p}.shortcut.0.weight" in state:
                    convs[f"{p}.shortcut.0"] = f"{p}.shortcut.1"
        return {conv: _folded(state, f"head.{conv}", f"head.{bn}") for conv, bn in convs.items()}

    @staticmethod
    def _load_block(state: State, block: int, layers: int) -> list[dict[str, Array]]:
        out = []
        for i in range(1, layers + 1):
            p = f"xvector.block{block}.tdnnd{i}"
            scale1, shift1 = _bn(state, f"{p}.nonlinear1.batchnorm")
            scale2, shift2 = _bn(state, f"{p}.nonlinear2.batchnorm")
            out.append({
                "scale1": scale1, "shift1": shift1, "scale2": scale2, "shift2": shift2,
                "linear1": state[f"{p}.linear1.weight"][:, :, 0],
                "local": state[f"{p}.cam_layer.linear_local.weight"],
                "w1": state[f"{p}.cam_layer.linear1.weight"][:, :, 0],
                "b1": state[f"{p}.cam_layer.linear1.bias"],
                "w2": state[f"{p}.cam_layer.linear2.weight"][:, :, 0],
                "b2": state[f"{p}.cam_layer.linear2.bias"]})
        return out

    def embed(self, windows: Sequence[Audio]) -> Array:
        """Embeddings of 16 kHz ``windows`` (each at least 25 ms; 0.4-1.6 s in practice)."""
        features = [normalised_fbank(w) for w in windows]
        out = np.zeros((len(windows), self.dimension), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for i, f in enumerate(features):
            by_length.setdefault(len(f), []).append(i)
        for length, rows in by_length.items():
            if length == 0:
                continue
            step = max(1, _BATCH_FRAMES // length)
            for start in range(0, len(rows), step):
                chunk = rows[start:start + step]
                out[chunk] = self.forward(np.stack([features[i] for i in chunk]))
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        result: Array = out / np.maximum(norm, 1e-8)
        return result

    def forward(self, features: Array) -> Array:
        """The raw (unnormalised) embeddings of ``(batch, frames, 80)`` fbank features."""
        x = self._front(features)
        x = _relu(_conv1d(x, *self._tdnn, stride=2, dilation=1))
        for blocks, transit, (_, dilation) in zip(self._blocks, self._transits, _BLOCKS,
                                                  strict=True):
            x = _dense_block(x, blocks, dilation)
            scale, shift, weight = transit
            x = _matmul(weight, _relu(_affine(x, scale, shift)))
        x = _relu(_affine(x, *self._out))
        stats = np.concatenate([x.mean(axis=2), x.std(axis=2, ddof=1 if x.shape[2] > 1 else 0)])
        weight, shift = self._dense
        result: Array = (weight @ stats + shift[:, None]).T
        return result

    def _front(self, features: Array) -> Array:
        """FCM: ``(batch, frames, 80)`` to ``(320, batch, frames)`` (32 channels x 10 bins)."""
        h = self._head
        x = np.ascontiguousarray(features.transpose(2, 0, 1)[None])  # (1, F, B, T)
        x = _relu(_conv2d(x, *h["conv1"], stride=1))
        for layer in ("layer1", "layer2"):
            for block, stride in (("0", 2), ("1", 1)):
                p = f"{layer}.{block}"
                y = _relu(_conv2d(x, *h[f"{p}.conv1"], stride=stride))
                y = _conv2d(y, *h[f"{p}.conv2"], stride=1)
                short = h.get(f"{p}.shortcut.0")
                x = _relu(y + (_conv2d(x, *short, stride=stride) if short else x))
        x = _relu(_conv2d(x, *h["conv2"], stride=2))
        channels, bins, batch, frames = x.shape
        return x.reshape(channels * bins, batch, frames)


def _relu(x: Array) -> Array:
    return np.maximum(x, 0.0, out=x)


def _affine(x: Array, scale: Array, shift: Array) -> Array:
    result: Array = x * scale[:, None, None] + shift[:, None, None]
    return result


def _matmul(weight: Array, x: Array) -> Array:
    """A 1x1 convolution: ``(out, in) @ (in, batch, frames)``."""
    channels, batch, frames = x.shape
    result: Array = (weight @ x.reshape(channels, -1)).reshape(-1, batch, frames)
    return result


def _conv2d(x: Array, weight: Array, bias: Array, *, stride: int) -> Array:
    """A 3x3 (or 1x1) convolution over ``(channels, bins, batch, frames)``, padding 1,
    stride ``stride`` along bins: the taps stacked under the channels (im2col), so it is
    one matrix product with 9x the channels (32 alone keeps the BLAS kernel starved)."""
    out_c, in_c, kh, kw = weight.shape
    _, bins, batch, frames = x.shape
    pad = kh // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (0, 0), (pad, pad))) if pad else x
    out_bins = (bins + 2 * pad - kh) // stride + 1
    columns = np.empty((kh, kw, in_c, out_bins, batch, frames), dtype=np.float32)
    for i in range(kh):
        rows = padded[:, i:i + stride * (out_bins - 1) + 1:stride]
        for j in range(kw):
            columns[i, j] = rows[..., j:j + frames]
    taps = weight.transpose(0, 2, 3, 1).reshape(out_c, -1)
    out = taps @ columns.reshape(kh * kw * in_c, -1)
    out += bias[:, None]
    return out.reshape(out_c, out_bins, batch, frames)


def _conv1d(x: Array, weight: Array, bias: Array | None, *, stride: int,
            dilation: int) -> Array:
    """A convolution along frames over ``(channels, batch, frames)``, padded to keep the
    length (divided by ``stride``)."""
    out_c, in_c, k = weight.shape
    _, batch, frames = x.shape
    pad = (k - 1) // 2 * dilation
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    out_frames = (frames + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    out = np.zeros((out_c, batch * out_frames), dtype=np.float32)
    for j in range(k):
        start = j * dilation
        tap = padded[:, :, start:start + stride * (out_frames - 1) + 1:stride]
        out += weight[:, :, j] @ tap.reshape(in_c, -1)
    if bias is not None:
        out += bias[:, None]
    return out.reshape(out_c, batch, out_frames)


def _dense_block(x: Array, layers: list[dict[str, Array]], dilation: int) -> Array:
    """Each layer reads every channel so far and appends its own (into one buffer)."""
    channels, batch, frames = x.shape
    growth = layers[0]["local"].shape[0]
    buffer = np.empty((channels + growth * len(layers), batch, frames), dtype=np.float32)
    buffer[:channels] = x
    for i, p in enumerate(layers):
        width = channels + growth * i
        h = _relu(_affine(buffer[:width], p["scale1"], p["shift1"]))
        h = _relu(_affine(_matmul(p["linear1"], h), p["scale2"], p["shift2"]))
        buffer[width:width + growth] = _cam(h, p, dilation)
    return buffer


def _cam(x: Array, p: dict[str, Array], dilation: int) -> Array:
    """Context-aware masking: a local convolution gated by the window's and its 100-frame
    segment's mean (both computed per segment, then spread over its frames)."""
    local = _conv1d(x, p["local"], None, stride=1, dilation=dilation)
    channels, batch, frames = x.shape
    n_seg = -(-frames // _SEGMENT)
    padded = np.zeros((channels, batch, n_seg * _SEGMENT), dtype=np.float32)
    padded[..., :frames] = x
    counts = np.minimum(_SEGMENT, frames - _SEGMENT * np.arange(n_seg)).astype(np.float32)
    seg = padded.reshape(channels, batch, n_seg, _SEGMENT).sum(axis=3) / counts
    context = seg + x.mean(axis=2, keepdims=True)
    hidden = np.maximum(_matmul(p["w1"], context) + p["b1"][:, None, None], 0.0)
    gate = 1.0 / (1.0 + np.exp(-(_matmul(p["w2"], hidden) + p["b2"][:, None, None])))
    spread = np.repeat(gate, _SEGMENT, axis=2)[..., :frames]
    result: Array = local * spread
    return result
