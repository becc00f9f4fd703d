"""The Grafana dashboard loads as Grafana's import expects, and asks only for metrics that
exist: the application's (the catalogue in ``scribe.telemetry``) or Ray's documented ones."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scribe import telemetry

pytestmark = pytest.mark.unit

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "ray-scribe.json"
# Ray's own metrics the dashboard uses, as Ray documents them:
# https://docs.ray.io/en/latest/ray-observability/reference/system-metrics.html (node GPUs)
# https://docs.ray.io/en/latest/serve/monitoring.html (Serve's HTTP requests and latency)
RAY_DOCUMENTED = {
    "ray_node_gpus_utilization", "ray_node_gram_used",
    "ray_serve_num_http_requests_total", "ray_serve_http_request_latency_ms_bucket",
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "and", "or", "unless", "offset", "le"}
# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}


def _dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return board


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = _dashboard()["panels"]
    return panels


def _exprs() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"[^"]*"', "", expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = re.findall(r"(?<![\w$])([A-Za-z_:][\w:]*)\b(?!\s*\()", text)
    return {n for n in names if n not in PROMQL_WORDS}


def test_the_metric_name_reader() -> None:
    expr = ('sum by (reason) (rate(ray_scribe_job_sessions_total{status!="ok"}[5m])) '
            '/ ignoring(stage) group_left vector(0.36) + on(ip) ray_node_gram_used')
    assert metric_names(expr) == {"ray_scribe_job_sessions_total", "ray_node_gram_used"}


def test_import_fields_and_a_prometheus_input() -> None:
    board = _dashboard()
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    (source,) = board["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS", "datasource", "prometheus")


def test_every_panel_has_a_datasource_targets_a_unique_id_and_a_place() -> None:
    panels = _panels()
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["title"] and panel["type"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]
        cells |= _cells(panel, cells)


def _cells(panel: dict[str, Any], taken: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The grid cells a panel covers; it must fit the 24-column grid and overlap none."""
    grid = panel["gridPos"]
    x, y, w, h = (grid[k] for k in ("x", "y", "w", "h"))
    assert all(isinstance(v, int) for v in (x, y, w, h)), panel["title"]
    assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 24, panel["title"]
    mine = {(col, row) for col in range(x, x + w) for row in range(y, y + h)}
    assert not mine & taken, f"{panel['title']} overlaps another panel"
    return mine


def test_every_metric_is_the_applications_or_one_ray_documents() -> None:
    known = telemetry.exported_names() | RAY_DOCUMENTED
    used = {name for expr in _exprs() for name in metric_names(expr)}
    assert used - known == set()
    # the dashboard shows each part of the application
    for prefix in ("ray_scribe_job_", "ray_scribe_online_", "ray_node_", "ray_serve_"):
        assert any(name.startswith(prefix) for name in used), prefix


def grafana_to_promql(expr: str) -> str:
    """An expression as Prometheus receives it, Grafana's variables filled in."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


@pytest.mark.programs("promtool", install="apt-get install prometheus")
def test_every_expression_parses_as_promql(tmp_path: Path) -> None:
    rules = [{"record": f"scribe:check:{i}", "expr": grafana_to_promql(expr)}
             for i, expr in enumerate(_exprs())]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(["promtool", "check", "rules", str(path)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
