"""scripts/ray-node.sh and cluster.yaml without a cluster: what ``ray start`` is given.

A stand-in ``ray`` on PATH records its arguments, so these run anywhere in a second; the
namespace test (test_two_hosts.py) is the one that starts the real thing.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import ROOT, SCRIPT

pytestmark = pytest.mark.cluster

FAKE_RAY = """#!/bin/sh
if [ "$1" = get-auth-token ]; then mkdir -p "$HOME/.ray"; echo tok > "$HOME/.ray/auth_token"; fi
echo "$@" >> "$FAKE_RAY_LOG"
echo "RAY_AUTH_MODE=$RAY_AUTH_MODE" >> "$FAKE_RAY_LOG"
"""


def _run(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "ray"
    fake.write_text(FAKE_RAY)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "ray.log"
    log.write_text("")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VAST_"))}
    clean.update(PATH=f"{bin_dir}:{os.environ['PATH']}", HOME=str(tmp_path),
                 FAKE_RAY_LOG=str(log), PUBLIC_IPADDR="", **env)
    out = subprocess.run([SCRIPT, *args], env=clean, capture_output=True, text=True, timeout=30)
    return out, log.read_text()


def test_the_head_pins_every_port_and_turns_token_auth_on(tmp_path: Path) -> None:
    out, said = _run(tmp_path, "head")
    assert out.returncode == 0, out.stderr
    start = next(line for line in said.splitlines() if line.startswith("start"))
    for flag in ("--head", "--port=6379", "--dashboard-port=8265", "--ray-client-server-port=10001",
                 "--node-manager-port=6380", "--object-manager-port=6381",
                 "--runtime-env-agent-port=6382", "--dashboard-agent-grpc-port=6383",
                 "--dashboard-agent-listen-port=6384", "--metrics-export-port=6385",
                 "--min-worker-port=10002", "--max-worker-port=10033", "--num-cpus=",
                 "--memory=", "--object-store-memory=", "--dashboard-host=0.0.0.0"):
        assert flag in start, flag
    assert "get-auth-token --generate" in said
    assert "RAY_AUTH_MODE=token" in said
    assert (tmp_path / ".ray" / "auth_token").read_text().strip() == "tok"


def test_a_worker_needs_the_token(tmp_path: Path) -> None:
    out, said = _run(tmp_path, "worker", "10.0.0.1:6379")
    assert out.returncode == 2 and "RAY_AUTH_TOKEN" in out.stderr
    assert said == ""
    out, said = _run(tmp_path, "worker", "10.0.0.1:6379", "--labels=a=b",
                     RAY_AUTH_TOKEN="tok", RAY_NUM_CPUS="3")
    assert out.returncode == 0, out.stderr
    assert "--address=10.0.0.1:6379" in said and "--num-cpus=3" in said
    assert "--labels=a=b" in said and "--dashboard-port" not in said


def test_vast_identity_ports_replace_the_defaults(tmp_path: Path) -> None:
    ports = {f"VAST_TCP_PORT_{70000 + i}": str(41000 + 7 * i) for i in range(42)}
    out, _ = _run(tmp_path, "ports", "head", **ports)
    listed = out.stdout.split()
    assert listed[:3] == ["41000", "41007", "41014"]
    assert len(listed) == 3 + 7 + 32 and "6379" not in listed
    _, said = _run(tmp_path, "head", **ports)
    assert "--worker-port-list=41070,41077," in said and "--port=41000" in said


def test_resources_come_from_the_machine(tmp_path: Path) -> None:
    out, _ = _run(tmp_path, "resources")
    values = dict(line.split("=") for line in out.stdout.split())
    assert int(values["NUM_CPUS"]) >= 1
    assert 0 < int(values["OBJECT_STORE_MEMORY"]) < int(values["MEMORY"]) * 2


def test_cluster_yaml_is_a_valid_launcher_config_that_uses_the_script() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert config["provider"]["type"] == "local"
    commands = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert sum("scripts/ray-node.sh" in c for c in commands) == 2
    assert "/root/.ray/auth_token" in config["file_mounts"]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    assert "auth_token" not in tracked.stdout, "a token must never be committed"
