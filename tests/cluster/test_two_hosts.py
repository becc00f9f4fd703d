"""Two hosts, one Ray cluster, only the declared ports open, token auth on.

If ``scripts/ray-node.sh`` left a port undeclared, the firewall would drop it and the
worker would not join, or the job would hang; so a job that completes with its model
actors on the worker and its driver on the head proves the port list complete.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scribe.io.outputs import SUMMARY_FILE
from tests.cluster.conftest import (
    DASHBOARD,
    GCS,
    HEAD,
    WORKER,
    Cluster,
    declared_ports,
)
from tests.media import speech, write_audio

pytestmark = pytest.mark.cluster

JOB_TIMEOUT_S = 150

_CONNECT = ("import socket, sys\n"
            "try:\n"
            "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
            "    print('open')\n"
            "except OSError as e:\n"
            "    print('closed', e)\n")


def _free_port_not_declared() -> int:
    declared = set()
    for item in declared_ports("head"):
        low, _, high = item.partition("-")
        declared.update(range(int(low), int(high or low) + 1))
    return next(p for p in range(7000, 8000) if p not in declared)


def test_the_firewall_drops_every_undeclared_port(cluster: Cluster) -> None:
    """The lab is only a proof if the firewall really drops: a listener on an undeclared
    port of the head is unreachable from the worker, the dashboard is reachable."""
    port = _free_port_not_declared()
    listener = cluster.lab.start(
        "h", [sys.executable, "-c",
              "import socket, time; s = socket.socket(); "
              f"s.bind(('{HEAD}', {port})); s.listen(); time.sleep(60)"],
        env=cluster.env(str(cluster.work)), log=str(cluster.work / "listener.log"))
    try:
        probe = cluster.lab.run("w", [sys.executable, "-c", _CONNECT, HEAD, str(port)],
                                timeout=20)
        assert probe.stdout.startswith("closed"), probe.stdout
        dashboard = cluster.lab.run("w", [sys.executable, "-c", _CONNECT, HEAD, "8265"],
                                    timeout=20)
        assert dashboard.stdout.startswith("open"), dashboard.stdout
    finally:
        listener.kill()


def _sessions(folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    return [write_audio(folder / f"clip{i}.wav", speech(3.0 + i, seed=40 + i)) for i in range(3)]


def test_a_job_submitted_from_a_laptop_runs_on_both_hosts(cluster: Cluster,
                                                          tiny_model: str) -> None:
    sessions = _sessions(cluster.work / "input")
    output = cluster.work / "output"
    submit = cluster.lab.run("c", [
        "ray", "job", "submit", "--address", DASHBOARD, "--submission-id", "scribe-lab",
        "--", "python", "-m", "ray_jobs.transcribe", "--input", str(cluster.work / "input"),
        "--output", str(output), "--model", tiny_model, "--device", "cpu",
        "--compute-type", "int8", "--beam-size", "1", "--max-new-tokens", "8",
    ], timeout=JOB_TIMEOUT_S, env=cluster.env(str(cluster.work / "client")))
    job = cluster.probe("job", "scribe-lab")
    said = f"{job}\n{submit.stdout[-6000:]}\n{submit.stderr[-2000:]}"
    assert job["status"] == "SUCCEEDED", f"{said}\n{cluster.log_tail()}"  # type: ignore[index]
    assert (output / SUMMARY_FILE).is_file(), said
    summary = json.loads((output / SUMMARY_FILE).read_text())
    assert summary["sessions"]["ok"] == len(sessions), summary
    assert job["driver_ip"] == HEAD  # type: ignore[index]
    placed = {a["ip"] for a in cluster.probe("actors")  # type: ignore[attr-defined]
              if "Transcriber" in a["class"] or "Preprocessor" in a["class"]}
    assert placed == {WORKER}, placed


def test_a_submission_without_the_token_is_refused(cluster: Cluster) -> None:
    home = cluster.work / "stranger"
    home.mkdir(exist_ok=True)
    stranger = cluster.env(str(home), token=False)
    submit = cluster.lab.run("c", ["ray", "job", "submit", "--address", DASHBOARD, "--no-wait",
                                   "--", "echo", "pwned"], timeout=60, env=stranger)
    assert submit.returncode != 0
    raw = cluster.lab.run("c", [sys.executable, "-c",
                                "import sys, urllib.request, urllib.error\n"
                                "try:\n"
                                "    urllib.request.urlopen(sys.argv[1] + '/api/jobs/', "
                                "timeout=10)\n"
                                "    print(200)\n"
                                "except urllib.error.HTTPError as e:\n"
                                "    print(e.code)\n", DASHBOARD], timeout=30, env=stranger)
    assert raw.stdout.strip() == "401", raw.stdout + raw.stderr


@pytest.mark.parametrize("token", ["", "not-the-token"])
def test_a_worker_without_the_token_cannot_join(cluster: Cluster, token: str) -> None:
    home = cluster.work / f"intruder{len(token)}"
    home.mkdir(exist_ok=True)
    extra = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token} if token else {}
    # A few tries at the GCS instead of twenty: the refusal is the same on every try.
    env = cluster.env(str(home), token=False, RAY_gcs_server_port_wait_time_s="3", **extra)
    try:
        attempt = cluster.lab.run(
            "c", ["ray", "start", f"--address={GCS}", "--num-cpus=1", "--disable-usage-stats",
                  f"--temp-dir=/tmp/scr{cluster.lab.tag}c"], timeout=60, env=env)
    finally:
        cluster.lab.stop_host("c")
    said = attempt.stdout + attempt.stderr
    assert attempt.returncode != 0, said[-2000:]
    assert "InvalidAuthToken" in said, said[-2000:]
    assert sorted(n["ip"] for n in cluster.alive_nodes()) == [HEAD, WORKER]  # type: ignore[index]


def test_the_declared_ports_are_few_and_fixed() -> None:
    head, worker = declared_ports("head"), declared_ports("worker")
    assert set(worker) < set(head)
    assert {"6379", "8265", "10001", "8000"} <= set(head)
    singles = [p for p in head if "-" not in p]
    (span,) = [p for p in head if "-" in p]
    low, high = (int(x) for x in span.split("-"))
    assert len(singles) + high - low + 1 <= 63  # Vast.ai opens 64 ports at most; ssh is one
