"""The job's layout on a cluster that changes: pools that grow onto nodes joining mid-job,
and GPU accounting rehearsed on nodes that only declare GPUs.

Ray Data's autoscaling actor pools (``ActorPoolStrategy(min_size, max_size)``) start with
``min_size`` actors and add more while their work queues up and Ray has room for them: a
node that joins adds room, so the pool grows onto it; one that leaves takes its actors,
which Ray restarts where there is room (or the pool carries on with fewer). The job never
waits for ``max_size``: it is a limit, not a request. The simulated GPU layout's checks,
which Serve shares, are :mod:`scribe.capacity.simulation`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ray_jobs.layout import JobLayout, model_replicas_for
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.io.sessions import SessionRef

DEFAULT_MAX_MODEL_ACTORS = 256
# Actors of one pool that may die while starting, one after another, before the job fails.
# Ray Data's default, 0, fails the job at the first: an actor loading its model on a node
# that leaves dies so. The count restarts whenever an actor of the pool starts, so a stage
# whose actors can never start (a broken model) still fails after this many.
ACTOR_INIT_DEATHS = 8
# Ray Data grows an actor pool when its tasks in flight reach this share of its actors'
# concurrency. Its default, 1.75, needs a second task queued on most actors, which the
# model stage never does on a CPU engine (one task per worker, ray_jobs.graph.model_stage):
# simulated GPU nodes, while they dispatched so, never grew onto a node that joined. At
# 1.0 a pool grows once every actor is busy and work is queued, as far as Ray has room.
GROW_AT_UTILIZATION = 1.0


def grow_limits(layout: JobLayout, sessions: Sequence[SessionRef], options: TranscribeOptions,
                resources: ResourceConfig) -> tuple[int, int]:
    """The most model and preprocessing actors the pools may grow to: the config's
    ``max_model_actors``, else one per model call the sessions make (none idle), else
    :data:`DEFAULT_MAX_MODEL_ACTORS`; never fewer than the layout starts with, and no
    growth where the config fixes ``model_actors`` and sets no maximum. The
    preprocessing pool grows in proportion, unless the config caps it."""
    chain = options.prompt_chain if options.condition_on_previous_text else 1
    calls = model_replicas_for(sessions, DEFAULT_MAX_MODEL_ACTORS * layout.model_workers,
                               layout.model_batch_size, chain, options.chunk_length_s)
    if resources.model_actors and not resources.max_model_actors:
        return layout.model_actors, layout.preprocess_actors  # fixed by the config
    model = resources.max_model_actors or math.ceil(calls / layout.model_workers)
    model = max(layout.model_actors, model)
    if resources.preprocess_actors:
        return model, layout.preprocess_actors
    grown = math.ceil(layout.preprocess_actors * model / layout.model_actors)
    return model, max(layout.preprocess_actors, grown)


def with_grow_limits(layout: JobLayout, sessions: Sequence[SessionRef],
                     options: TranscribeOptions, resources: ResourceConfig) -> JobLayout:
    """``layout`` with the pools' limits (:func:`grow_limits`) set."""
    model, preprocess = grow_limits(layout, sessions, options, resources)
    return replace(layout, max_model_actors=model, max_preprocess_actors=preprocess)


def tune_pools(context: Any, layout: JobLayout) -> None:
    """Set ``context`` (a Ray Data ``DataContext``) for pools on a changing cluster: up
    to :data:`ACTOR_INIT_DEATHS` actors in a row that died while starting are replaced;
    on GPUs (real or simulated) a pool grows once all its actors are busy with work
    queued (:data:`GROW_AT_UTILIZATION`). A CPU engine's model actor runs more threads
    than the CPUs it declares (its workers share the node's cores with the preprocessing
    actor, which needs a few percent of them), so the CPU that the preprocessing actor
    frees when its work is done is one those threads already use: a model actor grown
    there slowed the quality benchmark's job on one 2-core node by 16-20% (base, median
    of 3 rounds). There Ray Data's own threshold stays, which the model stage never
    reaches: its pool keeps the actors the layout planned, and restarts them where
    nodes have room."""
    context.max_consecutive_actor_init_deaths = max(
        context.max_consecutive_actor_init_deaths, ACTOR_INIT_DEATHS)
    ray_default = type(context.autoscaling_config)().actor_pool_util_upscaling_threshold
    context.autoscaling_config.actor_pool_util_upscaling_threshold = (
        GROW_AT_UTILIZATION if layout.device == "cuda" else ray_default)
