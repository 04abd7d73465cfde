"""The Grafana dashboard (deploy/grafana/logsidecar.json) queries only metrics and labels that exist:
logsidecar's self-metrics as its registry serves them, Prometheus' `up`, and the access-log-derived
HTTP metrics under the names the OTel Collector's Prometheus exporter gives them (dots become
underscores; the unit `s` adds `_seconds`; a monotonic sum adds `_total`; attributes become labels)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from logsidecar.metrics import aggregate
from tests.support.promql import labels_in, metric_names_in
from tests.support.served_metrics import self_metric_labels, self_metric_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "logsidecar.json"

SCRAPE_LABELS = {"job", "instance", "le"}


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
