"""The fleet's alert rules (deploy/prometheus/alerts.yml): promtool's own unit tests of them pass, the
rules name only metrics logsidecar serves, and the Kubernetes PrometheusRule carries the same rules.
promtool is Debian's `prometheus` package (scripts/setup.sh installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.promql import metric_names_in
from tests.support.served_metrics import self_metric_names

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
PROMETHEUS_RULE = ROOT / "deploy" / "kubernetes" / "monitoring" / "prometheusrule.yaml"


def rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; scripts/setup.sh does)")
    return found


def test_promtool_checks_the_rules(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_alerts_pass(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", ALERTS_TEST.name], capture_output=True, text=True, cwd=ALERTS_TEST.parent
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing() -> None:
    tested = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    firing = {
        case["alertname"] for test in tested for case in test["alert_rule_test"] if case.get("exp_alerts")
    }
    assert firing == {rule["alert"] for rule in rules()}


def test_the_rules_name_only_metrics_logsidecar_serves() -> None:
    served = self_metric_names() | {"up"}
    for rule in rules():
        names = metric_names_in(str(rule["expr"]))
        assert names, rule["alert"]
        assert names <= served, (rule["alert"], names - served)


def test_the_prometheusrule_carries_the_same_rules() -> None:
    document = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert (document["apiVersion"], document["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert document["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


def test_the_podmonitor_scrapes_the_port_the_sidecar_serves_metrics_on() -> None:
    monitor = yaml.safe_load((PROMETHEUS_RULE.parent / "podmonitor.yaml").read_text())
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    keep = [r for r in endpoint["relabelings"] if r.get("action") == "keep"]
    assert keep and re.fullmatch(keep[0]["regex"], "logsidecar")
