"""What the serve tier's fixtures and tests share: the test server's shape and limits,
and a look at the processes it runs."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scribe.config import ResourceConfig, TranscribeOptions
from serve_app.settings import ServeConfig, ServerOptions

API_KEY = "sk-test-0123456789"
MAX_BODY_BYTES = 32 * 1024 * 1024
# Ingress bounds small enough for the overload test to fill: 16 requests in progress
# (the 16-client test fits), 8 waiting, the rest answered 503 at once.
INGRESS_ONGOING = 16
INGRESS_QUEUED = 8
# Realtime sessions per ingress replica and their idle timeout: small, for the limit tests.
REALTIME_SESSIONS = 3
REALTIME_IDLE_S = 4.0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sessions"


@dataclass(frozen=True)
class Server:
    """Where the test server listens, and its config."""

    url: str
    locked_url: str
    config: ServeConfig

    @property
    def api(self) -> str:
        return self.url + "/v1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every live process."""
    table = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[0] != "Z":
            table[int(proc.name)] = (int(fields[1]), cmdline)
    return table


def descendants(root: int) -> dict[int, bytes]:
    """Live processes under ``root``: pid -> command line."""
    table = _processes()
    found: dict[int, bytes] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cmdline) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = cmdline
                frontier.append(pid)
    return found


def serve_processes() -> dict[int, bytes]:
    """Serve's controller, proxy and replicas among this process's Ray workers."""
    names = (b"ray::ServeController", b"ray::ProxyActor", b"ray::ServeReplica")
    return {pid: cmd for pid, cmd in descendants(os.getpid()).items()
            if cmd.startswith(names)}


def wait_for_serve_to_exit(timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while serve_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not serve_processes(), f"outlived serve.shutdown(): {serve_processes()}"


def serve_config(options: TranscribeOptions, *, model_batch_size: int = 8, **server: Any
                 ) -> ServeConfig:
    """The test app's config: the shared test options, small batches and limits."""
    return ServeConfig(
        transcribe=options,
        resources=ResourceConfig(preprocess_cpus=0.5, model_batch_size=model_batch_size),
        server=ServerOptions(max_body_bytes=MAX_BODY_BYTES, batch_wait_timeout_s=0.05,
                             retry_after_s=2, realtime_max_sessions=REALTIME_SESSIONS,
                             realtime_idle_timeout_s=REALTIME_IDLE_S, **server),
    )


@contextmanager
def served(options: TranscribeOptions, name: str, *, model_batch_size: int = 8
           ) -> Iterator[str]:
    """The Serve app for ``options`` (and ``model_batch_size``) on 127.0.0.1 and a free
    port, on the Ray already started; yields its ``/v1`` URL and shuts Serve down, every
    process gone, on exit."""
    from ray import serve

    from serve_app.app import build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_app(serve_config(options, model_batch_size=model_batch_size)),
                  name=name, route_prefix="/")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        wait_for_serve_to_exit()
