"""The Ray connection and what the driver asks the cluster: joining or starting a Ray,
the GPUs others hold, the nodes with CPUs."""

from __future__ import annotations

import logging
import warnings

from scribe.capacity import doctor
from scribe.config import JobConfig


def connect_ray(config: JobConfig) -> None:
    """Join the cluster Ray finds (``RAY_ADDRESS``, ``ray start``'s record), or start a
    Ray here, with the dashboard only if asked; nothing when this process is connected."""
    import ray

    if not ray.is_initialized():
        ray.init(address=doctor.init_address(), logging_level=logging.WARNING,
                 include_dashboard=config.dashboard)



def held_gpus() -> float:
    """GPUs other work (Serve replicas, other jobs) holds as the job starts."""
    import ray

    total = float(ray.cluster_resources().get("GPU", 0.0))  # type: ignore[no-untyped-call]
    free = float(ray.available_resources().get("GPU", 0.0))  # type: ignore[no-untyped-call]
    return max(0.0, total - free)


def cpu_nodes() -> int:
    """Live nodes with CPUs in the cluster."""
    import ray

    nodes = ray.nodes()  # type: ignore[no-untyped-call]
    return len([n for n in nodes if n["Alive"] and n["Resources"].get("CPU", 0) > 0])


def leave_to_others(reserved_gpus: float) -> None:
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

