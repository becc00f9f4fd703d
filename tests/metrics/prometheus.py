"""A real Prometheus server on loopback for the tests, run from the repository's own
config (``dashboards/prometheus.yml``) with its service-discovery file swapped for one
the test writes, in Ray's format, naming the targets it wants scraped."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.s3 import _terminate
from tests.serve.support import free_port

CONFIG = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus.yml"
START_TIMEOUT_S = 30.0
SCRAPE_INTERVAL = "1s"


def binary() -> str | None:
    """The ``prometheus`` executable on PATH (Debian's package puts it in /usr/bin)."""
    return shutil.which("prometheus")


class Prometheus:
    """A running server; :meth:`value` asks its HTTP API for one number."""

    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self._process = process
        self.url = url

    @classmethod
    def start(cls, targets: list[str], workdir: Path) -> Prometheus:
        """Scrape ``targets`` (HOST:PORT) every second; wait until the server is ready."""
        discovery = workdir / "discovery.json"
        discovery.write_text(json.dumps([{"labels": {"job": "ray"}, "targets": targets}]))
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(_config(discovery)))
        port = free_port()
        exe = binary()
        assert exe is not None
        with open(workdir / "prometheus.log", "wb") as log:
            process = subprocess.Popen(
                [exe, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        server = cls(process, f"http://127.0.0.1:{port}")
        try:
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                if httpx.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready in {START_TIMEOUT_S:.0f} s "
                           f"(exit code {self._process.poll()})")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        answer = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        answer.raise_for_status()
        body = answer.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single number ``expr`` yields (wrap it in ``sum(...)``), or None."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        _terminate(self._process)


def _config(discovery: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    config["global"]["scrape_interval"] = SCRAPE_INTERVAL
    config["global"]["evaluation_interval"] = SCRAPE_INTERVAL
    (job,) = config["scrape_configs"]
    job["file_sd_configs"] = [{"files": [str(discovery)], "refresh_interval": "1s"}]
    return config
