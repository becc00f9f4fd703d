"""One model actor's GPU memory: ``fixed + batch * per_item`` bytes at peak.

``fixed`` is the weights plus the CUDA context, ``per_item`` what each 30 s chunk of a
batch adds at peak. :func:`built_in` takes both from the published measurements
(:data:`PUBLISHED`, each with its source) where they cover the model, and otherwise from
:func:`estimate`, which derives them from the architecture; ``scribe calibrate`` measures
them on a card. :func:`memory_table` lists the built-in figures with their sources.
:func:`process_memory` reads a process's own resident memory, where it is measured.
"""

from __future__ import annotations

import dataclasses
import resource
from collections.abc import Sequence
from dataclasses import dataclass

from scribe.architectures import ARCHITECTURES, WhisperArchitecture, architecture, canonical_name
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


def process_memory() -> tuple[int, int]:
    """(resident, peak resident) bytes of this process. The peak is /proc's ``VmHWM``,
    this program's own: ``ru_maxrss`` also counts the process that started it (Linux
    carries the larger across ``exec``, so a child of a 2 GB test run reports 2 GB). Without
    /proc, ``ru_maxrss`` for both."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux counts KiB
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return peak, peak


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


# Published peaks, each as its source states it. Every source ran faster-whisper at beam 5;
# "batch 1" is the sequential WhisperModel.transcribe, a larger batch its
# BatchedInferencePipeline. nvidia-smi, which these tables read, counts MiB: where a source
# writes "MB" the figure is taken as MB (1000^2), which errs low by under 5%.
_README = ("published: faster-whisper README, Large-v2 on GPU (faster-whisper 1.1.0, beam 5, "
           "RTX 3070 Ti 8GB, CUDA 12.4; batch 8 = BatchedInferencePipeline)")
_PR_856 = ("published: faster-whisper PR #856 (batched inference), large-v3 fp16 on a V100S, "
           "beam 5, sequential vs batch 16")
_ISSUE_1030 = ("published: faster-whisper #1030 (benchmark of turbo), RTX 2080 Ti, beam 5, "
               "sequential, 13 min of audio")
_H200 = ("measured: benchmarks/gpu_check.py on an NVIDIA H200 (2026-11-27, CTranslate2 4.8.5 "
         "on cuBLAS 13), NVML per process, beam 5, random weights (9 tokens per chunk: real "
         "speech's longer text holds more decoder cache)")
_MB = 1000**2
# The published figures, and the ones measured here on a lent GPU (source "measured: ...").
PUBLISHED: tuple[Figure, ...] = (
    Figure("large-v2", "float16", 1, 4525 * _MB, _README),
    Figure("large-v2", "float16", 8, 6090 * _MB, _README),
    Figure("large-v2", "int8", 1, 2926 * _MB, _README),
    Figure("large-v2", "int8", 8, 4500 * _MB, _README),
    Figure("large-v3", "float16", 1, 4644 * MiB, _PR_856),
    Figure("large-v3", "float16", 16, 9024 * MiB, _PR_856),
    Figure("large-v3", "int8", 1, 2953 * _MB, _ISSUE_1030),
    Figure("large-v3-turbo", "float16", 1, 2537 * _MB, _ISSUE_1030),
    Figure("large-v3-turbo", "float16", 16, 4945084416, _H200),
    Figure("large-v3-turbo", "int8", 1, 1545 * _MB, _ISSUE_1030),
    Figure("distil-large-v3", "float16", 1, 2409 * _MB, _ISSUE_1030),
    Figure("distil-large-v3", "int8", 1, 1481 * _MB, _ISSUE_1030),
)
# The sources' beam: a plan for a wider beam cannot lean on them.
_PUBLISHED_BEAM = 5
# int8_float16 holds the same int8 weights as int8 with activations in half precision, not
# float32, so int8's published peaks bound it from above.
_BOUNDED_BY = {"int8_float16": "int8", "int8_bfloat16": "int8"}


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
    bounds it; the prompt adds to it: 4 tokens, plus up to 223 with an initial prompt, or
    ``prompt_tokens`` of the text before when conditioning on it."""
    if options.max_new_tokens is None:
        return _TEXT_CTX
    text = _TEXT_CTX // 2 if options.initial_prompt else (
        options.prompt_tokens if options.condition_on_previous_text else 0)
    return min(_TEXT_CTX, 4 + text + options.max_new_tokens)


def estimate_for(options: TranscribeOptions) -> MemoryModel:
    """:func:`estimate` for resolved transcription options (model, compute type, beam)."""
    assert options.model is not None and options.compute_type is not None
    return estimate(options.model, options.compute_type, beam_size=options.beam_size,
                    text_positions=decoder_positions(options))


def published_model(model: str, compute_type: str) -> MemoryModel | None:
    """One actor's memory from :data:`PUBLISHED`, or None where no source covers the model
    and compute type. Two batch sizes give the line through them; a lone sequential figure
    gives ``fixed``, with the per-chunk growth of the steepest two-figure line of that
    compute type scaled by the two architectures' estimated per-chunk ratio."""
    name = canonical_name(model)
    points = _published_points(name, compute_type)
    if not points and compute_type in _BOUNDED_BY:
        bound = published_model(model, _BOUNDED_BY[compute_type])
        return bound and dataclasses.replace(
            bound, source=f"{bound.source}; {_BOUNDED_BY[compute_type]}'s figures, an upper "
            f"bound for {compute_type}")
    if len(points) >= 2:
        return _line(points[0], points[-1])
    if not points:
        return None
    lines = {m: _line(p[0], p[-1]) for m in dict.fromkeys(f.model for f in PUBLISHED)
             if len(p := _published_points(m, compute_type)) >= 2}
    if not lines:
        return None
    ref_model = max(lines, key=lambda m: lines[m].per_item)
    ratio = estimate(model, compute_type).per_item / estimate(ref_model, compute_type).per_item
    per_item = int(lines[ref_model].per_item * ratio)
    point = points[0]
    return MemoryModel(point.peak - point.batch_size * per_item, per_item,
                       f"{point.source}; per chunk: {ref_model}'s published growth x "
                       f"{ratio:.2f} (estimated ratio of the architectures)")


def _published_points(name: str | None, compute_type: str) -> list[Figure]:
    return sorted((f for f in PUBLISHED if (f.model, f.compute_type) == (name, compute_type)),
                  key=lambda f: f.batch_size)


def _line(low: Figure, high: Figure) -> MemoryModel:
    per_item = (high.peak - low.peak) // (high.batch_size - low.batch_size)
    source = f"{low.source} (line through batch {low.batch_size} and {high.batch_size})"
    if high.source != low.source:
        source = (f"{low.source} (batch {low.batch_size}) and {high.source} (batch "
                  f"{high.batch_size}): the line through both")
    return MemoryModel(low.peak - low.batch_size * per_item, per_item, source)


def built_in(model: str, compute_type: str, *, beam_size: int = 5,
             text_positions: int = _TEXT_CTX) -> MemoryModel:
    """One actor's memory without a measurement here: from the published figures where
    they cover the model, compute type and beam, else :func:`estimate`."""
    if beam_size <= _PUBLISHED_BEAM:
        published = published_model(model, compute_type)
        if published:
            return published
    return estimate(model, compute_type, beam_size=beam_size, text_positions=text_positions)


def built_in_for(options: TranscribeOptions) -> MemoryModel:
    """:func:`built_in` for resolved transcription options (model, compute type, beam)."""
    assert options.model is not None and options.compute_type is not None
    return built_in(options.model, options.compute_type, beam_size=options.beam_size,
                    text_positions=decoder_positions(options))


def memory_table(models: Sequence[str] = COMMON_MODELS,
                 compute_types: Sequence[str] = COMPUTE_TYPES,
                 batch_sizes: Sequence[int] = BATCH_SIZES) -> list[Figure]:
    """The built-in per-actor figures: published where a source gives one, else from the
    published line or, where no source covers the model, estimated."""
    published = {(f.model, f.compute_type, f.batch_size): f for f in PUBLISHED}
    rows = []
    for model in models:
        for compute_type in compute_types:
            memory = built_in(model, compute_type)
            # the estimate's source is its whole formula: too long for a table row
            source = ("estimated from architecture" if memory.source.startswith("estimated")
                      else memory.source)
            for batch in batch_sizes:
                rows.append(published.get((model, compute_type, batch)) or Figure(
                    model, compute_type, batch, memory.peak(batch), source))
    return rows
