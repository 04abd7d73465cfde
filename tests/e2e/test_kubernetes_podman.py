"""The `classic` Kubernetes Pod (deploy/kubernetes/overlays/classic) run for real with `podman kube play`:
Apache and the logsidecar container built from this tree, requests in, records out, the probes
answered inside the Pod, and Apache's stop drained to the last answered request.

There is no kubelet here; podman is the closest thing that runs a Pod manifest. What podman 4.3
(Debian bookworm) cannot take is adapted in `for_podman`, each change named there; the rest of the
rendered manifest is played as is. Ulimits: the sandbox has no CAP_SYS_RESOURCE, so podman gets a
CONTAINERS_CONF whose default_ulimits stay within ours. Images come from Docker
(`docker save | podman load`), built by scripts/build-images.sh from this worktree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import tomllib
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helpers import wait_for
from tests.support.paths import REPO_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

ROOT = REPO_ROOT
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
SIDECAR, APP = "logsidecar", "apache"
#: LOGSIDECAR_DRAIN_TIMEOUT in the manifest + 1 s to close the outputs + Apache's graceful stop (10 s).
STOP_BUDGET_S = 8 + 1 + 10


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment podman runs with, once it has answered and holds this tree's images."""
    if shutil.which("podman") is None:
        pytest.skip(
            "podman is not installed (scripts/setup.sh installs it: apt-get install podman catatonit)"
        )
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: it renders the overlay")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=8192:8192"]\n')
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, env=env, timeout=60)
    if info.returncode != 0:
        pytest.skip(f"podman cannot run here: {info.stderr.strip()[-500:]}")
    build = subprocess.run(
        ["bash", str(ROOT / "scripts/build-images.sh"), "logsidecar", "apache-demo"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert build.returncode == 0, f"building the images failed:\n{build.stderr[-4000:]}"
    load = subprocess.run(
        "docker save logsidecar/logsidecar:local logsidecar/apache-demo:local | podman load -q",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert load.returncode == 0, load.stderr
    # The manifest pins the sidecar to the project's version.
    run(env, "tag", "localhost/logsidecar/logsidecar:local", f"logsidecar/logsidecar:{VERSION}")
    yield env


def run(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert not check or result.returncode == 0, f"podman {' '.join(args)}: {result.stderr}"
    return result


def for_podman(rendered: str, name: str) -> tuple[dict[str, Any], list[str]]:
    """The rendered Deployment's Pod, with what podman 4.3 cannot take changed; returns the Pod and
    the names of the volumes podman will create for its emptyDirs."""
    (deployment,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    # A Pod as a Job's would be: restartPolicy Never, so the sidecar's own exit (code 0) stays visible
    # instead of being restarted.
    spec["restartPolicy"] = "Never"
    volumes = []
    for volume in spec["volumes"]:
        # podman turns an emptyDir into a named volume: a name of our own, removed afterwards.
        volumes.append(f"{name}-{volume['name']}")
    renames = {v["name"]: new for v, new in zip(spec["volumes"], volumes, strict=True)}
    for volume in spec["volumes"]:
        volume["name"] = renames[volume["name"]]
    for container in spec["containers"]:
        for mount in container.get("volumeMounts", []):
            mount["name"] = renames[mount["name"]]
        # podman 4.3 publishes every containerPort on the host (port 80 is not ours to take), and runs
        # probes as systemd timers, which this machine has not: the probes are asked with
        # `logsidecar health --probe` below instead.
        for key in ("ports", "livenessProbe", "readinessProbe", "startupProbe"):
            container.pop(key, None)
        # podman knows no namespace or node: fixed values instead of those two Downward API fields.
        for variable in container.get("env", []):
            field = variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if field in ("metadata.namespace", "spec.nodeName"):
                del variable["valueFrom"]
                variable["value"] = f"podman-{field.split('.')[1].lower()}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    return pod, volumes


def records(env: dict[str, str], container: str) -> list[dict[str, Any]]:
    out = run(env, "logs", container).stdout
    return [r for r in (json.loads(line) for line in out.splitlines() if line.startswith("{")) if "body" in r]


def test_classic_pod_forwards_every_answered_request_and_drains_when_apache_stops(
    podman: dict[str, str],
) -> None:
    env = podman
    name = f"lse2e-k8s-{uuid.uuid4().hex[:6]}"
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy/kubernetes/overlays/classic")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pod, volumes = for_podman(rendered, name)
    manifest = Path(f"/tmp/{name}.yaml")
    manifest.write_text(yaml.safe_dump(pod))
    sidecar, app = f"{name}-{SIDECAR}", f"{name}-{APP}"
    try:
        run(env, "kube", "play", str(manifest))

        # Inside the Pod: the probes' questions, asked the way an exec probe (or an operator) would.
        answers: list[subprocess.CompletedProcess[str]] = []

        def ready() -> bool:
            answers.append(
                run(env, "exec", sidecar, "logsidecar", "health", "--probe", "readyz", check=False)
            )
            return answers[-1].returncode == 0

        try:
            wait_for(ready, timeout=30, interval=0.5)
        except AssertionError:
            last = answers[-1]
            pytest.fail(f"`logsidecar health --probe readyz` inside the Pod: exit {last.returncode}: "
                        f"{(last.stdout + last.stderr).strip()[-1000:]}")  # fmt: skip
        livez = run(env, "exec", sidecar, "logsidecar", "health", "--probe", "livez", check=False)
        assert livez.returncode == 0, livez.stdout + livez.stderr

        ip = run(
            env, "inspect", app, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        ).stdout
        ip = ip.strip()
        assert re.fullmatch(r"[\d.]+", ip), f"no Pod IP: {ip!r}"

        answered: list[str] = []

        def request(path: str) -> None:
            try:
                urllib.request.urlopen(f"http://{ip}{path}", timeout=5).read()
            except urllib.error.HTTPError:
                pass  # a 404 is an answer: Apache logged it
            except OSError:
                return  # refused or cut: Apache is stopping, nothing promised
            answered.append(path)

        for i in range(200):
            request(f"/k8s-podman/{name}/{i}")
        before_stop = list(answered)
        assert len(before_stop) == 200

        # Traffic while Apache stops: what it answered, it logged before exiting.
        stop_traffic = threading.Event()

        def traffic() -> None:
            i = 200
            while not stop_traffic.is_set():
                request(f"/k8s-podman/{name}/{i}")
                i += 1

        sender = threading.Thread(target=traffic, daemon=True)
        sender.start()
        wait_for(lambda: len(answered) >= 250, timeout=30, message="traffic before the stop")
        # The image's STOPSIGNAL (SIGWINCH, graceful) reaches the overlay's wrapper, which writes the
        # marker after Apache exits; the sidecar then drains and exits by itself.
        run(env, "stop", "-t", str(STOP_BUDGET_S), app, timeout=60)
        stop_traffic.set()
        sender.join(10)
        exit_code = run(env, "wait", sidecar, timeout=STOP_BUDGET_S + 30).stdout.strip()
        assert exit_code == "0", f"the sidecar exited {exit_code}"

        got = records(env, sidecar)
        paths = Counter(
            r["attributes"].get("url.path")
            for r in got
            if str(r["attributes"].get("url.path", "")).startswith("/k8s")
        )
        uids = Counter(r["attributes"]["log.record.uid"] for r in got)
        missing = [p for p in answered if paths[p] == 0]
        duplicates = sum(n - 1 for n in uids.values() if n > 1)
        print(f"podman classic Pod: requests answered {len(answered)}, records received {sum(paths.values())}, "
              f"missing {len(missing)}, duplicates {duplicates}")  # fmt: skip
        assert not missing, f"{len(missing)} answered requests never arrived, e.g. {missing[:3]}"
        assert duplicates == 0
        assert sum(paths.values()) == len(answered)

        resource = got[-1]["resource"]
        assert resource["k8s.pod.name"] == name
        assert resource["k8s.container.name"] == APP
        assert resource["k8s.namespace.name"] == "podman-namespace"
        assert resource["k8s.pod.uid"]
    finally:
        run(env, "pod", "rm", "-f", name, check=False, timeout=60)
        run(env, "volume", "rm", "-f", *volumes, check=False)
        manifest.unlink(missing_ok=True)
