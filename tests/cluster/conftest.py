"""A two-host Ray cluster made of network namespaces, each host behind a firewall that
opens only the ports ``scripts/ray-node.sh ports`` declares, started by that script with
token auth on. Built once for the tier's tests, torn down (processes by id, then the
namespaces) whatever happens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster import netlab

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "ray-node.sh")
PROBE = str(Path(__file__).with_name("probe.py"))
HEAD, WORKER, CLIENT = f"{netlab.SUBNET}.1", f"{netlab.SUBNET}.2", f"{netlab.SUBNET}.3"
DASHBOARD = f"http://{HEAD}:8265"
GCS = f"{HEAD}:6379"
START_TIMEOUT_S = 120


@dataclass
class Cluster:
    lab: netlab.Lab
    token: str
    work: Path
    logs: list[Path]

    def env(self, home: str, *, token: bool = True, **extra: str) -> dict[str, str]:
        """The environment of a process in the lab: no Ray settings from outside, and the
        token only when asked for."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RAY_", "AWS_")) and k != "PYTHONPATH"}
        env.update(HOME=home, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        if token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        env.update(extra)
        return env

    def probe(self, *args: str, timeout: float = 60) -> object:
        out = self.lab.run("c", [sys.executable, PROBE, DASHBOARD, *args], timeout=timeout,
                           env=self.env(str(self.work / "client")))
        if out.returncode:
            raise AssertionError(f"probe {args} failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.splitlines()[-1])

    def alive_nodes(self) -> list[dict[str, object]]:
        return [n for n in self.probe("nodes") if n["state"] == "ALIVE"]  # type: ignore[attr-defined]

    def log_tail(self, chars: int = 4000) -> str:
        text = []
        for log in self.logs:
            if log.is_file():
                text.append(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(text)


def declared_ports(role: str) -> list[str]:
    out = subprocess.run([SCRIPT, "ports", role], capture_output=True, text=True, check=True)
    return out.stdout.split()


def _wait(what: str, check: object, timeout: float, cluster: Cluster | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (AssertionError, subprocess.TimeoutExpired, OSError, ValueError):
            pass
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}\n{cluster.log_tail() if cluster else ''}")


def _node_env(cluster: Cluster, name: str, ip: str, **extra: str) -> dict[str, str]:
    home = cluster.work / name
    home.mkdir(exist_ok=True)
    return cluster.env(str(home), token=False, RAY_NODE_IP=ip, RAY_BLOCK="1",
                       RAY_TEMP_DIR=f"/tmp/scr{cluster.lab.tag}{name[0]}", **extra)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = netlab.unavailable()
    if reason:
        pytest.skip(f"cluster tier: {reason}")
    if not shutil.which("ray"):
        pytest.skip("cluster tier: the `ray` command is not on PATH")
    work = tmp_path_factory.mktemp("cluster")
    tag = str(os.getpid() % 10_000)
    lab = netlab.Lab(tag, {"h": HEAD, "w": WORKER, "c": CLIENT})
    made = Cluster(lab, "", work, [work / "head.log", work / "worker.log"])
    try:
        lab.up()
        lab.firewall("h", declared_ports("head"))
        lab.firewall("w", declared_ports("worker"))
        # The head has no CPUs for tasks: every actor of the job must run on the worker.
        head_env = _node_env(made, "head", HEAD, RAY_NUM_CPUS="0", RAY_MEMORY=str(2 << 30),
                             RAY_OBJECT_STORE_MEMORY=str(200 << 20))
        lab.start("h", [SCRIPT, "head"], env=head_env, log=str(made.logs[0]))
        token_file = work / "head" / ".ray" / "auth_token"
        _wait("the head's token", lambda: token_file.is_file() and token_file.read_text(),
              START_TIMEOUT_S, made)
        made.token = token_file.read_text().strip()
        worker_env = _node_env(made, "worker", WORKER, RAY_AUTH_TOKEN=made.token,
                               RAY_NUM_CPUS="2", RAY_MEMORY=str(4 << 30),
                               RAY_OBJECT_STORE_MEMORY=str(300 << 20))
        lab.start("w", [SCRIPT, "worker", GCS], env=worker_env, log=str(made.logs[1]))
        _wait("two live nodes", lambda: len(made.alive_nodes()) == 2, START_TIMEOUT_S, made)
        yield made
    finally:
        lab.down()
        for host in "hwc":
            shutil.rmtree(f"/tmp/scr{tag}{host}", ignore_errors=True)
