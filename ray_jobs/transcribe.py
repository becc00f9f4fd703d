"""``python -m ray_jobs.transcribe --input PREFIX --output PREFIX``: every session under a
prefix to transcripts, on Ray Data.

Sessions stream through CPU preprocessing actors into model actors (a fraction of a GPU
each); the driver assembles each session as soon as its last chunk comes back and writes
it, so a job stopped after an hour has kept an hour of work. Under ``ray job submit`` it
joins the cluster; alone it starts a local Ray.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ray_jobs import rows
from ray_jobs.metrics import JobMetrics
from ray_jobs.rows import Row
from scribe import config as cfg
from scribe.capacity import doctor, packing
from scribe.config import JobConfig, ResourceConfig, TranscribeOptions
from scribe.errors import PlanError, ScribeError, describe
from scribe.io import outputs, storage
from scribe.io.sessions import SessionRef, list_sessions
from scribe.io.summary import summarize, summary_text
from scribe.pipeline.features import N_FRAMES
from scribe.pipeline.languages import check_request, check_sessions
from scribe.pipeline.speakers.diarize import SpeakerRequest
from scribe.pipeline.transcript import error_record, ok_record
from scribe.pipeline.whisper import ChunkOutput, model_n_mels, resolve_model_path

logger = logging.getLogger("ray_jobs.transcribe")


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

    @property
    def model_replicas(self) -> int:
        """Model calls the job runs at once: actors x workers."""
        return self.model_actors * self.model_workers


@dataclass
class _Pending:
    base: dict[str, Any]
    expected: int | None = None  # known from the session's last block
    # by chunk index: a retried task may deliver a chunk twice; it must count once
    chunks: dict[int, ChunkOutput] = field(default_factory=dict)
    features_s: dict[int, float] = field(default_factory=dict)


class SessionCollector:
    """Gathers chunk results per session; yields a record when a session is complete."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._failed: set[str] = set()
        self.batch_sizes: list[int] = []
        self.batch_sessions: list[int] = []
        self.actors: set[str] = set()

    def add(self, row: Row) -> dict[str, Any] | None:
        """Take one row (:mod:`ray_jobs.rows`); a record when it completes its session."""
        base = row["session"]
        sid = base["session_id"]
        if sid in self._failed or row["status"] == "filler":
            return None
        if row["status"] != "ok":
            # a session can fail after some of its chunks left: drop them, report once
            self._failed.add(sid)
            self._pending.pop(sid, None)
            return error_record(base, row["error"])
        if row["n_chunks"] == 0:
            return ok_record(base, [], _speaker_request(base))
        pending = self._pending.setdefault(sid, _Pending(base=base))
        if row["n_chunks"] != rows.COUNT_UNKNOWN:  # the last block's: the whole analysis
            pending.expected, pending.base = row["n_chunks"], base
        self.batch_sizes.append(row["result"]["batch_size"])
        self.batch_sessions.append(row["result"]["batch_sessions"])
        self.actors.add(row["result"]["actor"])
        output = rows.model_output(row)
        pending.features_s[output.plan.index] = row["chunk"]["features_s"]
        pending.chunks[output.plan.index] = output
        if pending.expected is None or len(pending.chunks) < pending.expected:
            return None
        del self._pending[sid]
        pending.base["timings"]["features"] = sum(pending.features_s.values())
        return ok_record(pending.base, list(pending.chunks.values()),
                         _speaker_request(pending.base))

    def incomplete(self) -> list[dict[str, Any]]:
        """Error records for sessions whose chunks did not all come back (none should)."""
        return [error_record(p.base, f"incomplete: {len(p.chunks)} of "
                             + ("an unknown number of" if p.expected is None
                                else f"{p.expected}")
                             + " chunks came back from the model stage")
                for p in self._pending.values()]


def _speaker_request(base: dict[str, Any]) -> SpeakerRequest | None:
    """The session's speaker labelling, as its preprocessing resolved it; None when off."""
    if base.get("speakers", "off") == "off":
        return None
    return SpeakerRequest(num_speakers=base.get("num_speakers"))


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
        # feeders hold at most half the CPUs, so the model actors always fit beside them
        feeder_cpus = min(resources.preprocess_cpus, cpus / 2 / feeders)
        model_cpus = (cpus - feeders * feeder_cpus) / actors
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


def _preflight(config: JobConfig) -> None:
    """Fail in a second, before any audio is read: the output, Ray, and a model given as a
    path. What depends on the nodes (GPUs, CUDA libraries, the model on each disk) is
    checked on them by :func:`_preflight_nodes` once Ray is up."""
    model = config.transcribe.model or ""
    check_request(model, language=config.transcribe.language, task=config.transcribe.task)
    results = [doctor.check_output(config.output), doctor.check_ray()]
    if model.startswith(("/", ".", "~")):
        results.append(doctor.check_model(os.path.expanduser(model)))
    _raise_failures(results)


def _raise_failures(results: list[doctor.CheckResult], where: str = "") -> None:
    for result in results:
        if result.status != "ok":
            logger.log(logging.ERROR if result.status == "fail" else logging.WARNING,
                       "preflight%s: %s", where, result.line())
    failed = doctor.failures(results)
    if failed:
        raise ScribeError(f"preflight{where}: " + "; ".join(r.line() for r in failed))


def _preflight_nodes(options: TranscribeOptions, device: str) -> None:
    """The node checks (GPU, CUDA libraries, model on disk) on every node that will run
    model actors, in a task that holds no GPU, so a busy card does not delay it."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    kind = "GPU" if device == "cuda" else "CPU"
    nodes = [n for n in ray.nodes()  # type: ignore[no-untyped-call]
             if n["Alive"] and n["Resources"].get(kind, 0) > 0]
    if [n["NodeID"] for n in nodes] == [ray.get_runtime_context().get_node_id()]:
        # One machine, the driver's own: check here. A task's worker took 3.9 s of a
        # 14.5 s job to start (benchmarks/quality.py's profile, 2 cores).
        _raise_failures(doctor.node_checks(device, str(options.model)))  # type: ignore[arg-type]
        return
    check = ray.remote(num_cpus=0)(_node_checks)
    pending = {n["NodeManagerAddress"]: check.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            device, str(options.model)) for n in nodes}
    for address, ref in pending.items():
        rows: list[dict[str, str]] = ray.get(ref, timeout=60)
        _raise_failures(doctor.from_dicts(rows), f" on {address}")


def _node_checks(device: str, model: str) -> list[dict[str, str]]:
    # CUDA_VISIBLE_DEVICES is empty in a task without GPUs: NVML still sees the cards.
    return [r.to_dict() for r in doctor.node_checks(device, model, count_devices=False)]  # type: ignore[arg-type]


def _held_gpus() -> float:
    """GPUs other work (Serve replicas, other jobs) holds as the job starts."""
    import ray

    total = float(ray.cluster_resources().get("GPU", 0.0))  # type: ignore[no-untyped-call]
    free = float(ray.available_resources().get("GPU", 0.0))  # type: ignore[no-untyped-call]
    return max(0.0, total - free)


def _cpu_nodes() -> int:
    """Live nodes with CPUs in the cluster."""
    import ray

    nodes = ray.nodes()  # type: ignore[no-untyped-call]
    return len([n for n in nodes if n["Alive"] and n["Resources"].get("CPU", 0) > 0])


def _leave_to_others(reserved_gpus: float) -> None:
    """Keep Ray Data's resource budget off the GPUs others hold, so it does not plan for
    (and wait on) them."""
    if not reserved_gpus:
        return
    from ray.data import DataContext, ExecutionResources

    with warnings.catch_warnings():
        # Deprecated in Ray 2.60 in favour of label selectors, which need labelled nodes;
        # this works on any cluster until its removal (2027).
        warnings.simplefilter("ignore")
        DataContext.get_current().execution_options.exclude_resources = ExecutionResources(
            gpu=reserved_gpus)


def _pipeline(sessions: list[SessionRef], options: TranscribeOptions,
              resources: ResourceConfig, layout: JobLayout, n_mels: int) -> Iterator[Row]:
    import ray.data
    from ray.data import ActorPoolStrategy

    from ray_jobs.stages import Preprocessor, Transcriber

    items = [s.to_dict() for s in sessions]
    # a model call's rows: one batch, or one batch of prompt chains side by side, in
    # blocks of whole chains (padded), so that no call cuts a chain
    chain = options.prompt_chain if options.condition_on_previous_text else 1
    call_rows = layout.model_batch_size * chain
    context = ray.data.DataContext.get_current()
    default_block_size = context.target_max_block_size
    # the dataset keeps the context it was created with (Ray Data's documented behaviour)
    context.target_max_block_size = block_bytes(call_rows, n_mels)
    try:
        ds: ray.data.Dataset = ray.data.from_items(items, override_num_blocks=len(items))
    finally:
        context.target_max_block_size = default_block_size
    # On CPU the model replicas wait for the first blocks with their cores idle: two
    # threads search a session's VAD windows meanwhile (the quality benchmark's mixed
    # corpus, Ray started by the job: the first model call began ~0.6 s sooner, the job
    # took 0.5 s less, median of 6 rounds in turn). On a GPU node every preprocessing
    # actor has a core of its own already.
    vad_threads = 2 if layout.device == "cpu" else 1
    ds = ds.map_batches(
        Preprocessor, batch_size=1, batch_format="pyarrow",
        fn_constructor_kwargs={"options": options, "n_mels": n_mels, "model": options.model,
                               "rows_per_block": call_rows, "align": chain,
                               "vad_threads": vad_threads},
        compute=ActorPoolStrategy(min_size=1, max_size=layout.preprocess_actors),
        num_cpus=layout.preprocess_cpus,
    )
    model_resources: dict[str, Any] = (
        {"num_gpus": layout.model_gpus} if layout.device == "cuda"
        else {"num_cpus": layout.model_cpus})
    # On CPU a block is seconds of work: a worker is given the next block only once it is
    # free, so the last blocks go to whichever frees first. Ray Data's default queues a
    # second block behind the running one; on the quality benchmark's mixed corpus that
    # left one of two actors idle for the last 7-8 s, against 4 s this way.
    workers = layout.model_workers
    in_flight = workers if layout.device == "cpu" else None  # None: Ray Data's default
    # an actor of several workers runs their calls at once, each in a thread of its own
    concurrent: dict[str, Any] = ({"max_concurrent_calls_per_actor": workers,
                                   "enable_true_multi_threading": True} if workers > 1 else {})
    ds = ds.map_batches(
        Transcriber, batch_size=call_rows, batch_format="pyarrow",
        fn_constructor_kwargs={"options": options, "cpu_threads": layout.cpu_threads,
                               "batch_size": layout.model_batch_size, "workers": workers},
        compute=ActorPoolStrategy(size=layout.model_actors,
                                  max_tasks_in_flight_per_actor=in_flight, **concurrent),
        **model_resources,
    )
    # whole blocks as they come, so a session is written as soon as its last chunk is back:
    # with Ray Data's default prefetch (one batch), a block was handed over only once the
    # next was ready, a model task later (on the quality benchmark's mixed corpus every
    # session came at the end, the first 12 s after its block was done)
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
        yield from rows.decode(table)
    # where the time went per operator (benchmarks/quality.py prints it); built only when
    # it will be logged: it asks Ray Data's stats actor
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("Ray Data stats:\n%s", ds.stats())


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


def run_job(config: JobConfig) -> dict[str, Any]:
    """Transcribe every session of ``config.input`` not yet done; returns the summary."""
    import ray

    start = time.perf_counter()
    _preflight(config)
    sessions = list_sessions(config.input)
    if config.limit:
        sessions = sessions[: config.limit]
    check_sessions(config.transcribe, [(s.session_id, s.language) for s in sessions])
    storage.clean_stale_temps(config.output)
    done = {} if config.overwrite else outputs.finished_sessions(
        config.output, [s.session_id for s in sessions])
    todo = _longest_first([s for s in sessions if s.session_id not in done])
    logger.info("%d sessions, %d already done, %d to transcribe",
                len(sessions), len(done), len(todo))
    connect_ray(config)
    reserved = _held_gpus()
    layout = plan_resources(config.transcribe, config.resources,
                          ray.cluster_resources(),  # type: ignore[no-untyped-call]
                          reserved_gpus=reserved, saved=packing.read_plan(),
                          gpus_here=packing.read_gpus(), cpu_nodes=_cpu_nodes())
    _leave_to_others(reserved)
    options = config.transcribe.model_copy(update={"device": layout.device}).resolved()
    assert options.model is not None
    _preflight_nodes(options, layout.device)
    n_mels = model_n_mels(resolve_model_path(options.model))
    layout = fit_to_work(layout, todo, options, config.resources)
    logger.info("plan: %s", layout)
    with JobMetrics(start, layout.gpus, config.gpu_hourly_usd) as metrics:
        records, collector = _run(todo, options, config, layout, n_mels, metrics)
    wall = time.perf_counter() - start
    summary = summarize(
        records, wall_s=wall, gpus=layout.gpus, gpu_hourly_usd=config.gpu_hourly_usd,
        skipped=len(done), extra={
            "model": options.model, "device": layout.device, "plan": layout.__dict__,
            "mean_batch_size": _mean(collector.batch_sizes),
            "max_batch_sessions": max(collector.batch_sessions, default=0),
            "model_actors_used": len(collector.actors),
        })
    storage.write_atomic(storage.join(config.output, outputs.SUMMARY_FILE),
                         json.dumps(summary, indent=2))
    return summary


def connect_ray(config: JobConfig) -> None:
    """Join the cluster Ray finds (``RAY_ADDRESS``, ``ray start``'s record), or start a
    Ray here, with the dashboard only if asked; nothing when this process is connected."""
    import ray

    if not ray.is_initialized():
        ray.init(address=doctor.init_address(), logging_level=logging.WARNING,
                 include_dashboard=config.dashboard)


def _longest_first(sessions: list[SessionRef]) -> list[SessionRef]:
    """Longest recordings first (:attr:`SessionRef.estimated_duration_s`): a long session's
    decode and VAD run before any of its chunks leave, so started last it starves the model
    actor at the end (the benchmark's profile showed a 23 s gap); started first, it
    overlaps the model actors' start-up, and short sessions fill the end."""
    return sorted(sessions, key=lambda s: -s.estimated_duration_s)


def _run(todo: list[SessionRef], options: TranscribeOptions, config: JobConfig,
         layout: JobLayout, n_mels: int, metrics: JobMetrics
         ) -> tuple[list[dict[str, Any]], SessionCollector]:
    """Stream rows, write each finished session in the background, return all records."""
    collector = SessionCollector()
    records: list[dict[str, Any]] = []
    if not todo:
        return records, collector
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as writers:
        futures = []
        for row in _pipeline(todo, options, config.resources, layout, n_mels):
            record = collector.add(row)
            if record is not None:
                records.append(record)
                futures.append(writers.submit(_write, config.output, record, metrics))
        for record in collector.incomplete():
            records.append(record)
            futures.append(writers.submit(_write, config.output, record, metrics))
        for future in futures:
            future.result()
    return records, collector


def _write(output: str, record: dict[str, Any], metrics: JobMetrics) -> None:
    try:
        outputs.write_session(output, record)
    except Exception as exc:
        logger.error("could not write %s: %s", record["session_id"], describe(exc))
        record.update(status="error", error=f"writing outputs failed: {describe(exc)}")
    metrics.session(record)


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def parse_args(argv: list[str] | None) -> JobConfig:
    """The job's config from ``--config FILE`` (YAML) overridden by flags."""
    parser = argparse.ArgumentParser(
        prog="python -m ray_jobs.transcribe",
        description="Transcribe every session under --input into --output.")
    parser.add_argument("--config", help="YAML file with job, transcribe and resources keys")
    cfg.add_arguments(parser, JobConfig)
    cfg.add_arguments(parser.add_argument_group("transcription"), TranscribeOptions)
    cfg.add_arguments(parser.add_argument_group("resources"), ResourceConfig)
    args = vars(parser.parse_args(argv))
    config_file = args.pop("config")
    base = cfg.load_yaml(config_file) if config_file else {}
    if "input" not in args and "input" not in base or "output" not in args and "output" not in base:
        parser.error("--input and --output are required (as flags or in --config)")
    config: JobConfig = cfg.build(JobConfig, base, args)
    return config


def main(argv: list[str] | None = None) -> int:
    """CLI entry: exit 0 when every session is ok, 1 when any failed, 2 on bad usage."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = parse_args(argv)
        summary = run_job(config)
    except ScribeError as exc:
        logger.error("%s", describe(exc))
        return 2
    sys.stdout.write(summary_text(summary) + "\n")
    return 1 if summary["sessions"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
