"""Fill every GPU: how many model actors go on one card, with which ``num_gpus`` fraction
and batch size, from the card's memory and a memory model of one actor
(:mod:`scribe.capacity.footprint`: published figures or the architecture's estimate), or
as ``scribe calibrate`` measured (:mod:`scribe.capacity.calibrate`: the fastest number of
actors within memory). Fractions are always ``1/k`` and the same on every GPU: Ray can
leave actors pending forever when fractions of different sizes fragment a card.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from scribe.architectures import canonical_name
from scribe.capacity.footprint import Figure, GiB, MemoryModel, MiB, built_in_for
from scribe.capacity.throughput import Measurement
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.errors import PlanError

logger = logging.getLogger(__name__)

PLAN_ENV = "SCRIBE_PLAN"
DEFAULT_PLAN_PATH = Path("~/.cache/ray-scribe/plan.json")
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
    throughput: str = ("unmeasured: actors chosen by memory alone (`scribe calibrate` on the "
                       "card measures chunks/s for 1-4 actors)")

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
    return GpuPlan(model=model, compute_type=compute_type, gpu_name=gpu_name, gpu_total=total,
                   budget=budget, actors_per_gpu=actors, batch_size=batch,
                   actor_peak=memory.peak(batch), source=memory.source)


def _grown_batch(memory: MemoryModel, per_actor: int, batch: int, max_batch: int) -> int:
    """The largest batch up to ``max_batch`` that fits ``per_actor`` bytes, a multiple of 4
    when above 4 (tidier numbers, nothing lost), never below ``batch``."""
    fits = min(max_batch, (per_actor - memory.fixed) // max(1, memory.per_item))
    if fits > 4:
        fits -= fits % 4
    return max(batch, fits)


def actors_on(gpus: float, actors_per_gpu: int) -> int:
    """How many ``1/actors_per_gpu`` actors ``gpus`` (whole or not) hold."""
    # 1e-6: 3 x (1/3) must count as one whole GPU, not 0.999...
    return int(gpus * actors_per_gpu + 1e-6)


def plan_for_gpus(memory: MemoryModel, gpus: Sequence[GpuInfo], **kwargs: Any) -> GpuPlan:
    """One plan for every GPU, sized for the smallest (the same fraction everywhere)."""
    if not gpus:
        raise PlanError("no GPU to plan for")
    smallest = min(gpus, key=lambda g: min(g.total, g.free))
    return plan_gpu(memory, total=smallest.total, free=smallest.free,
                    gpu_name=smallest.name, **kwargs)


# Batch 4 on CPU, as measured with the real tiny.en (int8, beam 5, 2 cores). ``scribe
# calibrate`` (one-thread actors side by side, chunks of a 12-minute session, 2026-12-06):
# 1.57 chunks/s at batch 1, 1.88 at 2, 1.91 at 4, 1.76 at 8, 1.75 at 16. In the job (the
# quality benchmark's mixed corpus, Ray running, the three batches in turn four times):
# 42.5, 41.1, 42.3, 39.2 s at batch 1; 38.9, 41.2, 37.2, 36.4 at 2; 40.3, 37.1, 35.2, 35.3
# at 4, with the same text: a call of four prompt chains decodes them side by side, and
# the job's tasks are a quarter as many, each gap between them (~0.2 s) paid a quarter as
# often. Before the engine's later changes the same two measurements had put batch 1
# first (1.92 chunks/s against 1.63 at 4; 35.0 and 32.2 s against 40.7 s in the job), so
# the default follows what is measured now, and ``scribe calibrate`` measures the machine
# and engine at hand and writes its plan file. An actor of several threads gains from
# batching too (the 12-minute session on one 2-thread actor: 80.6 s at batch 1,
# 50.4 s at batch 8).
CPU_BATCH_SIZE = 4
# One thread per model actor, one actor per core: ``scribe calibrate`` with the real tiny.en
# on 2 cores measured 2 actors x 1 thread at 1.83 chunks/s against 1 x 2 threads at 1.61
# (batch 8), and in the job, where preprocessing and Ray's own processes share the cores, 60
# short clips took 47 s against 56 s: a thread another process preempts holds up its
# partner in a 2-thread actor, and a 1-thread actor only loses its own share.
CPU_THREADS_PER_ACTOR = 1


@dataclass(frozen=True)
class CpuPlan:
    """Model replicas on a machine with no GPU: cores shared by model and preprocessing.
    ``actors`` is the replica count (the plan file's key; the job runs them as the
    workers of one actor per machine, :func:`ray_jobs.layout.plan_resources`), each of
    ``threads_per_actor`` threads. ``measured`` is the table it was chosen from (empty:
    the built-in default)."""

    cores: int
    actors: int
    threads_per_actor: int
    batch_size: int
    measured: list[dict[str, float]] = dataclasses.field(default_factory=list)


def plan_cpu(cores: int, *, threads_per_actor: int | None = None,
             batch_size: int | None = None) -> CpuPlan:
    """Model actors of ``threads_per_actor`` cores each (default 1: see
    :data:`CPU_THREADS_PER_ACTOR`) at ``batch_size`` (default :data:`CPU_BATCH_SIZE`).
    Preprocessing actors share the cores, at a lower priority (see ``ray_jobs.stages``)."""
    threads = threads_per_actor or CPU_THREADS_PER_ACTOR
    return CpuPlan(cores=cores, actors=max(1, cores // threads), threads_per_actor=threads,
                   batch_size=batch_size or CPU_BATCH_SIZE)


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
class PackingPlan:
    """What ``scribe calibrate`` writes and the job and Serve read."""

    device: Literal["cuda", "cpu"]
    gpu: GpuPlan | None = None
    cpu: CpuPlan | None = None
    memory: MemoryModel | None = None
    created: str = ""
    throughput: tuple[Measurement, ...] = ()  # what calibrate measured, every run


def plan_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The plan file: ``path``, else ``$SCRIBE_PLAN``, else ``~/.cache/ray-scribe/plan.json``."""
    return Path(path or os.environ.get(PLAN_ENV) or DEFAULT_PLAN_PATH).expanduser()


def write_plan(plan: PackingPlan, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``plan`` as JSON (which is also YAML) and return where."""
    target = plan_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = dataclasses.asdict(dataclasses.replace(
        plan, created=plan.created or time.strftime("%Y-%m-%dT%H:%M:%S%z")))
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return target


def read_plan(path: str | os.PathLike[str] | None = None) -> PackingPlan | None:
    """The plan in ``path`` (JSON or YAML); None when there is no file."""
    source = plan_path(path)
    if not source.is_file():
        return None
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        return PackingPlan(device=data["device"],
                           gpu=GpuPlan(**data["gpu"]) if data.get("gpu") else None,
                           cpu=CpuPlan(**data["cpu"]) if data.get("cpu") else None,
                           memory=MemoryModel(**data["memory"]) if data.get("memory") else None,
                           created=str(data.get("created", "")),
                           throughput=tuple(Measurement(**m)
                                            for m in data.get("throughput") or ()))
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise PlanError(f"cannot read plan file {source}: {exc}") from exc


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def gpu_plan_text(plan: GpuPlan) -> str:
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
              f"source: {plan.source}", f"throughput: {plan.throughput}"]
    return "\n".join(lines)


def cpu_plan_text(plan: CpuPlan) -> str:
    """The CPU plan in one paragraph."""
    source = "measured here" if plan.measured else "the built-in default"
    return (f"no GPU: {plan.actors} CPU model replica(s) x {plan.threads_per_actor} "
            f"thread(s) on {plan.cores} core(s), batch {plan.batch_size} ({source}); one "
            "model actor per machine holds them (an actor each across nodes); preprocessing "
            "shares those cores at a lower priority (it needs a few percent of the model's "
            "CPU time)")


def memory_table_text(rows: Sequence[Figure]) -> str:
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
    return GpuInfo(index=index, name=name.decode() if isinstance(name, bytes) else str(name),
                   total=int(info.total), free=int(info.free))


# Binary throughout: a card sold as "24 GB" has 24 GiB (an RTX 3090 reports 24576 MiB).
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": MiB, "mb": MiB, "mib": MiB,
          "g": GiB, "gb": GiB, "gib": GiB, "t": 1024 * GiB, "tb": 1024 * GiB, "tib": 1024 * GiB}


def parse_size(text: str) -> int:
    """Bytes from ``24GiB``, ``24GB``, ``24G`` or ``8192MiB`` (all binary)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise PlanError(f"cannot read a size from {text!r} (e.g. 24GiB, 80GB, 8192MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def memory_for(options: TranscribeOptions, saved: PackingPlan | None = None) -> MemoryModel:
    """The measured memory model from ``saved`` when it is for the same model and compute
    type, else the built-in one (published figures, else the architecture's estimate)."""
    if saved and saved.memory and saved.gpu and (saved.gpu.model, saved.gpu.compute_type) == (
            options.model, options.compute_type):
        return saved.memory
    return built_in_for(options)


@dataclass(frozen=True)
class JobShape:
    """What the batch job gives each model actor, and where that came from."""

    actors_per_gpu: int
    batch_size: int
    cpu_threads: int
    model_cpus: float
    source: str


def job_shape(options: TranscribeOptions, resources: ResourceConfig, saved: PackingPlan | None,
              gpus: Sequence[GpuInfo] = ()) -> JobShape:
    """The model actors' shape for resolved ``options``: the plan file, else a plan for the
    GPUs seen here, else the config; any field set in the config or by a flag wins."""
    if options.device == "cuda":
        shape = _gpu_shape(options, resources, saved, gpus)
    elif saved and saved.cpu:
        # threads and batch from the plan; how many actors follows from the cluster's CPUs
        shape = JobShape(actors_per_gpu=1, batch_size=saved.cpu.batch_size,
                         cpu_threads=saved.cpu.threads_per_actor, model_cpus=0.0,
                         source=f"plan file ({saved.created})")
    else:
        # CPU_THREADS_PER_ACTOR and CPU_BATCH_SIZE, as measured; model_cpus 0 = decided
        # with the cluster
        threads = resources.cpu_threads or CPU_THREADS_PER_ACTOR
        batch = CPU_BATCH_SIZE
        shape = JobShape(actors_per_gpu=1, batch_size=batch, cpu_threads=threads,
                         model_cpus=0.0, source=f"CPU default: replicas of {threads} "
                         f"thread(s), batch {batch}")
    explicit = resources.model_fields_set
    return dataclasses.replace(
        shape,
        actors_per_gpu=resources.actors_per_gpu if "actors_per_gpu" in explicit
        else shape.actors_per_gpu,
        batch_size=resources.model_batch_size if "model_batch_size" in explicit
        else shape.batch_size,
        cpu_threads=resources.cpu_threads if "cpu_threads" in explicit else shape.cpu_threads)


def _gpu_shape(options: TranscribeOptions, resources: ResourceConfig, saved: PackingPlan | None,
               gpus: Sequence[GpuInfo]) -> JobShape:
    if saved and saved.gpu and (saved.gpu.model, saved.gpu.compute_type) == (
            options.model, options.compute_type):
        return _gpu_job_shape(saved.gpu, f"plan file ({saved.created}; {saved.gpu.source})")
    if saved and saved.gpu:
        logger.warning("plan file is for %s/%s, not %s/%s: planning afresh", saved.gpu.model,
                       saved.gpu.compute_type, options.model, options.compute_type)
    if gpus and options.model and canonical_name(options.model):
        plan = plan_for_gpus(memory_for(options, saved), gpus, model=options.model,
                             compute_type=str(options.compute_type),
                             batch_size=resources.model_batch_size,
                             fixed_batch="model_batch_size" in resources.model_fields_set)
        return _gpu_job_shape(plan, f"planned for {plan.gpu_name} here; {plan.source}")
    return JobShape(actors_per_gpu=resources.actors_per_gpu,
                    batch_size=resources.model_batch_size, cpu_threads=0, model_cpus=0.0,
                    source="config (no plan file, and no GPU here to plan from)")


def _gpu_job_shape(plan: GpuPlan, source: str) -> JobShape:
    return JobShape(actors_per_gpu=plan.actors_per_gpu, batch_size=plan.batch_size,
                    cpu_threads=0, model_cpus=0.0, source=source)
