"""A real Prometheus scraping a real local Ray while the batch job and the endpoint run:
the counters it holds equal the job's ``_summary.json`` and the requests made."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scribe.config import TranscribeOptions
from scribe.errors import error_reason
from tests.media import not_audio, speech, write_audio
from tests.metrics.prometheus import Prometheus
from tests.metrics.test_dashboard import _exprs, grafana_to_promql, metric_names
from tests.s3 import _terminate
from tests.serve.support import EXAMPLES, free_port

pytestmark = [pytest.mark.ray, pytest.mark.serve,
              pytest.mark.programs("prometheus", install="apt-get install prometheus")]

CHILD_START_TIMEOUT_S = 420.0  # the job, then Serve, on a busy 2-core machine
POLL_TIMEOUT_S = 90.0  # Ray's 1 s report interval here, 1 s scrapes, and slack
ROUTE = "/v1/audio/transcriptions"
# Series this run cannot have: Ray exports a counter once it is incremented, and here no
# GPU is held and each model actor runs a single batch (idle time counts between batches).
NOT_HERE = {"ray_scribe_job_gpu_seconds_total", "ray_scribe_job_model_idle_seconds_total"}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two good sessions and one that is not audio."""
    root = tmp_path_factory.mktemp("metrics-in")
    write_audio(root / "a.wav", speech(12.0, seed=1))
    write_audio(root / "b.flac", speech(7.0, seed=2))
    not_audio(root / "broken.mp3")
    return root


@pytest.fixture(scope="module")
def stack(sessions: Path, test_options: TranscribeOptions,
          tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Prometheus, dict[str, int], Path]]:
    """Prometheus first (it must see the job's actors before they exit), then the child
    Ray that runs the job and serves, then three requests; all stopped at the end."""
    work = tmp_path_factory.mktemp("metrics")
    metrics_port = free_port()
    prometheus = Prometheus.start([f"127.0.0.1:{metrics_port}"], work)
    child = None
    try:
        env = {**os.environ, "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
               "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        env.pop("RAY_ADDRESS", None)
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.metrics.ray_child", str(sessions), str(work / "out"),
             str(metrics_port), str(free_port()), test_options.model_dump_json()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        yield prometheus, _requests(_serve_url(child)), work / "out"
    finally:
        if child is not None:
            _stop(child)
        prometheus.stop()


def _serve_url(child: subprocess.Popen[bytes]) -> str:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], CHILD_START_TIMEOUT_S)
    line = child.stdout.readline() if ready else b""
    assert line, f"the child Ray did not come up (exit code {child.poll()})"
    url: str = json.loads(line)["url"]
    return url


def _stop(child: subprocess.Popen[bytes]) -> None:
    assert child.stdin is not None
    child.stdin.close()  # the child shuts Serve and Ray down, then exits
    try:
        child.wait(timeout=60)
    finally:
        _terminate(child)


def _wait_for(prometheus: Prometheus, expected: dict[str, Callable[[float | None], bool]]
              ) -> dict[str, float | None]:
    """Poll until every query's value passes its check (bounded); the last values."""
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        values = {expr: prometheus.value(expr) for expr in expected}
        if all(check(values[expr]) for expr, check in expected.items()):
            return values
        if time.monotonic() > deadline:
            return values
        time.sleep(1.0)


def _near(target: float, rel: float = 1e-6) -> Callable[[float | None], bool]:
    return lambda v: v is not None and v == pytest.approx(target, rel=rel, abs=1e-9)


def _requests(url: str) -> dict[str, int]:
    """Two good transcriptions and one upload that is not audio; their statuses."""
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=120) as http:
        for name, body in (("ok1", (EXAMPLES / "jfk.flac").read_bytes()),
                           ("ok2", (EXAMPLES / "jfk.flac").read_bytes()),
                           ("bad", b"this is not audio" * 100)):
            answer = http.post(ROUTE, files={"file": ("x.flac", body)},
                               data={"model": "whisper-1"})
            statuses[name] = answer.status_code
    return statuses


def test_counters_in_prometheus_equal_the_summary_and_the_requests(stack: Any) -> None:
    prometheus, statuses, out = stack
    assert statuses == {"ok1": 200, "ok2": 200, "bad": 400}
    summary = json.loads((out / "_summary.json").read_text())
    reasons = {error_reason(f["error"]) for f in summary["failures"]}
    expected: dict[str, Callable[[float | None], bool]] = {
        "sum(ray_scribe_job_audio_seconds_total)": _near(summary["audio_hours"] * 3600),
        "sum(ray_scribe_job_speech_seconds_total)": _near(summary["speech_hours"] * 3600),
        'sum(ray_scribe_job_sessions_total{status="ok"})': _near(summary["sessions"]["ok"]),
        'sum(ray_scribe_job_sessions_total{status="error"})':
            _near(summary["sessions"]["failed"]),
        "sum(ray_scribe_job_cost_usd_total)": _near(summary["cost_usd"], rel=0.01),
        # The job's actors have exited by now: their last samples, not the current ones.
        "sum(max_over_time(ray_scribe_job_preprocess_audio_seconds_total[1h]))":
            _near(summary["audio_hours"] * 3600),
        "sum(max_over_time(ray_scribe_job_model_chunks_total[1h]))": lambda v: bool(v),
        'sum(ray_scribe_online_requests_total{code="ok"})': _near(2),
        'sum(ray_scribe_online_requests_total{code!="ok"})': _near(1),
        f'sum(ray_serve_num_http_requests_total{{route="{ROUTE}"}})': _near(3),
        "sum(ray_serve_http_request_latency_ms_count)": lambda v: bool(v),
    }
    values = _wait_for(prometheus, expected)
    failed = {expr: values[expr] for expr, check in expected.items() if not check(values[expr])}
    series = prometheus.query('{__name__=~"ray_scribe_job_.*_total"}')
    assert not failed, f"summary {summary}; got {failed}; series {series}"
    by_reason = prometheus.query('sum by (reason) (ray_scribe_job_sessions_total'
                                 '{status="error"})')
    assert {r["metric"]["reason"] for r in by_reason} == reasons == {"audio_decode_error"}


def test_every_dashboard_query_runs_and_its_series_exist(stack: Any) -> None:
    """Each expression of the dashboard is accepted by Prometheus, and every application
    and Serve series it names was scraped (GPU series need a GPU: not here)."""
    prometheus, _, _ = stack
    exprs = _exprs()
    for expr in exprs:
        prometheus.query(grafana_to_promql(expr))
    names = {name for expr in exprs for name in metric_names(expr)}
    expected = {name for name in names if not name.startswith("ray_node_")} - NOT_HERE
    values = _wait_for(prometheus, {f"count(max_over_time({name}[1h]))": bool
                                    for name in sorted(expected)})
    assert all(values.values()), values
