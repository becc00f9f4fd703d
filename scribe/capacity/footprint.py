"""One model actor's GPU memory: ``fixed + batch * per_item`` bytes at peak.

``fixed`` is the weights plus the CUDA context, ``per_item`` what each 30 s chunk of a
batch adds at peak. :func:`estimate` derives both from the architecture, so planning
works with no GPU at hand; :func:`scribe.capacity.packing.calibrate` measures them on a card.
:func:`memory_table` lists the built-in figures, published where a source gives one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scribe.architectures import ARCHITECTURES, WhisperArchitecture, architecture
from scribe.config import TranscribeOptions
from scribe.errors import PlanError

MiB = 1024**2
GiB = 1024**3
BATCH_SIZES = (1, 2, 4, 8, 16, 32)
COMPUTE_TYPES = ("float16", "int8_float16", "int8")

_AUDIO_CTX = 1500  # encoder positions per 30 s chunk
_TEXT_CTX = 448  # decoder positions: the longest a chunk's text can grow
_FRAMES = 3000  # mel frames per 30 s chunk, fed to the model as float32

# What CTranslate2 stores per weight, and per activation, for each compute type. ``int8``
# alone keeps activations in float32, which is why it is not the GPU default.
WEIGHT_BYTES = {"float16": 2, "bfloat16": 2, "int8_float16": 1, "int8_bfloat16": 1,
                "int8": 1, "int8_float32": 1, "float32": 4}
ACT_BYTES = {"float16": 2, "bfloat16": 2, "int8_float16": 2, "int8_bfloat16": 2,
             "int8": 4, "int8_float32": 4, "float32": 4}

# CUDA context, cuBLAS handles and workspaces, held by every actor (each is a process).
# 768 MiB makes the estimate reproduce faster-whisper's published large-v2 float16
# figure at batch 1 (4525 MB) within 2%.
CUDA_OVERHEAD = 768 * MiB

ESTIMATE_FORMULA = (
    "estimated from architecture: params x bytes/weight + 768 MiB CUDA context + batch x "
    "max(encoder: (2 x heads x 1500^2 + 8 x 1500 x d_model) x act_bytes, "
    "decoder: 2 x dec_layers x d_model x (1500 + beam x 448) x act_bytes) + encoder output"
)


COMMON_MODELS = ("tiny", "base", "small", "medium", "large-v2", "large-v3", "large-v3-turbo",
                 "distil-large-v3")


@dataclass(frozen=True)
class Figure:
    """One actor's peak GPU memory for a model, compute type and batch, and its origin."""

    model: str
    compute_type: str
    batch_size: int
    peak: int
    source: str


_README = ("published: faster-whisper README, Large-v2 on GPU (faster-whisper 1.1.0, beam 5, "
           "RTX 3070 Ti 8GB, CUDA 12.4; batch 8 = BatchedInferencePipeline)")
PUBLISHED: tuple[Figure, ...] = (
    Figure("large-v2", "float16", 1, 4525 * 1000**2, _README),
    Figure("large-v2", "float16", 8, 6090 * 1000**2, _README),
    Figure("large-v2", "int8", 1, 2926 * 1000**2, _README),
    Figure("large-v2", "int8", 8, 4500 * 1000**2, _README),
)


def arch_for(model: str) -> WhisperArchitecture:
    """The architecture of ``model``; :class:`PlanError` when it is not a known Whisper."""
    arch = architecture(model)
    if arch is None:
        raise PlanError(f"no built-in memory figures for model {model!r} (known: "
                        f"{', '.join(ARCHITECTURES)}); run `scribe calibrate` on a GPU to "
                        "measure it")
    return arch


@dataclass(frozen=True)
class MemoryModel:
    """One actor's GPU memory: ``fixed + batch * per_item`` bytes at peak."""

    fixed: int
    per_item: int
    source: str

    def peak(self, batch_size: int) -> int:
        return self.fixed + batch_size * self.per_item


def _bytes_for(compute_type: str) -> tuple[int, int]:
    if compute_type not in WEIGHT_BYTES:
        raise PlanError(f"unknown compute type {compute_type!r} "
                        f"(one of {', '.join(WEIGHT_BYTES)})")
    return WEIGHT_BYTES[compute_type], ACT_BYTES[compute_type]


def estimate(model: str, compute_type: str, *, beam_size: int = 5,
             text_positions: int = _TEXT_CTX) -> MemoryModel:
    """One actor's memory from the architecture alone (see :data:`ESTIMATE_FORMULA`).

    By default the decoder term takes every beam to all 448 positions, the worst a looping
    hallucination reaches, so this errs high (45% above the published large-v2 float16
    batch-8 figure): run :func:`calibrate` on the card to plan from measured figures.
    """
    arch = arch_for(model)
    weight, act = _bytes_for(compute_type)
    positions = min(_TEXT_CTX, text_positions)
    encoder = (2 * arch.heads * _AUDIO_CTX**2 + 8 * _AUDIO_CTX * arch.d_model) * act
    decoder = 2 * arch.decoder_layers * arch.d_model * (_AUDIO_CTX + beam_size * positions) * act
    kept = _AUDIO_CTX * arch.d_model * act + arch.n_mels * _FRAMES * 4
    source = ESTIMATE_FORMULA.replace("448", str(positions)) + f" (beam {beam_size})"
    return MemoryModel(arch.params * weight + CUDA_OVERHEAD, max(encoder, decoder) + kept,
                       source)


def decoder_positions(options: TranscribeOptions) -> int:
    """How far each beam's decoder cache can grow under ``options``: a cap on new tokens
    bounds it; the prompt (up to 224 tokens with an initial prompt, 4 without) adds to it."""
    if options.max_new_tokens is None:
        return _TEXT_CTX
    prompt = _TEXT_CTX // 2 if options.initial_prompt else 4
    return min(_TEXT_CTX, prompt + options.max_new_tokens)


def estimate_for(options: TranscribeOptions) -> MemoryModel:
    """:func:`estimate` for resolved transcription options (model, compute type, beam)."""
    assert options.model is not None and options.compute_type is not None
    return estimate(options.model, options.compute_type, beam_size=options.beam_size,
                    text_positions=decoder_positions(options))


def memory_table(models: Sequence[str] = COMMON_MODELS,
                 compute_types: Sequence[str] = COMPUTE_TYPES,
                 batch_sizes: Sequence[int] = BATCH_SIZES) -> list[Figure]:
    """The built-in per-actor figures: published where a source gives one, else estimated."""
    published = {(f.model, f.compute_type, f.batch_size): f for f in PUBLISHED}
    rows = []
    for model in models:
        for compute_type in compute_types:
            memory = estimate(model, compute_type)
            for batch in batch_sizes:
                rows.append(published.get((model, compute_type, batch)) or Figure(
                    model, compute_type, batch, memory.peak(batch), "estimated from architecture"))
    return rows
