"""The Grafana dashboard (deploy/grafana/logsidecar.json) queries only metrics and labels that exist:
logsidecar's self-metrics as its registry serves them, Prometheus' `up`, and the access-log-derived
HTTP metrics under the names the OTel Collector's Prometheus exporter gives them (dots become
underscores; the unit `s` adds `_seconds`; a monotonic sum adds `_total`; attributes become labels)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from logsidecar.health import HealthMonitor
from logsidecar.metrics import aggregate
from logsidecar.service.metrics_registry import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "logsidecar.json"

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
}
SCRAPE_LABELS = {"job", "instance", "le"}


def self_metric_names() -> set[str]:
    """Every sample name logsidecar's /metrics can serve."""
    metrics = Metrics(health=HealthMonitor())
    names = set()
    for family in metrics.registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(
            family.type, ("",)
        )
        names |= {family.name + suffix for suffix in suffixes}
    return names


def self_metric_labels() -> set[str]:
    source = (ROOT / "logsidecar" / "service" / "metrics_registry.py").read_text()
    declared = {
        label
        for group in re.findall(r"\[((?:\"\w+\",? ?)+)\]", source)
        for label in re.findall(r"\"(\w+)\"", group)
    }
    return declared | {label for label in re.findall(r"\(\(\"(\w+)\", ", source)}


def prometheus_name(otel_name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", otel_name)


def derived_metric_names() -> set[str]:
    duration = prometheus_name(aggregate.DURATION_METRIC) + "_seconds"  # unit "s"
    return {duration + suffix for suffix in ("_bucket", "_sum", "_count")} | {
        prometheus_name(aggregate.REQUESTS_METRIC) + "_total"
    }


def derived_labels() -> set[str]:
    attributes = (
        aggregate.METHOD,
        aggregate.STATUS,
        aggregate.STATUS_CLASS,
        aggregate.ROUTE,
        aggregate.SERVER_ADDRESS,
    )
    return {prometheus_name(attribute) for attribute in attributes}


def metric_names_in(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, keywords, labels or strings)."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def labels_in(expr: str) -> set[str]:
    selectors = re.findall(r"\{([^}]*)\}", expr)
    labels = {name for selector in selectors for name in re.findall(r"(\w+)\s*[=!]~?", selector)}
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {name.strip() for name in grouping.split(",") if name.strip()}
    return labels


def queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    found += [
        (v["name"], v["query"]["query"]) for v in dashboard["templating"]["list"] if v["type"] == "query"
    ]
    return found


def test_the_dashboard_queries_only_metrics_that_exist() -> None:
    known = self_metric_names() | derived_metric_names() | {"up"}
    used = set()
    for title, expr in queries():
        expr = re.sub(r"label_values\(([^,]+),[^)]*\)", r"\1", expr)
        names = metric_names_in(expr)
        assert names, title
        assert names <= known, (title, names - known)
        used |= names
    # Both halves are on the dashboard: self-metrics and the derived HTTP metrics.
    assert used & derived_metric_names() and len(used & self_metric_names()) >= 10


def test_the_dashboard_groups_and_filters_only_by_labels_that_exist() -> None:
    known = self_metric_labels() | derived_labels() | SCRAPE_LABELS
    for title, expr in queries():
        assert labels_in(expr) <= known, (title, labels_in(expr) - known)


def test_the_expression_reader_finds_names_and_only_names() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, sink) (rate(a_bucket{job=~"$job"}[5m]))) / b_total'
    assert metric_names_in(expr) == {"a_bucket", "b_total"}
    assert labels_in(expr) == {"le", "sink", "job"}
