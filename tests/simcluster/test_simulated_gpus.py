"""The GPU layout run for real on nodes that declare GPUs: k model actors per GPU as
planned, every node used, GPU hours as the actors held them, nodes removed and added
mid-job without a session lost, doubled or half-written, and without a hang."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.simcluster.conftest import add_gpu_node, corpus, finish, start_job, wait_for_records

pytestmark = pytest.mark.simcluster

PRICE = 0.5
JOB_TIMEOUT_S = 240.0
# one model actor per declared GPU, a call per chunk; a pass that stalls after a node loss
# is given up after 20 s rather than the default 120 s
LOSS_FLAGS = ("--actors-per-gpu", "1", "--model-batch-size", "1", "--stall-timeout-s", "20")


def _records(out: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")
            if not p.name.startswith("_")}


def _assert_all_ok_once(out: Path, count: int, summary: dict[str, Any]) -> None:
    records = _records(out)
    assert len(records) == count and all(r["status"] == "ok" for r in records.values())
    assert summary["sessions"] == {"ok": count, "failed": 0, "skipped": 0}
    assert len(list((out / "_done").glob("*.ok"))) == count
    for stem in records:
        assert all((out / (stem + s)).exists() for s in (".srt", ".vtt", ".txt"))
    leftovers = [p.name for p in out.rglob(".*") if p.is_file()]
    assert not leftovers, f"temporary files left: {leftovers}"


def _model_actors_placed(cluster: Any) -> list[str]:
    """The node of every model actor the job started, ran a call or not. The public state
    API goes through the dashboard, which these nodes run without; the GCS actor table has
    the same facts. Read in a child process: this one may already hold the suite's own
    local Ray, and a process connects to one Ray at a time."""
    query = ("import json, ray\n"
             "from ray._private import state\n"
             f"ray.init(address={cluster.address!r}, log_to_driver=False)\n"
             "print(json.dumps([a['Address']['NodeID'] for a in state.actors().values()"
             " if 'Transcriber' in a['ActorClassName']]))\n"
             "ray.shutdown()\n")
    found = subprocess.run([sys.executable, "-c", query], capture_output=True, text=True,
                           timeout=120, check=True)
    placed: list[str] = json.loads(found.stdout.strip().splitlines()[-1])
    return placed


def _gpu_hours_held(summary: dict[str, Any]) -> float:
    return sum(a["gpus"] * a["held_s"] for a in summary["model_actors"]) / 3600.0


def test_k_actors_per_declared_gpu_on_every_node_billed_as_held(
        sim_cluster: Any, job_file: Path, tmp_path: Path) -> None:
    nodes = [add_gpu_node(sim_cluster) for _ in range(2)]
    src, out = corpus(tmp_path / "in", 16), tmp_path / "out"
    job = start_job(sim_cluster, job_file, src, out, "--actors-per-gpu", "2",
                    "--model-batch-size", "1", "--max-model-actors", "4",
                    "--gpu-hourly-usd", str(PRICE))
    log = finish(job, JOB_TIMEOUT_S)
    assert job.returncode == 0, log[-4000:]
    summary = json.loads((out / "_summary.json").read_text())
    _assert_all_ok_once(out, 16, summary)
    plan = summary["plan"]
    assert (plan["model_actors"], plan["model_gpus"], plan["simulated_gpus"]) == (4, 0.5, True)
    assert summary["device"] == "cuda" and summary["gpus"] == 2.0
    placed = _model_actors_placed(sim_cluster)
    assert sorted(placed) == sorted(n.node_id for n in nodes for _ in range(2)), \
        "two actors on each node's one declared GPU"
    assert set(summary["model_actor_nodes"]) <= set(placed)
    assert all(a["gpus"] == 0.5 for a in summary["model_actors"])
    assert summary["gpu_hours"] == pytest.approx(_gpu_hours_held(summary))
    assert 0 < summary["gpu_hours"] <= summary["wall_s"] * 2.0 / 3600.0
    assert summary["cost_usd"] == pytest.approx(summary["gpu_hours"] * PRICE)


def _job_with_event(cluster: Any, job_file: Path, root: Path, count: int, gpus: int,
                    event: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    """The job over ``count`` sessions, ``event()`` (nodes removed or added) once a few
    are written; every session checked ok exactly once. The summary and what ``event``
    returned."""
    src, out = corpus(root / "in", count), root / "out"
    job = start_job(cluster, job_file, src, out, *LOSS_FLAGS, simulated=bool(gpus))
    try:
        wait_for_records(out, 6, job, JOB_TIMEOUT_S / 2)
        happened = event()
        log = finish(job, JOB_TIMEOUT_S)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, log[-4000:]
    summary = json.loads((out / "_summary.json").read_text())
    _assert_all_ok_once(out, count, summary)
    return summary, happened


def _lose_a_node(cluster: Any, job_file: Path, root: Path, count: int, gpus: int,
                 replace: bool) -> tuple[dict[str, Any], Any, Any]:
    """:func:`_job_with_event` on two worker nodes, one removed without warning (and a
    fresh one added if ``replace``). The summary, the kept node, the added one or None."""
    doomed, kept = add_gpu_node(cluster, gpus), add_gpu_node(cluster, gpus)

    def lose() -> Any:
        cluster.remove_node(doomed, allow_graceful=False)
        return add_gpu_node(cluster, gpus) if replace else None

    summary, joined = _job_with_event(cluster, job_file, root, count, gpus, lose)
    return summary, kept, joined


@pytest.mark.parametrize("layout", [
    "simulated_gpus", pytest.param("cpu", marks=pytest.mark.slow)])
def test_a_node_lost_and_one_added_mid_job(layout: str, sim_cluster: Any, job_file: Path,
                                           tmp_path: Path) -> None:
    """A worker removed without warning (its actors, its object store) and a fresh one
    joining: every session ok exactly once, and the new node runs model actors. On CPU
    nodes too, the layout the issue's hang was seen with. 80 sessions: with 40, the kept
    node's one actor finished them all, at times, before the new node's had loaded."""
    summary, kept, joined = _lose_a_node(sim_cluster, job_file, tmp_path, 80,
                                         1 if layout == "simulated_gpus" else 0, True)
    used = summary["model_actor_nodes"]
    assert kept.node_id in used and joined.node_id in used, used
    assert summary["gpu_hours"] == pytest.approx(_gpu_hours_held(summary))


@pytest.mark.slow
def test_a_node_lost_with_no_room_left_to_restart_its_actors(
        sim_cluster: Any, job_file: Path, tmp_path: Path) -> None:
    """A CPU node removed and none added: the remaining node is full, so Ray cannot
    restart the lost actors and the blocks they held never come (the issue's hang). The
    job gives the pass up and runs the unfinished sessions again on the node left."""
    summary, kept, _ = _lose_a_node(sim_cluster, job_file, tmp_path, 24, 0, False)
    assert kept.node_id in summary["model_actor_nodes"]


@pytest.mark.slow
def test_a_node_added_mid_job_grows_the_model_pool_onto_it(
        sim_cluster: Any, job_file: Path, tmp_path: Path) -> None:
    """One GPU node, a second joining once a few sessions are written: the model pool,
    started with one actor, grows onto it (Ray Data's default growth threshold kept it at
    one). 200 sessions, so that the work outlasts the new actor's start."""
    first = add_gpu_node(sim_cluster)
    summary, joined = _job_with_event(sim_cluster, job_file, tmp_path, 200, 1,
                                      lambda: add_gpu_node(sim_cluster))
    assert summary["plan"]["model_actors"] == 1
    assert set(summary["model_actor_nodes"]) == {first.node_id, joined.node_id}
