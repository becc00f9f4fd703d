"""The Ray side's connection checks: an address that answers or not, the token, and a
``ray start`` record whose cluster died (found in a second, skipped for a local Ray)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ray_jobs import cluster

pytestmark = pytest.mark.unit


@pytest.fixture
def listening_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ray_is_reachable_or_says_how_to_start_it(listening_port: int,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # no `ray start` record here
    assert cluster.check_ray("").status == "ok"
    assert cluster.check_ray("local").status == "ok", "Ray's word for a Ray of its own"
    assert cluster.check_ray(f"127.0.0.1:{listening_port}").status == "ok"
    assert cluster.check_ray(f"http://127.0.0.1:{listening_port}").status == "ok"
    down = cluster.check_ray(f"127.0.0.1:{_closed_port()}")
    assert down.status == "fail" and "ray-node.sh head" in down.fix
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    tokenless = cluster.check_ray(f"127.0.0.1:{listening_port}")
    assert tokenless.status == "fail" and "get-auth-token" in tokenless.fix
    monkeypatch.setenv("RAY_AUTH_TOKEN", "abc")
    assert cluster.check_ray(f"127.0.0.1:{listening_port}").status == "ok"


def _record(tmp_path: Path, address: str) -> None:
    """What `ray start` leaves: the cluster's address in <temp dir>/ray/ray_current_cluster."""
    (tmp_path / "ray").mkdir(exist_ok=True)
    (tmp_path / "ray" / "ray_current_cluster").write_text(address + "\n")


def test_a_recorded_cluster_that_died_is_found_in_a_second(
        listening_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import time

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert cluster.ray_address_file() == tmp_path / "ray" / "ray_current_cluster"
    _record(tmp_path, f"127.0.0.1:{listening_port}")
    assert cluster.dead_recorded_cluster() is None
    alive = cluster.check_ray("")
    assert alive.status == "ok" and "joins" in alive.message
    dead = f"127.0.0.1:{_closed_port()}"
    _record(tmp_path, dead)
    start = time.perf_counter()
    assert cluster.dead_recorded_cluster() == dead
    warned = cluster.check_ray("")
    assert time.perf_counter() - start < 3
    assert warned.status == "warn" and "ray stop" in warned.fix and dead in warned.message
    # asked for by "auto", the dead record is a failure: the job stops at once
    assert cluster.check_ray("auto").status == "fail"
    # with no address asked for, the job and `scribe serve` start a Ray of their own
    assert cluster.init_address() == "local"
    monkeypatch.setenv("RAY_ADDRESS", dead)
    assert cluster.init_address() is None
