"""deploy/kubernetes/ renders, validates strictly against each Kubernetes release it claims, and obeys
the rules schemas cannot express.

There is no cluster here: every overlay is rendered with the real `kubectl kustomize`, and each
rendered object is validated with `kubernetes-validate`'s strict schemas (unknown fields and wrong
types fail) for the releases of its overlay: 1.29-1.33 for `native` and the gateway, 1.27 and 1.28 for
`classic`. Policy tests then check what a schema accepts but a kubelet or our own design would not:
the native-sidecar shape, the probes (paths, ports, and no startup deadlock), Pod Security
"restricted" for the sidecar, the volumes, the stop-time budget, pinned images, and the gateway's
load-balancing and queue wiring. tests/e2e/test_kubernetes_podman.py runs the classic Pod for real.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from logsidecar.settings.units import parse_duration, parse_http_addr
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
KUBE = ROOT / "deploy" / "kubernetes"
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed"
)

NATIVE_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33")
CLASSIC_VERSIONS = ("1.27", "1.28")
#: What each kustomization is validated against (README "Kubernetes": the version-to-overlay table).
KUSTOMIZATIONS = {
    "overlays/native": NATIVE_VERSIONS,
    "overlays/gateway": NATIVE_VERSIONS,
    "gateway": NATIVE_VERSIONS,
    "overlays/classic": CLASSIC_VERSIONS,
}
SIDECAR = "logsidecar"
#: Where the image keeps checkpoints (docker/Dockerfile: LOGSIDECAR_STATE_DIR, the VOLUME).
STATE_DIR = "/var/lib/logsidecar"
LOG_DIR = "/var/log/apache2"
#: After the drain, closing the outputs may take this much more (the drain_timeout help text).
CLOSE_SECONDS = 1.0
#: Slack for the kubelet's signal delivery and process scheduling between one stop step and the next.
MARGIN_SECONDS = 2.0


@functools.cache
def render(kustomization: str) -> tuple[dict[str, Any], ...]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(KUBE / kustomization)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, f"kubectl kustomize {kustomization}: {out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def workloads(kustomization: str) -> list[dict[str, Any]]:
    return [d for d in render(kustomization) if d["kind"] in ("Deployment", "StatefulSet")]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(spec: dict[str, Any], name: str, *, where: str = "any") -> dict[str, Any]:
    lists = ("initContainers", "containers") if where == "any" else (where,)
    found = [c for key in lists for c in spec.get(key, []) if c["name"] == name]
    assert len(found) == 1, f"expected one container {name!r} in {lists}, found {len(found)}"
    return found[0]


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


SIDECAR_OVERLAYS = ("overlays/native", "overlays/gateway", "overlays/classic")


def sidecar_pods(overlay: str) -> list[dict[str, Any]]:
    return [pod_spec(w) for w in workloads(overlay)]


# --- rendering and schemas -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kustomization", "version"), [(k, v) for k, versions in KUSTOMIZATIONS.items() for v in versions]
)
def test_every_rendered_object_validates_strictly(kustomization: str, version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install the [test] extra")
    objects = render(kustomization)
    assert {d["kind"] for d in objects} >= ({"StatefulSet"} if kustomization == "gateway" else {"Deployment"})
    for obj in objects:
        validated = kubernetes_validate.validate(obj, version, strict=True)
        assert validated == version, (
            f"{obj['kind']}/{obj['metadata']['name']}: schema {validated}, not {version}"
        )


def test_the_validator_rejects_a_native_sidecar_before_1_28_and_a_misspelled_field() -> None:
    """The schemas are strict enough to matter: a native sidecar (restartPolicy on an init container)
    is refused by 1.27, which is why `classic` exists, and a misspelled field is refused anywhere."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install the [test] extra")
    deployment = workloads("overlays/native")[0]
    with pytest.raises(kubernetes_validate.ValidationError, match="restartPolicy"):
        kubernetes_validate.validate(deployment, "1.27", strict=True)
    misspelled = copy.deepcopy(deployment)
    container(pod_spec(misspelled), SIDECAR)["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(misspelled, "1.33", strict=True)


def test_the_component_adds_the_sidecar_to_a_statefulset_and_keeps_its_own_containers(tmp_path: Path) -> None:
    app = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "initContainers": [{"name": "migrate", "image": "example/migrate:1"}],
                    "containers": [
                        {
                            "name": "httpd",
                            "image": "example/httpd:2.4.62",
                            "volumeMounts": [{"name": "apache-logs", "mountPath": LOG_DIR}],
                        }
                    ],
                    "volumes": [{"name": "apache-logs", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }
    (tmp_path / "web.yaml").write_text(yaml.safe_dump(app))
    component = os.path.relpath(KUBE / "components" / "logsidecar", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["web.yaml"], "components": [component]})
    )
    assert KUBECTL is not None
    out = subprocess.run([KUBECTL, "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (rendered,) = yaml.safe_load_all(out.stdout)
    spec = pod_spec(rendered)
    # The sidecar comes first, so it also follows what earlier init containers leave in the logs.
    assert [c["name"] for c in spec["initContainers"]] == [SIDECAR, "migrate"]
    assert [c["name"] for c in spec["containers"]] == ["httpd"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["apache-logs"]["emptyDir"] == {"sizeLimit": "1Gi"}, "the workload's own size wins"
    assert "logsidecar-state" in volumes


# --- shape -----------------------------------------------------------------------------------------


def test_native_overlay_runs_logsidecar_as_a_native_sidecar() -> None:
    for workload in workloads("overlays/native"):
        spec = pod_spec(workload)
        sidecar = container(spec, SIDECAR, where="initContainers")
        assert sidecar.get("restartPolicy") == "Always"
        assert SIDECAR not in [c["name"] for c in spec["containers"]]


def test_classic_overlay_runs_logsidecar_as_a_second_container() -> None:
    for workload in workloads("overlays/classic"):
        spec = pod_spec(workload)
        sidecar = container(spec, SIDECAR, where="containers")
        assert "restartPolicy" not in sidecar
        assert SIDECAR not in [c["name"] for c in spec.get("initContainers", [])]


def test_native_and_classic_sidecars_differ_only_where_the_stop_order_requires() -> None:
    native = copy.deepcopy(container(pod_spec(workloads("overlays/native")[0]), SIDECAR))
    classic = copy.deepcopy(container(pod_spec(workloads("overlays/classic")[0]), SIDECAR))
    assert native.pop("restartPolicy") == "Always"
    assert "preStop" in classic.pop("lifecycle")
    classic["env"] = [e for e in classic["env"] if e["name"] != "LOGSIDECAR_EXIT_WHEN_EXISTS"]
    assert native.pop("startupProbe")["httpGet"]["path"] == "/livez"
    assert classic.pop("startupProbe")["httpGet"]["path"] == "/readyz"
    assert native == classic


# --- probes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", SIDECAR_OVERLAYS)
def test_probes_have_one_meaning_each_on_the_port_logsidecar_serves(overlay: str) -> None:
    for workload in workloads(overlay):
        sidecar = container(pod_spec(workload), SIDECAR)
        host, port = parse_http_addr(env(sidecar)["LOGSIDECAR_HTTP_ADDR"])
        # The kubelet probes the Pod's IP, not its loopback.
        assert host in ("0.0.0.0", "::"), "LOGSIDECAR_HTTP_ADDR must listen beyond loopback"
        ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
        paths = {}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            get = sidecar[probe]["httpGet"]
            assert ports.get(get["port"], get["port"]) == port, f"{probe} probes another port"
            paths[probe] = get["path"]
        # Restart only when the loop is stuck; readiness never depends on the backend (/healthz).
        assert paths["livenessProbe"] == "/livez"
        assert paths["readinessProbe"] == "/readyz"
        assert "/healthz" not in paths.values()
        if sidecar.get("restartPolicy") == "Always":
            # Apache starts only after a native sidecar's startup probe passes; /readyz waits for a
            # file Apache has not created yet: a deadlock.
            assert paths["startupProbe"] == "/livez"


# --- Pod Security, volumes, identity -----------------------------------------------------------------


@pytest.mark.parametrize("overlay", SIDECAR_OVERLAYS)
def test_sidecar_meets_pod_security_restricted(overlay: str) -> None:
    for spec in sidecar_pods(overlay):
        check_restricted(spec)


def check_restricted(spec: dict[str, Any]) -> None:
    sidecar = container(spec, SIDECAR)
    sc = sidecar["securityContext"]
    pod_sc = spec.get("securityContext", {})
    assert sc["runAsNonRoot"] is True and sc.get("runAsUser", 1) != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert (sc.get("seccompProfile") or pod_sc.get("seccompProfile")) == {"type": "RuntimeDefault"}
    assert isinstance(pod_sc.get("fsGroup"), int), "fsGroup makes the log volume readable to the sidecar"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key)
    assert not [v["name"] for v in spec["volumes"] if "hostPath" in v], "no hostPath (baseline forbids it)"


@pytest.mark.parametrize("overlay", SIDECAR_OVERLAYS)
def test_logs_and_checkpoints_live_in_their_own_sized_emptydirs(overlay: str) -> None:
    for spec in sidecar_pods(overlay):
        check_volumes(spec)


def check_volumes(spec: dict[str, Any]) -> None:
    sidecar = container(spec, SIDECAR)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    logs, state = mounts[LOG_DIR], mounts[STATE_DIR]
    assert logs["readOnly"] is True, "the sidecar never writes the app's logs"
    assert not state.get("readOnly")
    assert logs["name"] != state["name"]
    for mount in (logs, state):
        assert volumes[mount["name"]]["emptyDir"]["sizeLimit"], f"{mount['name']}: emptyDir without sizeLimit"
    writers = [c for c in spec["containers"] if c["name"] != SIDECAR]
    assert any(
        m["name"] == logs["name"] and m["mountPath"] == LOG_DIR and not m.get("readOnly")
        for c in writers
        for m in c.get("volumeMounts", [])
    ), "Apache writes the volume the sidecar reads"


def test_downward_api_gives_the_k8s_resource_attributes() -> None:
    expected = {
        "K8S_POD_NAME": "metadata.name",
        "K8S_NAMESPACE_NAME": "metadata.namespace",
        "K8S_POD_UID": "metadata.uid",
        "K8S_NODE_NAME": "spec.nodeName",
    }
    for spec in (s for overlay in SIDECAR_OVERLAYS for s in sidecar_pods(overlay)):
        values = env(container(spec, SIDECAR))
        for name, field in expected.items():
            assert values[name] == {"fieldRef": {"fieldPath": field}}, name
        app_containers = [c["name"] for c in spec["containers"] if c["name"] != SIDECAR]
        assert values["K8S_CONTAINER_NAME"] in app_containers, "k8s.container.name names the app's container"


@pytest.mark.parametrize("overlay", SIDECAR_OVERLAYS)
def test_logsidecar_accepts_every_setting_the_manifest_gives_it(overlay: str, tmp_path: Path) -> None:
    """The sidecar's environment, as the manifest sets it, through `logsidecar check-config`: a
    misspelled LOGSIDECAR_* variable (silently ignored at run time) or an invalid value fails here."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    for workload in workloads(overlay):
        values = {k: v for k, v in env(container(pod_spec(workload), SIDECAR)).items() if isinstance(v, str)}
        child_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **values}
        out = subprocess.run(
            [sys.executable, "-m", "logsidecar", "check-config", str(empty)],
            capture_output=True,
            text=True,
            env=child_env,
            timeout=60,
        )
        assert out.returncode == 0, f"{overlay}: {out.stderr}"
        assert "not a logsidecar setting" not in out.stderr, f"{overlay}: {out.stderr}"


# --- the stop-time budget --------------------------------------------------------------------------


def apache_graceful_timeout(apache: dict[str, Any]) -> float:
    args = apache.get("args", [])
    for flag, value in zip(args, args[1:], strict=False):
        if flag in ("-c", "-C") and (m := re.fullmatch(r"GracefulShutdownTimeout\s+(\d+)", value)):
            return float(m[1])
    pytest.fail("Apache's GracefulShutdownTimeout is not set: Debian's default 0 waits for ever")


def prestop_wait_bound(sidecar: dict[str, Any]) -> float:
    """The longest a `while [ ! -e F ] && [ $i -lt N ]; do sleep S` preStop hook holds the SIGTERM."""
    script = " ".join(sidecar["lifecycle"]["preStop"]["exec"]["command"])
    count = re.search(r"\$i -lt (\d+)", script)
    step = re.search(r"sleep ([\d.]+)", script)
    assert count and step, f"cannot read the preStop hook's bound: {script}"
    return int(count[1]) * float(step[1])


@pytest.mark.parametrize("overlay", SIDECAR_OVERLAYS)
def test_stop_fits_the_grace_period(overlay: str) -> None:
    """Native: Apache stops first (graceful, bounded), then the sidecar drains. Classic: the sidecar's
    preStop holds its SIGTERM until Apache has stopped (bounded), then it drains. Either way the sum,
    plus closing the outputs and a margin, fits terminationGracePeriodSeconds: the kubelet does not
    SIGKILL a drain."""
    for workload in workloads(overlay):
        spec = pod_spec(workload)
        sidecar = container(spec, SIDECAR)
        graceful = apache_graceful_timeout(container(spec, "apache", where="containers"))
        drain = parse_duration(env(sidecar)["LOGSIDECAR_DRAIN_TIMEOUT"])
        before_sigterm = graceful
        if "lifecycle" in sidecar:
            wait = prestop_wait_bound(sidecar)
            assert wait >= graceful, "the preStop hook gives up before Apache may have stopped"
            before_sigterm = wait
        budget = before_sigterm + drain + CLOSE_SECONDS + MARGIN_SECONDS
        assert budget <= spec["terminationGracePeriodSeconds"], (
            f"{overlay}: {before_sigterm:g} s before SIGTERM + {drain:g} s drain + {CLOSE_SECONDS:g} s close"
            f" + {MARGIN_SECONDS:g} s margin > terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']}"
        )


def test_classic_apache_writes_the_marker_the_sidecar_waits_for() -> None:
    spec = pod_spec(workloads("overlays/classic")[0])
    sidecar = container(spec, SIDECAR)
    marker = env(sidecar)["LOGSIDECAR_EXIT_WHEN_EXISTS"]
    assert marker.startswith(LOG_DIR + "/"), "the marker is on the shared log volume"
    assert marker in " ".join(sidecar["lifecycle"]["preStop"]["exec"]["command"])
    apache = container(spec, "apache", where="containers")
    script = apache["command"][apache["command"].index("-c") + 1]
    assert f"marker={marker}" in script
    # Removed at start (a restarted Apache must not make the sidecar exit), written after Apache exits.
    assert (
        script.index('rm -f "$marker"') < script.index("apache2-foreground") < script.index('touch "$marker"')
    )


# --- images ----------------------------------------------------------------------------------------


def test_every_image_is_pinned_and_the_sidecar_tag_is_the_project_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    for kustomization in KUSTOMIZATIONS:
        for workload in workloads(kustomization):
            spec = pod_spec(workload)
            for c in spec.get("initContainers", []) + spec["containers"]:
                image = c["image"]
                name, _, tag = image.rpartition(":") if "@" not in image else (image, "", "digest")
                assert name and tag and "/" not in tag, f"{image}: no tag"
                assert tag != "latest", f"{image}: latest is not a pin"
                assert c.get("imagePullPolicy") != "Always", (
                    f"{image}: a pinned tag needs no pull every start"
                )
                if c["name"] == SIDECAR:
                    assert image == f"logsidecar/logsidecar:{version}"
                resources = c["resources"]
                assert resources["requests"]["cpu"] and resources["requests"]["memory"], c["name"]
                assert resources["limits"]["memory"], f"{c['name']}: no memory limit"


# --- the gateway -----------------------------------------------------------------------------------


def gateway_config() -> dict[str, Any]:
    (config_map,) = [d for d in render("gateway") if d["kind"] == "ConfigMap"]
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    return config


def test_gateway_is_headless_and_the_sidecars_resolve_it_with_dns() -> None:
    (service,) = [d for d in render("gateway") if d["kind"] == "Service"]
    assert service["spec"]["clusterIP"] == "None", "a ClusterIP pins each sidecar to one gateway Pod"
    (port,) = [p["port"] for p in service["spec"]["ports"] if p["name"] == "otlp-grpc"]
    (statefulset,) = [d for d in render("gateway") if d["kind"] == "StatefulSet"]
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    for workload in workloads("overlays/gateway"):
        values = env(container(pod_spec(workload), SIDECAR))
        assert values["LOGSIDECAR_OUTPUT"] == "otlp"
        endpoint = re.fullmatch(
            r"dns:///([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)",
            values["OTEL_EXPORTER_OTLP_ENDPOINT"],
        )
        assert endpoint, values["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert endpoint[1] == service["metadata"]["name"] and int(endpoint[3]) == port


def test_gateway_limits_memory_first_rotates_connections_and_queues_on_its_own_disk() -> None:
    config = gateway_config()
    for name, pipeline in config["service"]["pipelines"].items():
        assert pipeline["processors"][0] == "memory_limiter", f"{name}: memory_limiter must come first"
    grpc = config["receivers"]["otlp"]["protocols"]["grpc"]
    assert parse_duration(grpc["keepalive"]["server_parameters"]["max_connection_age"]) > 0
    (statefulset,) = [d for d in render("gateway") if d["kind"] == "StatefulSet"]
    claims = {t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in pod_spec(statefulset)["containers"][0]["volumeMounts"]}
    for name, exporter in config["exporters"].items():
        queue = exporter["sending_queue"]
        storage = config["extensions"][queue["storage"]]
        assert queue["storage"] in config["service"]["extensions"], f"{name}: its storage is not enabled"
        assert mounts.get(storage["directory"]) in claims, (
            f"{name}: the queue is not on a PersistentVolumeClaim"
        )
        assert parse_duration(exporter["retry_on_failure"]["max_elapsed_time"]) == 0, (
            "never drop a queued batch"
        )


def test_gateway_pod_meets_pod_security_restricted() -> None:
    (statefulset,) = [d for d in render("gateway") if d["kind"] == "StatefulSet"]
    spec = pod_spec(statefulset)
    for c in spec["containers"]:
        sc = {**spec["securityContext"], **c["securityContext"]}
        assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_readme_apply_commands_name_kustomizations_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"kubectl apply -k (\S+)", readme)
    assert commands, "README names no `kubectl apply -k` command"
    for path in commands:
        assert (ROOT / shlex.split(path)[0] / "kustomization.yaml").is_file(), path
