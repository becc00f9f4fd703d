"""The job's preflight: fail in a second, before any audio is read, on what would
otherwise fail minutes into the run (the output, Ray, the model; then each node's GPUs,
CUDA libraries and model on disk)."""

from __future__ import annotations

import logging

from ray_jobs.cluster import check_ray
from scribe.capacity import doctor
from scribe.capacity.simulation import real_gpu_refusal
from scribe.config import JobConfig, TranscribeOptions
from scribe.errors import ScribeError
from scribe.pipeline.bundled import looks_like_path
from scribe.pipeline.languages import check_request

logger = logging.getLogger(__name__)


def preflight(config: JobConfig) -> None:
    """Fail in a second, before any audio is read: the output, Ray, a model given as a
    path, and a task or language the model cannot do (:func:`check_request`, raising
    :class:`~scribe.errors.InvalidParameterError`). What depends on the nodes (GPUs, CUDA
    libraries, the model on each disk) is checked on them by :func:`preflight_nodes` once
    Ray is up."""
    model = config.transcribe.model or ""
    results = [doctor.check_output(config.output), check_ray()]
    if looks_like_path(model):
        results.append(doctor.check_model(model))
    raise_failures(results)
    # after the model check: a path that is no model folder gets the doctor's fix first
    check_request(model, language=config.transcribe.language, task=config.transcribe.task)


def raise_failures(results: list[doctor.CheckResult], where: str = "") -> None:
    for result in results:
        if result.status != "ok":
            logger.log(logging.ERROR if result.status == "fail" else logging.WARNING,
                       "preflight%s: %s", where, result.line())
    failed = doctor.failures(results)
    if failed:
        raise ScribeError(f"preflight{where}: " + "; ".join(r.line() for r in failed))


def preflight_nodes(options: TranscribeOptions, device: str, simulated: str = "off") -> None:
    """The node checks (GPU, CUDA libraries, model on disk) on every node that will run
    model actors, in a task that holds no GPU, so a busy card does not delay it. Under
    ``simulated`` GPUs the engine's device is CPU, and a node with a real GPU is refused
    unless asked (:func:`scribe.capacity.simulation.real_gpu_refusal`)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    kind = "GPU" if device == "cuda" or simulated != "off" else "CPU"
    nodes = [n for n in ray.nodes()  # type: ignore[no-untyped-call]
             if n["Alive"] and n["Resources"].get(kind, 0) > 0]
    if [n["NodeID"] for n in nodes] == [ray.get_runtime_context().get_node_id()]:
        # One machine, the driver's own: check here. A task's worker took 3.9 s of a
        # 14.5 s job to start (benchmarks/quality.py's profile, 2 cores).
        raise_failures(doctor.from_dicts(
            _node_checks(device, str(options.model), simulated, here=True)))
        return
    check = ray.remote(num_cpus=0)(_node_checks)
    pending = {n["NodeManagerAddress"]: check.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            device, str(options.model), simulated)  # type: ignore[call-arg]  # Ray's stubs: defaults
        for n in nodes}
    for address, ref in pending.items():
        found: list[dict[str, str]] = ray.get(ref, timeout=60)
        raise_failures(doctor.from_dicts(found), f" on {address}")


def _node_checks(device: str, model: str, simulated: str = "off", here: bool = False
                 ) -> list[dict[str, str]]:
    # CUDA_VISIBLE_DEVICES is empty in a task without GPUs: NVML still sees the cards.
    results = doctor.node_checks(device, model, count_devices=here)  # type: ignore[arg-type]
    refusal = real_gpu_refusal(simulated)
    return [r.to_dict() for r in ([refusal] if refusal else []) + results]

