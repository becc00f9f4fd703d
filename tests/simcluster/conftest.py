"""A multi-node Ray on this machine (``ray.cluster_utils.Cluster``) whose worker nodes
declare GPUs, for the job's GPU layout with the engine on CPU (``simulated_gpus``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.media import speech, write_audio

ROOT = Path(__file__).resolve().parents[2]
# Small nodes: the machine is shared, and what is tested is placement, not speed.
OBJECT_STORE = 200 * 1024 * 1024
NODE_CPUS = 2


@pytest.fixture
def sim_cluster() -> Iterator[Any]:
    """A head node with no CPUs (the driver's, as on a rented cluster) and no worker yet:
    tests add GPU nodes with :func:`add_gpu_node`. Torn down whatever happens."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": OBJECT_STORE, "include_dashboard": False})
    try:
        yield cluster
    finally:
        cluster.shutdown()


def add_gpu_node(cluster: Any, gpus: int = 1) -> Any:
    """A worker node declaring ``gpus`` GPUs (it has none; 0: a CPU node) and a couple of
    CPUs."""
    node = cluster.add_node(num_cpus=NODE_CPUS, num_gpus=gpus, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    return node


def corpus(root: Path, count: int, seed: int = 500) -> Path:
    """``count`` short sessions (3-5 s of real speech, one chunk each)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_audio(root / f"s{i:03d}.wav", speech(3.0 + (i % 3), seed=seed + i))
    return root


def start_job(cluster: Any, config: Path, src: Path, out: Path, *flags: str,
              simulated: bool = True) -> subprocess.Popen[bytes]:
    """The job as a user submits it, joined to ``cluster`` (its driver on the head), with
    simulated GPUs unless told."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": cluster.address}
    return subprocess.Popen(
        [sys.executable, "-m", "ray_jobs.transcribe", "--config", str(config),
         "--input", str(src), "--output", str(out),
         *(["--simulated-gpus", "on"] if simulated else []), *flags],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(job: subprocess.Popen[bytes], timeout_s: float) -> str:
    """The job's output once it exits; it is killed (and the test fails) past the time."""
    try:
        output, _ = job.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        job.kill()
        output, _ = job.communicate()
        pytest.fail(f"the job hung past {timeout_s:.0f} s:\n{output.decode()[-4000:]}")
    return output.decode()


def wait_for_records(out: Path, at_least: int, job: subprocess.Popen[bytes],
                     timeout_s: float) -> None:
    """Until ``at_least`` ok markers are written (or the job ends, or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and job.poll() is None:
        if len(list((out / "_done").glob("*.ok"))) >= at_least:
            return
        time.sleep(0.1)
    pytest.fail(f"fewer than {at_least} sessions were written in {timeout_s:.0f} s")
