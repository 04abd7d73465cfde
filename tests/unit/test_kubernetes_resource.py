"""The Pod's identity (Downward API variables) as k8s.* resource attributes, and how they merge with
OTEL_RESOURCE_ATTRIBUTES and the configured resource."""

from __future__ import annotations

from pathlib import Path

from logsidecar.service.plan import build_plan
from logsidecar.settings.kubernetes_env import kubernetes_resource
from logsidecar.settings.otel_env import resolve_otlp_settings
from logsidecar.settings.sources import resolve

DOWNWARD_API = {
    "K8S_POD_NAME": "web-7d9f-abcde",
    "K8S_NAMESPACE_NAME": "shop",
    "K8S_POD_UID": "0b9c6f2e-4f7a-4d7e-9f59-0d3c1f1e8a11",
    "K8S_NODE_NAME": "node-3",
    "K8S_CONTAINER_NAME": "logsidecar",
}


def test_each_downward_api_variable_becomes_its_semantic_convention_attribute() -> None:
    assert kubernetes_resource(DOWNWARD_API) == {
        "k8s.pod.name": "web-7d9f-abcde",
        "k8s.namespace.name": "shop",
        "k8s.pod.uid": "0b9c6f2e-4f7a-4d7e-9f59-0d3c1f1e8a11",
        "k8s.node.name": "node-3",
        "k8s.container.name": "logsidecar",
    }


def test_unset_or_blank_variables_add_nothing() -> None:
    assert kubernetes_resource({}) == {}
    assert kubernetes_resource({"K8S_POD_NAME": "  ", "K8S_NODE_NAME": " node-3\n"}) == {
        "k8s.node.name": "node-3"
    }
    assert resolve_otlp_settings({}, {}, hostname="h").resource == {
        "service.name": "apache-httpd",
        "host.name": "h",
    }


def test_otel_resource_attributes_override_the_downward_api() -> None:
    env = {**DOWNWARD_API, "OTEL_RESOURCE_ATTRIBUTES": "k8s.node.name=from-otel,deployment.environment=prod"}
    resource = resolve_otlp_settings({}, env, hostname="web-7d9f-abcde").resource
    assert resource == {
        "service.name": "apache-httpd",
        "host.name": "web-7d9f-abcde",
        "k8s.pod.name": "web-7d9f-abcde",
        "k8s.namespace.name": "shop",
        "k8s.pod.uid": "0b9c6f2e-4f7a-4d7e-9f59-0d3c1f1e8a11",
        "k8s.node.name": "from-otel",
        "k8s.container.name": "logsidecar",
        "deployment.environment": "prod",
    }


def test_the_plan_puts_them_on_every_sink_and_the_configured_resource_wins(tmp_path: Path) -> None:
    env = {**DOWNWARD_API, "LOGSIDECAR_RESOURCE": "k8s.container.name=renamed", "HOME": str(tmp_path)}
    settings = resolve(None, env, {"paths": (str(tmp_path / "*.log"),), "outputs": ("stdout", "otlp")})
    plan = build_plan(settings.model_copy(update={"docker_metadata": "off"}), env)
    resources = [plan.pipeline_options.resource, *(sink.settings.resource for sink in plan.sinks[1:])]  # type: ignore[attr-defined]
    for resource in resources:
        assert resource["k8s.pod.uid"] == DOWNWARD_API["K8S_POD_UID"]
        assert resource["k8s.container.name"] == "renamed"
