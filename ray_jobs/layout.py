"""The job's layout: how many preprocessing and model actors it runs, what each holds, and
how big a block is, from the cluster's resources, the packing plan and the sessions."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from scribe.capacity import packing
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.errors import PlanError
from scribe.io.sessions import SessionRef
from scribe.pipeline.features import N_FRAMES

logger = logging.getLogger(__name__)


@dataclass
class JobLayout:
    """How many actors of each kind the job runs, and what each holds."""

    device: str
    model_actors: int
    model_gpus: float
    model_cpus: float
    preprocess_actors: int
    gpus: float
    model_batch_size: int = 16
    cpu_threads: int = 0
    reserved_gpus: float = 0.0
    source: str = "config"
    preprocess_cpus: float = 1.0
    # model replicas in each actor, each taking one call at a time (CPU: see plan_resources)
    model_workers: int = 1
    # the pools' limits as nodes join (ray_jobs.elastic); 0: no growth past the start
    max_model_actors: int = 0
    max_preprocess_actors: int = 0
    # a GPU layout on nodes that only declare GPUs; the engine computes on CPU
    simulated_gpus: bool = False

    @property
    def engine_device(self) -> str:
        """Where the model computes: the layout's device, or CPU under simulated GPUs."""
        return "cpu" if self.simulated_gpus else self.device

    @property
    def model_replicas(self) -> int:
        """Model calls the job runs at once: actors x workers."""
        return self.model_actors * self.model_workers


def plan_resources(options: TranscribeOptions, resources: ResourceConfig,
                   cluster: dict[str, float], *, reserved_gpus: float = 0.0,
                   saved: packing.PackingPlan | None = None,
                   gpus_here: Sequence[packing.GpuInfo] = (), cpu_nodes: int = 1) -> JobLayout:
    """Actor counts from the cluster's resources and the packing plan (the plan file, else
    a plan for the GPUs seen here, else the config), fields set in the config winning.
    ``reserved_gpus`` are held by others (Serve) and left to them; ``cpu_nodes`` is how
    many nodes hold the cluster's CPUs."""
    gpus = float(cluster.get("GPU", 0.0))
    cpus = float(cluster.get("CPU", 1.0))
    device = options.device if options.device != "auto" else ("cuda" if gpus else "cpu")
    shape = packing.job_shape(options.model_copy(update={"device": device}).resolved(),
                              resources, saved, gpus_here)
    if device == "cuda":
        if gpus - reserved_gpus <= 0:
            raise PlanError(f"device is cuda but the Ray cluster has no GPUs free "
                              f"({gpus:g} in all, {reserved_gpus:g} held by others)")
        gpu_fraction = 1.0 / shape.actors_per_gpu
        actors = resources.model_actors or packing.actors_on(gpus - reserved_gpus,
                                                             shape.actors_per_gpu)
        model_cpus, free_cpus = 0.0, cpus
    elif shape.model_cpus:
        actors = resources.model_actors or 1
        gpu_fraction, model_cpus = 0.0, shape.model_cpus
        free_cpus = cpus - actors * model_cpus
    else:
        # Model replicas of `threads` threads, one per core (packing.plan_cpu), share the
        # logical CPUs the preprocessing actors leave: preprocessing needs a few percent of
        # the model's CPU time, so it runs beside them. On one machine the replicas are
        # the workers of one actor: one process to start and one copy of the weights, and
        # Ray Data hands it a call per worker. On the quality benchmark's mixed corpus (2
        # cores, Ray started by the job) one actor of two workers took about 0.5 s and
        # 1.2-1.5 CPU-s less than two actors of one (medians of 7 and 4 rounds in turn;
        # the machine's noise is as large). Across nodes each replica is an actor of its
        # own, for Ray to place.
        threads = shape.cpu_threads or packing.CPU_THREADS_PER_ACTOR
        feeders = resources.preprocess_actors or max(1, int(cpus) // 8)
        replicas = max(1, int(cpus) // threads)
        actors = resources.model_actors or (1 if cpu_nodes <= 1 else replicas)
        # feeders hold at most half the CPUs (and half a node's), so the model actors
        # always fit beside them
        feeder_cpus = min(resources.preprocess_cpus, cpus / 2 / feeders,
                          cpus / max(1, cpu_nodes) / 2)
        model_cpus = _cpus_beside_feeders(cpus, max(1, cpu_nodes), actors, feeders,
                                          feeder_cpus)
        return JobLayout(device=device, model_actors=actors, model_gpus=0.0,
                         model_cpus=model_cpus, preprocess_actors=feeders, gpus=0.0,
                         model_batch_size=shape.batch_size, cpu_threads=threads,
                         reserved_gpus=reserved_gpus, source=shape.source,
                         preprocess_cpus=feeder_cpus,
                         model_workers=max(1, replicas // actors))
    preprocess = resources.preprocess_actors or max(1, int(free_cpus // resources.preprocess_cpus))
    return JobLayout(device=device, model_actors=actors, model_gpus=gpu_fraction,
                     model_cpus=model_cpus, preprocess_actors=preprocess,
                     gpus=actors * gpu_fraction if device == "cuda" else 0.0,
                     model_batch_size=shape.batch_size, cpu_threads=shape.cpu_threads,
                     reserved_gpus=reserved_gpus, source=shape.source,
                     preprocess_cpus=resources.preprocess_cpus)


def _cpus_beside_feeders(cpus: float, nodes: int, actors: int, feeders: int,
                        feeder_cpus: float) -> float:
    """CPUs per model actor such that each node (the cluster's CPUs split evenly) holds its
    share of the model actors and of the feeders. Split over the whole cluster instead,
    two 2-CPU nodes took two model actors of 0.75 each and no node had the feeder's whole
    CPU left: the job waited for its first session forever."""
    per_node = cpus / nodes
    return (per_node - math.ceil(feeders / nodes) * feeder_cpus) / math.ceil(actors / nodes)


def layout_options(options: TranscribeOptions, resources: ResourceConfig
                   ) -> TranscribeOptions:
    """The options the layout is planned for: under simulated GPUs, a GPU's."""
    if resources.simulated_gpus == "off":
        return options
    return options.model_copy(update={"device": "cuda"})


def simulated(layout: JobLayout, resources: ResourceConfig) -> JobLayout:
    """``layout`` marked as simulated GPUs, where asked: its actors compute on CPU, one
    thread each unless the config says (k actors per declared GPU share a node's cores)."""
    if resources.simulated_gpus == "off":
        return layout
    return replace(layout, simulated_gpus=True, cpu_threads=resources.cpu_threads or 1)


def fit_to_work(layout: JobLayout, sessions: Sequence[SessionRef],
                options: TranscribeOptions, resources: ResourceConfig) -> JobLayout:
    """``layout`` with no more model replicas (actors x workers) than ``sessions`` make
    model calls (:func:`model_replicas_for`), unless the config fixes the actors; the
    GPUs it holds follow."""
    if resources.model_actors:
        return layout
    chain = options.prompt_chain if options.condition_on_previous_text else 1
    replicas = model_replicas_for(sessions, layout.model_replicas, layout.model_batch_size,
                                  chain, options.chunk_length_s)
    if replicas == layout.model_replicas:
        return layout
    logger.info("%d of the planned %d model replicas: the sessions make about that many "
                "model calls", replicas, layout.model_replicas)
    actors = math.ceil(replicas / layout.model_workers)
    return replace(layout, model_actors=actors, model_workers=math.ceil(replicas / actors),
                   gpus=actors * layout.model_gpus if layout.device == "cuda" else 0.0)


def model_replicas_for(sessions: Sequence[SessionRef], planned: int, batch_size: int,
                       chain: int, chunk_length_s: float) -> int:
    """The model replicas a job starts when the config does not fix them: the plan's, or
    fewer when the sessions make fewer model calls of ``batch_size`` prompt chains (of
    ``chain`` chunks) than that, so that a small job loads no model that never runs (at
    the CPU default, batch 4, the example sessions are one call). Calls are estimated from
    the sessions' sizes (:attr:`SessionRef.estimated_duration_s`), a chunk per half of
    ``chunk_length_s``: VAD cuts chunks at pauses, so they are shorter than the longest,
    and the estimate errs toward more calls. A session of unknown size keeps the plan; an
    empty file makes no call (it is refused before decoding)."""
    if any(s.size is None for s in sessions):
        return planned
    chains = sum(math.ceil(math.ceil(s.estimated_duration_s / (chunk_length_s / 2)) / chain)
                 for s in sessions)
    return max(1, min(planned, math.ceil(chains / batch_size)))


def block_bytes(batch_size: int, n_mels: int) -> int:
    """Ray Data's block size target for the job: a model batch of 30 s chunks leaves the
    preprocessing actor as one block. At Ray's default (128 MiB) a 45-minute session's ~90
    chunks were one block, and one model actor took them all while the others idled. A
    block is cut once it exceeds the target, and sliced only past 1.5x it: hence 3/4."""
    return batch_size * n_mels * N_FRAMES * 4 * 3 // 4  # float32 features

