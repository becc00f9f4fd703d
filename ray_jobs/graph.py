"""The job's Ray Data graph: sessions through the preprocessing actors into the model
actors, rows back to the driver block by block as they finish.

Each stage is declared once with every argument ``map_batches`` takes for it (as Ray's LLM
batch stages are), so the graph is a loop over them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ray_jobs import elastic, recovery, rows
from ray_jobs.layout import JobLayout, block_bytes
from ray_jobs.recovery import StallWatch
from ray_jobs.rows import Row
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.io.sessions import SessionRef

if TYPE_CHECKING:
    from ray_jobs.stages import StageClasses

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageSpec:
    """One ``map_batches`` step: the stage's class, its constructor's arguments, and the
    rest of what Ray Data takes for it (batch size, actor pool, resources)."""

    fn: type
    fn_constructor_kwargs: dict[str, Any]
    map_batches_kwargs: dict[str, Any] = field(default_factory=dict)


def call_rows(options: TranscribeOptions, layout: JobLayout) -> int:
    """A model call's rows: one batch, or one batch of prompt chains side by side, in
    blocks of whole chains (padded), so that no call cuts a chain."""
    return layout.model_batch_size * _chain(options)


def _chain(options: TranscribeOptions) -> int:
    return options.prompt_chain if options.condition_on_previous_text else 1


def preprocess_stage(options: TranscribeOptions, layout: JobLayout, n_mels: int,
                     fn: type | None = None) -> StageSpec:
    """The CPU stage: a session per call, its chunks out in blocks of a model call.
    ``fn``: the stage's class (default :class:`ray_jobs.stages.Preprocessor`)."""
    from ray.data import ActorPoolStrategy

    from ray_jobs.stages import Preprocessor

    # On CPU the model replicas wait for the first blocks with their cores idle: two
    # threads search a session's VAD windows meanwhile (the quality benchmark's mixed
    # corpus, Ray started by the job: the first model call began ~0.6 s sooner, the job
    # took 0.5 s less, median of 6 rounds in turn). On a GPU node every preprocessing
    # actor has a core of its own already (simulated GPUs: a core per model actor).
    vad_threads = 2 if layout.engine_device == "cpu" and not layout.simulated_gpus else 1
    return StageSpec(
        fn or Preprocessor,
        {"options": options, "n_mels": n_mels, "model": options.model,
         "rows_per_block": call_rows(options, layout), "align": _chain(options),
         "vad_threads": vad_threads},
        {"batch_size": 1,
         # grows onto nodes that join, up to the elastic limit (ray_jobs.elastic)
         "compute": ActorPoolStrategy(min_size=1, max_size=max(
             layout.preprocess_actors, layout.max_preprocess_actors)),
         "num_cpus": layout.preprocess_cpus})


def model_stage(options: TranscribeOptions, layout: JobLayout, fn: type | None = None
                ) -> StageSpec:
    """The model stage: a model call's rows per call, on the layout's model actors.
    ``fn``: the stage's class (default :class:`ray_jobs.stages.Transcriber`)."""
    from ray.data import ActorPoolStrategy

    from ray_jobs.stages import Transcriber

    model_resources: dict[str, Any] = (
        {"num_gpus": layout.model_gpus} if layout.device == "cuda"
        else {"num_cpus": layout.model_cpus})
    # On CPU a block is seconds of work: a worker is given the next block only once it is
    # free, so the last blocks go to whichever frees first. Ray Data's default queues a
    # second block behind the running one; on the quality benchmark's mixed corpus that
    # left one of two actors idle for the last 7-8 s, against 4 s this way. On GPUs, real
    # or simulated, the queued block is fetched while the running one computes: without
    # it, each call on a simulated node waited for its block to come from another node
    # (the scale benchmark's 2 and 4 nodes: 0.89x and 0.89x linear, against 1.00x and
    # 0.98x with it).
    workers = layout.model_workers
    in_flight = workers if layout.device == "cpu" else None  # None: Ray Data's default
    # an actor of several workers runs their calls at once, each in a thread of its own
    concurrent: dict[str, Any] = ({"max_concurrent_calls_per_actor": workers,
                                   "enable_true_multi_threading": True} if workers > 1 else {})
    return StageSpec(
        fn or Transcriber,
        {"options": options, "cpu_threads": layout.cpu_threads,
         "batch_size": layout.model_batch_size, "workers": workers},
        {"batch_size": call_rows(options, layout),
         # starts with the actors planned for the cluster as it is, grows onto nodes that
         # join (ray_jobs.elastic)
         "compute": ActorPoolStrategy(
             min_size=layout.model_actors,
             max_size=max(layout.model_actors, layout.max_model_actors),
             max_tasks_in_flight_per_actor=in_flight, **concurrent),
         **model_resources})


def job_rows(sessions: list[SessionRef], options: TranscribeOptions,
             resources: ResourceConfig, layout: JobLayout, n_mels: int,
             stages: StageClasses | None = None, watch: StallWatch | None = None
             ) -> Iterator[Row]:
    """Run ``sessions`` through the job's stages; yield the rows as their blocks finish.
    ``stages``: the stages' classes (default :data:`ray_jobs.stages.JOB_STAGES`);
    ``watch``: told of every block, checked at every step of Ray Data's scheduling loop
    (:mod:`ray_jobs.recovery`)."""
    import ray.data

    items = [s.to_dict() for s in sessions]
    context = ray.data.DataContext.get_current()
    elastic.tune_pools(context, layout)
    default_block_size = context.target_max_block_size
    default_callbacks = context.custom_execution_callback_classes
    # the dataset keeps the context it was created with (Ray Data's documented behaviour)
    context.target_max_block_size = block_bytes(call_rows(options, layout), n_mels)
    if watch is not None:
        context.custom_execution_callback_classes = [
            *default_callbacks, recovery.watch_callback(watch)]
    try:
        ds: ray.data.Dataset = ray.data.from_items(items, override_num_blocks=len(items))
    finally:
        context.target_max_block_size = default_block_size
        context.custom_execution_callback_classes = default_callbacks
    preprocess, model = (stages.preprocess, stages.model) if stages else (None, None)
    for stage in (preprocess_stage(options, layout, n_mels, preprocess),
                  model_stage(options, layout, model)):
        ds = ds.map_batches(stage.fn, batch_format="pyarrow",
                            fn_constructor_kwargs=stage.fn_constructor_kwargs,
                            **stage.map_batches_kwargs)
    # whole blocks as they come, so a session is written as soon as its last chunk is back:
    # with Ray Data's default prefetch (one batch), a block was handed over only once the
    # next was ready, a model task later (on the quality benchmark's mixed corpus every
    # session came at the end, the first 12 s after its block was done)
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
        if watch is not None:
            watch.block()
        yield from rows.decode(table)
    # where the time went per operator (benchmarks/quality.py prints it); built only when
    # it will be logged: it asks Ray Data's stats actor
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("Ray Data stats:\n%s", ds.stats())
