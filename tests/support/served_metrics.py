"""What logsidecar's /metrics can serve: every sample name (`self_metric_names`) and every label
(`self_metric_labels`), read from the registry itself and from its source."""

from __future__ import annotations

import re

from logsidecar.health import HealthMonitor
from logsidecar.service.metrics_registry import Metrics
from tests.support.paths import REPO_ROOT


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
    source = (REPO_ROOT / "logsidecar" / "service" / "metrics_registry.py").read_text()
    declared = {
        label
        for group in re.findall(r"\[((?:\"\w+\",? ?)+)\]", source)
        for label in re.findall(r"\"(\w+)\"", group)
    }
    return declared | {label for label in re.findall(r"\(\(\"(\w+)\", ", source)}
