"""The Ray connection and what the driver asks the cluster: the address to join
(``RAY_ADDRESS``, ``ray start``'s record, a dead record skipped), whether it answers and
holds a token, joining or starting a Ray, the GPUs others hold, the nodes with CPUs.

Ray's files and variables are known here, on the Ray side, and not in the engine's
:mod:`scribe.capacity.doctor`, whose result type the checks share."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from urllib.parse import urlsplit

from scribe.capacity.doctor import CheckResult, can_connect
from scribe.config import JobConfig

logger = logging.getLogger(__name__)


def _ok(name: str, message: str) -> CheckResult:
    return CheckResult(name, "ok", message)


def ray_address_file() -> Path:
    """Where ``ray start`` records the cluster this machine last started or joined, found
    as Ray finds it: ``$RAY_TMPDIR``, else ``$TMPDIR`` on Linux, else /tmp; then
    ``ray/ray_current_cluster``."""
    base = os.environ.get("RAY_TMPDIR") or (
        os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None) or "/tmp"
    return Path(base) / "ray" / "ray_current_cluster"


def recorded_cluster() -> str | None:
    """The address in Ray's record, or None when there is none."""
    path = ray_address_file()
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def dead_recorded_cluster() -> str | None:
    """The recorded address when nothing answers there (its processes were killed, the
    machine rebooted): ``ray.init()`` would retry it for minutes. None otherwise."""
    recorded = recorded_cluster()
    if recorded is None:
        return None
    endpoint = _ray_endpoint(recorded)
    return recorded if endpoint is None or not can_connect(*endpoint) else None


def init_address() -> str | None:
    """What to pass ``ray.init(address=...)`` in a command that may start its own Ray:
    None (Ray's lookup: ``RAY_ADDRESS``, then ``ray start``'s record) unless no address
    was asked for and the record names a cluster that is gone; then ``"local"`` (a Ray
    here), where Ray would retry the dead address for minutes."""
    if os.environ.get("RAY_ADDRESS") or (dead := dead_recorded_cluster()) is None:
        return None
    logger.warning("ignoring %s: the cluster it records (%s) does not answer; starting a "
                   "local Ray (`ray stop` clears the record)", ray_address_file(), dead)
    return "local"


def _ray_endpoint(address: str) -> tuple[str, int] | None:
    if address == "auto":
        address = recorded_cluster() or ""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    default = {"http": 8265, "https": 443, "ray": 10001}.get(parts.scheme, 6379)
    try:
        return (parts.hostname, parts.port or default) if parts.hostname else None
    except ValueError:
        return None


def _has_token() -> bool:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(path)


def check_ray(address: str | None = None) -> CheckResult:
    """The Ray cluster in ``address`` (or ``RAY_ADDRESS``) answers, and this side holds
    the token when the cluster runs with token authentication."""
    address = address if address is not None else os.environ.get("RAY_ADDRESS", "")
    if not address:
        return _no_address()
    if address == "local":  # Ray's own word for "start one here, whatever else runs"
        return _ok("ray", "RAY_ADDRESS=local: the job starts a local Ray")
    endpoint = _ray_endpoint(address)
    if endpoint is None:
        return CheckResult("ray", "fail", f"cannot read an address from {address!r}",
                           "export RAY_ADDRESS=HEAD_IP:6379 (or http://HEAD_IP:8265 to submit)")
    host, port = endpoint
    if not can_connect(host, port):
        return CheckResult("ray", "fail", f"nothing answers at {host}:{port}",
                           "start the head (scripts/ray-node.sh head) and open/map that port")
    token_mode = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    if token_mode and not _has_token():
        return CheckResult("ray", "fail", "RAY_AUTH_MODE=token but no token here",
                           "on the head `ray get-auth-token`, then here export RAY_AUTH_TOKEN=...")
    if not token_mode and host not in ("127.0.0.1", "localhost", "::1"):
        return CheckResult("ray", "warn", f"{host}:{port} answers; token auth is not on here",
                           "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=... (docs/cluster.md)")
    return _ok("ray", f"{host}:{port} answers" + (" (token auth)" if token_mode else ""))


def _no_address() -> CheckResult:
    recorded = recorded_cluster()
    if recorded is None:
        return _ok("ray", "no RAY_ADDRESS: the job starts a local Ray")
    if dead_recorded_cluster() is None:
        return _ok("ray", f"no RAY_ADDRESS: the job joins the cluster `ray start` "
                   f"recorded at {recorded}")
    return CheckResult(
        "ray", "warn", f"`ray start` recorded a cluster at {recorded} that no longer "
        "answers; the job starts its own local Ray instead",
        f"ray stop (or rm {ray_address_file()}), or export RAY_ADDRESS=HOST:PORT of a live "
        "cluster")



def connect_ray(config: JobConfig) -> None:
    """Join the cluster Ray finds (``RAY_ADDRESS``, ``ray start``'s record), or start a
    Ray here, with the dashboard only if asked; nothing when this process is connected."""
    import ray

    if not ray.is_initialized():
        ray.init(address=init_address(), logging_level=logging.WARNING,
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

