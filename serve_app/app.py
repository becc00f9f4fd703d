"""The Serve application: ingress -> preprocessor (CPU) -> transcriber (GPU fraction or CPU).

``serve run serve_app/config.yaml`` (or ``serve deploy``) calls :func:`app_builder` with the
file's ``args:``; the file's ``deployments:`` then set replicas, autoscaling and queue
bounds on top of the defaults below, which are what ``scribe serve`` gets without a file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from scribe import config as cfg
from scribe.capacity import packing
from scribe.capacity.simulation import check_simulation
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.pipeline.whisper import model_n_mels
from serve_app.api import make_api
from serve_app.deployments import PreprocessorDeployment, TranscriberDeployment
from serve_app.frontend import Frontend
from serve_app.settings import ServeConfig

logger = logging.getLogger(__name__)

APP_NAME = "scribe"

class IngressReplica(Frontend):
    """One ingress replica: the HTTP front plus the FastAPI app Serve asks it for."""

    def __serve_build_asgi_app__(self) -> FastAPI:
        """This replica's app, built after ``__init__`` so it sees the replica's config."""
        return make_api(self)


# The ingress parses uploads and waits on the model side: I/O, like Serve's own proxy,
# so it takes no CPU from the scheduler. Past max_queued_requests the proxy answers
# 503 with Retry-After instead of queueing without bound.
Ingress = serve.deployment(
    name="Ingress", max_ongoing_requests=32, max_queued_requests=64,
    ray_actor_options={"num_cpus": 0},
)(serve.ingress()(IngressReplica))


def app_builder(args: dict[str, Any]) -> Application:
    """Serve's entry point (``import_path: serve_app.app:app_builder``)."""
    return build_app(cfg.build(ServeConfig, args))


def build_app(config: ServeConfig, deployments: Mapping[str, Mapping[str, Any]] | None = None
              ) -> Application:
    """The bound application; ``deployments`` overrides options per deployment name, as a
    Serve config file's ``deployments:`` list does."""
    check_simulation(config.resources, config.transcribe)
    options = resolve_options(config.transcribe, simulated=_simulated(config.resources))
    resources = transcriber_resources(
        options, config.resources, packing.read_plan(),
        packing.read_gpus() if options.device == "cuda" else ())
    config = config.model_copy(update={"transcribe": options, "resources": resources})
    over = deployments or {}
    retry = {"status_code": 503, "retry_after_s": config.server.retry_after_s}
    preprocessor = PreprocessorDeployment.options(**_merge({
        "ray_actor_options": {"num_cpus": config.resources.preprocess_cpus},
        "backpressure_config": retry}, over.get("Preprocessor")))
    transcriber = TranscriberDeployment.options(**_merge({
        "ray_actor_options": model_actor_options(options, resources),
        # One batch runs while the next fills.
        "max_ongoing_requests": 2 * resources.model_batch_size,
        "backpressure_config": retry,
        **_replicas(options, resources, over.get("Transcriber"))}, over.get("Transcriber")))
    ingress = Ingress.options(**_merge({"backpressure_config": retry}, over.get("Ingress")))
    logger.info("serving %s on %s (%s)", options.model, options.device, options.compute_type)
    return ingress.bind(
        config,
        preprocessor.bind(model_n_mels(str(options.model))),
        transcriber.bind(options, config.resources, config.server.batch_wait_timeout_s),
    )


def resolve_options(options: TranscribeOptions, *, simulated: bool = False
                    ) -> TranscribeOptions:
    """Device, model and compute type filled in; ``auto`` means cuda when the Ray cluster
    (not this process, which may be a CPU-only head) has GPUs, and cpu where its GPUs are
    ``simulated`` (declared by the nodes, computed on CPU)."""
    if options.device == "auto":
        device = "cpu" if simulated else _cluster_device()
        options = options.model_copy(update={"device": device})
    if options.model and os.path.isdir(options.model):
        # Replicas may start in another directory than the one the config was read in.
        options = options.model_copy(update={"model": os.path.abspath(options.model)})
    return options.resolved()


def _cluster_device() -> str:
    import ray

    if ray.is_initialized():
        return "cuda" if _cluster_gpus() > 0 else "cpu"
    return TranscribeOptions(device="auto").resolved_device()


def _cluster_gpus() -> float:
    import ray

    if not ray.is_initialized():
        return 0.0
    return float(ray.cluster_resources().get("GPU", 0.0))  # type: ignore[no-untyped-call]


def transcriber_resources(options: TranscribeOptions, resources: ResourceConfig,
                          saved: packing.PackingPlan | None, gpus_here: Sequence[packing.GpuInfo]
                          ) -> ResourceConfig:
    """``resources`` with the packing plan's shape for the model replicas, as the batch job
    takes it (:func:`scribe.capacity.packing.job_shape`): actors per GPU and batch size on GPUs,
    threads per replica and batch size from a CPU plan; fields set in the config win.
    Without a plan file a CPU service keeps the config's batch size, so concurrent
    requests still share model calls. Under simulated GPUs each replica computes on one
    thread unless the config says (k replicas per declared GPU share a node's cores), as
    the job's model actors do."""
    if _simulated(resources):
        return resources.model_copy(update={"cpu_threads": resources.cpu_threads or 1})
    if options.device != "cuda" and not (saved and saved.cpu):
        return resources
    shape = packing.job_shape(options, resources, saved, gpus_here)
    per = (f"{shape.actors_per_gpu} per GPU" if options.device == "cuda"
           else f"{shape.cpu_threads or 'default'} threads each")
    logger.info("transcriber replicas: %s, batch %d (%s)", per, shape.batch_size, shape.source)
    return resources.model_copy(update={"actors_per_gpu": shape.actors_per_gpu,
                                        "model_batch_size": shape.batch_size,
                                        "cpu_threads": shape.cpu_threads})


def model_actor_options(options: TranscribeOptions, resources: ResourceConfig
                        ) -> dict[str, Any]:
    """A fraction of a GPU (several replicas share one), or one CPU on CPU-only clusters:
    a replica's threads (``cpu_threads``) share the cores with the preprocessor, which
    needs a few percent of them, as in the batch job. Simulated GPUs are asked for as
    real ones are."""
    if options.device == "cuda" or _simulated(resources):
        return {"num_gpus": resources.gpu_fraction(), "num_cpus": 0}
    return {"num_cpus": 1}


def _replicas(options: TranscribeOptions, resources: ResourceConfig,
              override: Mapping[str, Any] | None) -> dict[str, Any]:
    """On GPUs, as many model replicas as the plan packs on the cluster's cards, unless
    the config sets ``num_replicas`` or autoscaling."""
    gpu_layout = options.device == "cuda" or _simulated(resources)
    if not gpu_layout or {"num_replicas", "autoscaling_config"} & set(override or {}):
        return {}
    gpus = _cluster_gpus()
    if not gpus:
        return {}
    return {"num_replicas": max(1, packing.actors_on(gpus, resources.actors_per_gpu))}


def _simulated(resources: ResourceConfig) -> bool:
    return resources.simulated_gpus != "off"


def _merge(defaults: dict[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in (override or {}).items():
        if key != "name":
            merged[key] = value
    return merged
