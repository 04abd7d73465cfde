"""The Pod's identity from the Downward API environment, as OpenTelemetry resource attributes.

A Pod spec puts its own name, namespace, uid and node in the environment with `fieldRef`
(`metadata.name`, `metadata.namespace`, `metadata.uid`, `spec.nodeName`); the container's name has
no fieldRef and is written as a literal value. The variable names are the ones the OpenTelemetry
Operator and Collector examples use, and the attribute names are the semantic conventions' (k8s.*).

Precedence (see `settings.otel_env`): these come after the defaults (service.name, host.name) and
before OTEL_RESOURCE_ATTRIBUTES, so an explicit OTEL_RESOURCE_ATTRIBUTES value still wins. A variable
that is unset or blank adds nothing: outside Kubernetes the resource is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Downward API variable -> resource attribute (OTel semantic conventions)
K8S_RESOURCE_VARIABLES = {
    "K8S_POD_NAME": "k8s.pod.name",
    "K8S_NAMESPACE_NAME": "k8s.namespace.name",
    "K8S_POD_UID": "k8s.pod.uid",
    "K8S_NODE_NAME": "k8s.node.name",
    "K8S_CONTAINER_NAME": "k8s.container.name",
}


def kubernetes_resource(env: Mapping[str, str]) -> dict[str, str]:
    """The k8s.* attributes whose variable is set to more than blanks, values stripped."""
    return {
        attribute: env[variable].strip()
        for variable, attribute in K8S_RESOURCE_VARIABLES.items()
        if env.get(variable, "").strip()
    }
