"""GPU accounting rehearsed on nodes that only declare GPUs (``simulated_gpus``): Ray places
model actors or replicas by the ``num_gpus`` the nodes declare while the engine computes
on CPU. The checks the batch job and Serve both make before laying anything out; this
module knows the node, never Ray."""

from __future__ import annotations

from scribe.capacity import doctor
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.errors import PlanError


def check_simulation(resources: ResourceConfig, options: TranscribeOptions) -> None:
    """Refuse a simulated GPU layout that would hide a real GPU or contradict the device."""
    if resources.simulated_gpus == "off":
        return
    if options.device == "cuda":
        raise PlanError("simulated_gpus computes on CPU: leave device auto or cpu")
    refusal = real_gpu_refusal(resources.simulated_gpus)
    if refusal is not None:
        raise PlanError(f"{refusal.message}  -> {refusal.fix}")


def real_gpu_refusal(mode: str) -> doctor.CheckResult | None:
    """A failed check where ``mode`` is ``on`` and this node has a real GPU (Ray would
    place actors on it and the engine would leave it idle); None otherwise."""
    if mode != "on" or not _cuda_devices():
        return None
    return doctor.CheckResult(
        "simulated GPUs", "fail", "this node has a real GPU: simulated_gpus on would "
        "leave it idle", fix="turn simulated_gpus off, or set it to over_real_gpus")


def _cuda_devices() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a broken CUDA install: no GPU that the engine could use
        return 0
