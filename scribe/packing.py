"""Fill every GPU: how many model actors go on one card, with which ``num_gpus`` fraction
and batch size, from the card's memory and a memory model of one actor.

One actor's peak memory is modelled as ``fixed + batch * per_item``: ``fixed`` is the
weights plus the CUDA context, ``per_item`` what each 30 s chunk of a batch adds at peak.
The numbers come from :func:`estimate` (the architecture, so planning works with no GPU at
hand) or from :func:`calibrate` (measured on the card), and the planner is the same
either way. Fractions are always ``1/k`` and the same on every GPU: Ray can leave actors
pending forever when fractions of different sizes fragment a card.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from scribe.config import ResourceConfig, TranscribeOptions
from scribe.errors import ScribeError

logger = logging.getLogger(__name__)

MiB = 1024**2
GiB = 1024**3
PLAN_ENV = "SCRIBE_PLAN"
DEFAULT_PLAN_PATH = Path("~/.cache/ray-scribe/plan.json")
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


class PlanError(ScribeError):
    """No plan fits: the model is too big for the card, or the plan file is unusable."""

    code = "plan_error"


@dataclass(frozen=True)
class Arch:
    """The shape of a Whisper model, from its model card (parameters) and config."""

    params: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    n_mels: int = 80


ARCHS: dict[str, Arch] = {
    "tiny": Arch(39_000_000, 384, 4, 4, 6),
    "base": Arch(74_000_000, 512, 6, 6, 8),
    "small": Arch(244_000_000, 768, 12, 12, 12),
    "medium": Arch(769_000_000, 1024, 24, 24, 16),
    "large-v1": Arch(1_550_000_000, 1280, 32, 32, 20),
    "large-v2": Arch(1_550_000_000, 1280, 32, 32, 20),
    "large-v3": Arch(1_550_000_000, 1280, 32, 32, 20, 128),
    "large-v3-turbo": Arch(809_000_000, 1280, 32, 4, 20, 128),
    "distil-large-v2": Arch(756_000_000, 1280, 32, 2, 20),
    "distil-large-v3": Arch(756_000_000, 1280, 32, 2, 20, 128),
    "distil-medium": Arch(394_000_000, 1024, 24, 2, 16),
    "distil-small": Arch(166_000_000, 768, 12, 2, 12),
}
COMMON_MODELS = ("tiny", "base", "small", "medium", "large-v2", "large-v3", "large-v3-turbo",
                 "distil-large-v3")
_ALIASES = {"large": "large-v3", "turbo": "large-v3-turbo", "whisper-large-v3-turbo":
            "large-v3-turbo"}


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


def canonical_model(model: str) -> str | None:
    """The :data:`ARCHS` key for a model name, repo id or converted directory, or None."""
    name = model.rstrip("/").rsplit("/", 1)[-1].lower().removesuffix("-ct2")
    name = name.replace("faster-distil-whisper-", "distil-").replace("distil-whisper-", "distil-")
    name = name.removeprefix("faster-whisper-").removeprefix("whisper-").removesuffix(".en")
    name = _ALIASES.get(name, name)
    return name if name in ARCHS else None


def arch_for(model: str) -> Arch:
    """The architecture of ``model``; :class:`PlanError` when it is not a known Whisper."""
    name = canonical_model(model)
    if name is None:
        raise PlanError(f"no built-in memory figures for model {model!r} (known: "
                        f"{', '.join(ARCHS)}); run `scribe calibrate` on a GPU to measure it")
    return ARCHS[name]


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


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML reports it."""

    index: int
    name: str
    total: int
    free: int


def headroom(total: int) -> int:
    """Memory left unplanned on a card: allocator fragmentation, stray processes."""
    return max(512 * MiB, total // 20)


@dataclass(frozen=True)
class GpuPlan:
    """Model actors on each GPU: ``actors_per_gpu`` actors of ``1/actors_per_gpu`` GPU."""

    model: str
    compute_type: str
    gpu_name: str
    gpu_total: int
    budget: int
    actors_per_gpu: int
    batch_size: int
    actor_peak: int
    source: str

    @property
    def fraction(self) -> float:
        return 1.0 / self.actors_per_gpu

    @property
    def expected_use(self) -> int:
        return self.actors_per_gpu * self.actor_peak

    @property
    def fill(self) -> float:
        return self.expected_use / self.gpu_total


def plan_gpu(memory: MemoryModel, *, model: str, compute_type: str, total: int,
             free: int | None = None, batch_size: int = 16, fixed_batch: bool = False,
             max_batch: int = 32, max_actors: int = 16, gpu_name: str = "") -> GpuPlan:
    """As many actors as fit at ``batch_size``; then, unless the batch is fixed, the
    batch grows (to ``max_batch``) into what is left, so the card is full.

    ``free`` is what other processes leave; the plan never counts on more.
    """
    budget = min(total, total if free is None else free) - headroom(total)
    batch = batch_size
    while memory.peak(batch) > budget and batch > 1 and not fixed_batch:
        batch //= 2
    if memory.peak(batch) > budget:
        raise PlanError(
            f"one {model} actor ({compute_type}, batch {batch}) needs "
            f"{_gib(memory.peak(batch))}, more than the {_gib(budget)} usable on this GPU; "
            "try --compute-type int8_float16 or a smaller batch")
    actors = max(1, min(max_actors, budget // memory.peak(batch)))
    if not fixed_batch:
        batch = _grown_batch(memory, budget // actors, batch, max_batch)
    return GpuPlan(model, compute_type, gpu_name, total, budget, actors, batch,
                   memory.peak(batch), memory.source)


def _grown_batch(memory: MemoryModel, per_actor: int, batch: int, max_batch: int) -> int:
    """The largest batch up to ``max_batch`` that fits ``per_actor`` bytes, a multiple of 4
    when above 4 (tidier numbers, nothing lost), never below ``batch``."""
    fits = min(max_batch, (per_actor - memory.fixed) // max(1, memory.per_item))
    if fits > 4:
        fits -= fits % 4
    return max(batch, fits)


def plan_for_gpus(memory: MemoryModel, gpus: Sequence[GpuInfo], **kwargs: Any) -> GpuPlan:
    """One plan for every GPU, sized for the smallest (the same fraction everywhere)."""
    if not gpus:
        raise PlanError("no GPU to plan for")
    smallest = min(gpus, key=lambda g: min(g.total, g.free))
    return plan_gpu(memory, total=smallest.total, free=smallest.free,
                    gpu_name=smallest.name, **kwargs)


@dataclass(frozen=True)
class CpuPlan:
    """Model actors on a machine with no GPU: cores shared by model and preprocessing."""

    cores: int
    actors: int
    threads_per_actor: int
    batch_size: int


def plan_cpu(cores: int, *, threads_per_actor: int | None = None,
             batch_size: int = 1) -> CpuPlan:
    """Model actors of ``threads_per_actor`` cores each (default up to 4, where CTranslate2's
    speed-up flattens) at batch 1: on CPU a bigger batch is slower per chunk (see
    :func:`job_shape`). Preprocessing actors share the cores: they need a few percent."""
    threads = threads_per_actor or min(4, max(1, cores))
    return CpuPlan(cores, max(1, cores // threads), threads, batch_size)


def cpu_cores() -> int:
    """Cores this process may use: affinity, then a cgroup quota (containers see the host's
    cores in ``os.cpu_count()`` but are throttled to their quota)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return cores
    return cores if quota == "max" else max(1, min(cores, math.ceil(int(quota) / int(period))))


@dataclass(frozen=True)
class Plan:
    """What ``scribe calibrate`` writes and the job and Serve read."""

    device: Literal["cuda", "cpu"]
    gpu: GpuPlan | None = None
    cpu: CpuPlan | None = None
    memory: MemoryModel | None = None
    created: str = ""


def plan_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The plan file: ``path``, else ``$SCRIBE_PLAN``, else ``~/.cache/ray-scribe/plan.json``."""
    return Path(path or os.environ.get(PLAN_ENV) or DEFAULT_PLAN_PATH).expanduser()


def write_plan(plan: Plan, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``plan`` as JSON (which is also YAML) and return where."""
    target = plan_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = dataclasses.asdict(dataclasses.replace(
        plan, created=plan.created or time.strftime("%Y-%m-%dT%H:%M:%S%z")))
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return target


def read_plan(path: str | os.PathLike[str] | None = None) -> Plan | None:
    """The plan in ``path`` (JSON or YAML); None when there is no file."""
    source = plan_path(path)
    if not source.is_file():
        return None
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        return Plan(device=data["device"],
                    gpu=GpuPlan(**data["gpu"]) if data.get("gpu") else None,
                    cpu=CpuPlan(**data["cpu"]) if data.get("cpu") else None,
                    memory=MemoryModel(**data["memory"]) if data.get("memory") else None,
                    created=str(data.get("created", "")))
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise PlanError(f"cannot read plan file {source}: {exc}") from exc


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def render_gpu_plan(plan: GpuPlan) -> str:
    """The plan as a table a person reads before renting cards."""
    head = ("model", "compute type", "per-actor peak", "actors/GPU", "num_gpus", "batch",
            "expected use")
    row = (plan.model, plan.compute_type, _gib(plan.actor_peak), str(plan.actors_per_gpu),
           f"1/{plan.actors_per_gpu} = {plan.fraction:.4g}", str(plan.batch_size),
           f"{_gib(plan.expected_use)} of {_gib(plan.gpu_total)} ({plan.fill:.0%})")
    widths = [max(len(a), len(b)) for a, b in zip(head, row, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
             for cells in (head, row)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    gpu = f"{plan.gpu_name} " if plan.gpu_name else ""
    lines += [f"GPU: {gpu}{_gib(plan.gpu_total)}, planned within {_gib(plan.budget)} "
              f"(headroom {_gib(plan.gpu_total - plan.budget)} for allocator caches)",
              f"source: {plan.source}"]
    return "\n".join(lines)


def render_cpu_plan(plan: CpuPlan) -> str:
    """The CPU plan in one paragraph."""
    return (f"no GPU: {plan.actors} CPU model actor(s) x {plan.threads_per_actor} thread(s) "
            f"on {plan.cores} core(s), batch {plan.batch_size}; preprocessing shares "
            "those cores (it needs a few percent of the model's CPU time)")


def render_table(rows: Sequence[Figure]) -> str:
    """The built-in figures, one line each, with where each came from."""
    lines = [f"{'model':<16}{'compute type':<14}{'batch':>6}{'peak':>12}  source"]
    lines += [f"{r.model:<16}{r.compute_type:<14}{r.batch_size:>6}{_gib(r.peak):>12}  {r.source}"
              for r in rows]
    return "\n".join(lines)


def read_gpus() -> list[GpuInfo]:
    """Every GPU NVML sees (``nvidia-ml-py``, the ``gpu`` extra); [] when none or no NVML."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        return [_gpu_info(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


def _gpu_info(pynvml: Any, index: int) -> GpuInfo:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    info = pynvml.nvmlDeviceGetMemoryInfo(handle)
    name = pynvml.nvmlDeviceGetName(handle)
    return GpuInfo(index, name.decode() if isinstance(name, bytes) else str(name),
                   int(info.total), int(info.free))


@contextmanager
def _peak_used(index: int, interval_s: float = 0.005) -> Iterator[Callable[[], int]]:
    """Sample the card's used memory in a thread; yields a reader of the peak so far.

    Sampling, not a final reading: CTranslate2's caching allocator hands memory back
    past its cache limit, so the peak can be gone by the time the call returns."""
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], int(pynvml.nvmlDeviceGetMemoryInfo(handle).used))
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0]
    finally:
        stop.set()
        thread.join()
        pynvml.nvmlShutdown()


def calibrate(options: TranscribeOptions, *, batch_size: int = 32,
              gpu: GpuInfo) -> MemoryModel:
    """Load one actor on ``gpu``, run a ``batch_size`` batch of synthetic audio, and
    measure what the load and the batch took. Needs the card to itself."""
    import numpy as np

    from scribe.features import log_mel
    from scribe.whisper import ChunkInput, WhisperEngine

    options = options.model_copy(update={"device": "cuda"}).resolved()
    before = gpu.total - gpu.free
    with _peak_used(gpu.index) as peak:
        engine = WhisperEngine(options)
        time.sleep(0.05)  # one more sample after the load, before the batch
        loaded = peak()
        rng = np.random.default_rng(0)
        # Noise with a speech-band tone: real-looking spectra, and decoding that tends to
        # run long, which is the peak worth measuring.
        t = np.arange(30 * 16_000, dtype=np.float32) / 16_000
        audio = (0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 220 * t))
        features = log_mel(audio.astype(np.float32), engine.n_mels)
        engine.transcribe([ChunkInput(features, 0.0, 30.0, group=str(i))
                           for i in range(batch_size)])
        top = peak()
    fixed = loaded - before
    per_item = max(0, top - loaded) // batch_size
    return MemoryModel(fixed, per_item, f"measured here: {gpu.name}, {options.compute_type}, "
                       f"batch {batch_size}, beam {options.beam_size}, "
                       f"{time.strftime('%Y-%m-%d')}")


# Binary throughout: a card sold as "24 GB" has 24 GiB (an RTX 3090 reports 24576 MiB).
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": MiB, "mb": MiB, "mib": MiB,
          "g": GiB, "gb": GiB, "gib": GiB, "t": 1024 * GiB, "tb": 1024 * GiB, "tib": 1024 * GiB}


def parse_size(text: str) -> int:
    """Bytes from ``24GiB``, ``24GB``, ``24G`` or ``8192MiB`` (all binary)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise PlanError(f"cannot read a size from {text!r} (e.g. 24GiB, 80GB, 8192MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def memory_for(options: TranscribeOptions, saved: Plan | None = None) -> MemoryModel:
    """The measured memory model from ``saved`` when it is for the same model and compute
    type, else the architecture's estimate."""
    if saved and saved.memory and saved.gpu and (saved.gpu.model, saved.gpu.compute_type) == (
            options.model, options.compute_type):
        return saved.memory
    return estimate_for(options)


@dataclass(frozen=True)
class JobShape:
    """What the batch job gives each model actor, and where that came from."""

    actors_per_gpu: int
    batch_size: int
    cpu_threads: int
    model_cpus: float
    source: str


def job_shape(options: TranscribeOptions, resources: ResourceConfig, saved: Plan | None,
              gpus: Sequence[GpuInfo] = ()) -> JobShape:
    """The model actors' shape for resolved ``options``: the plan file, else a plan for the
    GPUs seen here, else the config; any field set in the config or by a flag wins."""
    if options.device == "cuda":
        shape = _gpu_shape(options, resources, saved, gpus)
    elif saved and saved.cpu:
        # threads and batch from the plan; how many actors follows from the cluster's CPUs
        shape = JobShape(1, saved.cpu.batch_size, saved.cpu.threads_per_actor, 0.0,
                         f"plan file ({saved.created})")
    else:
        # Measured with CTranslate2 int8 on CPU (base, 2 cores, one job): batch 16 is
        # slower per chunk than batch 1 (1.19 s vs 0.72 s, 2 threads), and two 1-thread
        # actors side by side spent 33 s of model time where one 2-thread actor spent 18 s.
        # So: batch 1, actors of up to 4 threads; model_cpus 0 = decided with the cluster.
        shape = JobShape(1, 1, 0, 0.0, "CPU default: actors of up to 4 threads, batch 1")
    explicit = resources.model_fields_set
    return dataclasses.replace(
        shape,
        actors_per_gpu=resources.actors_per_gpu if "actors_per_gpu" in explicit
        else shape.actors_per_gpu,
        batch_size=resources.model_batch_size if "model_batch_size" in explicit
        else shape.batch_size,
        cpu_threads=resources.cpu_threads if "cpu_threads" in explicit else shape.cpu_threads)


def _gpu_shape(options: TranscribeOptions, resources: ResourceConfig, saved: Plan | None,
               gpus: Sequence[GpuInfo]) -> JobShape:
    if saved and saved.gpu and (saved.gpu.model, saved.gpu.compute_type) == (
            options.model, options.compute_type):
        return JobShape(saved.gpu.actors_per_gpu, saved.gpu.batch_size, 0, 0.0,
                        f"plan file ({saved.created}; {saved.gpu.source})")
    if saved and saved.gpu:
        logger.warning("plan file is for %s/%s, not %s/%s: planning afresh", saved.gpu.model,
                       saved.gpu.compute_type, options.model, options.compute_type)
    if gpus and options.model and canonical_model(options.model):
        plan = plan_for_gpus(memory_for(options, saved), gpus, model=options.model,
                             compute_type=str(options.compute_type),
                             batch_size=resources.model_batch_size,
                             fixed_batch="model_batch_size" in resources.model_fields_set)
        return JobShape(plan.actors_per_gpu, plan.batch_size, 0, 0.0,
                        f"planned for {plan.gpu_name} here; {plan.source}")
    return JobShape(resources.actors_per_gpu, resources.model_batch_size, 0, 0.0,
                    "config (no plan file, and no GPU here to plan from)")
