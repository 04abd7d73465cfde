"""`logsidecar docker ...` against a real Docker engine.

Every object a test creates carries the label `io.logsidecar.test-run=<run id>` (or a name with the
run id) and is removed at the end, so runs do not see each other's leftovers.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from logsidecar.containers.image_check import check_image
from logsidecar.containers.mounts import resolve_log_dir
from tests.support.busybox import ensure_busybox_image
from tests.support.paths import REPO_ROOT, SCRIPTS

pytestmark = pytest.mark.docker

RUN = uuid.uuid4().hex[:8]
LABEL = {"io.logsidecar.test-run": RUN}


def _engine():
    import docker

    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        subprocess.run(["bash", str(SCRIPTS / "ensure-docker.sh")], check=False)
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"no Docker engine could be started: {exc}")
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture(scope="module")
def client():
    client = _engine()
    yield client
    for container in client.containers.list(all=True, filters={"label": f"io.logsidecar.test-run={RUN}"}):
        container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"label": f"io.logsidecar.test-run={RUN}"}):
        try:
            volume.remove(force=True)
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture(scope="module")
def busybox(client):
    return ensure_busybox_image(client)


@pytest.fixture(scope="module")
def volume_image(client, busybox):
    """busybox + `VOLUME /var/log/apache2`: the data-only log volume pattern."""
    tag = f"logsidecar-test-logvol:{RUN}"
    _build_dockerfile(client, f'FROM {busybox}\nVOLUME /var/log/apache2\nCMD ["true"]\n', tag)
    yield tag
    client.images.remove(tag, force=True)


def logsidecar(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "logsidecar", *args], capture_output=True, text=True, timeout=120, **kw
    )


def _build_dockerfile(client, dockerfile: str, tag: str) -> None:
    """Build `dockerfile` (no context) as `tag`, labelled as this run's."""
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, labels=LABEL)


def _run(client, image, name, labels=None, **kw):
    return client.containers.run(
        image, name=f"{name}-{RUN}", detach=True, labels={**LABEL, **(labels or {})}, **kw
    )


def test_check_image_flags_a_write_into_a_volume_after_volume(client, busybox):
    bad = f"logsidecar-test-badvol:{RUN}"
    good = f"logsidecar-test-goodvol:{RUN}"
    _build_dockerfile(
        client,
        f"FROM {busybox}\nRUN mkdir -p /var/log/apache2\nVOLUME /var/log/apache2\n"
        "RUN echo started > /var/log/apache2/access.log\n",
        bad,
    )
    _build_dockerfile(
        client,
        f"FROM {busybox}\nRUN mkdir -p /var/log/apache2 && echo ok > /var/log/apache2/access.log\n"
        "VOLUME /var/log/apache2\nRUN echo elsewhere > /tmp/x\n",
        good,
    )
    try:
        report = check_image(client, bad)
        assert report.volumes == ["/var/log/apache2"]
        assert [(f.volume, f.kind) for f in report.findings] == [("/var/log/apache2", "run")]
        assert "echo started > /var/log/apache2/access.log" in report.findings[0].instruction

        out = logsidecar("docker", "check-image", bad)
        print(out.stdout)
        assert out.returncode == 1
        assert (
            "writes /var/log/apache2/access.log into /var/log/apache2 after VOLUME declared it" in out.stdout
        )

        out = logsidecar("docker", "check-image", good)
        print(out.stdout)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "VOLUME /var/log/apache2" in out.stdout
        assert check_image(client, good).findings == []
    finally:
        client.images.remove(bad, force=True)
        client.images.remove(good, force=True)


def test_resolves_a_volume_inherited_through_two_volumes_from_hops(client, busybox, volume_image):
    data = _run(client, volume_image, "logvol", command=["true"])
    data.wait(timeout=30)
    writer = _run(client, busybox, "writer", command=["sleep", "600"], volumes_from=[data.id])
    hop2 = _run(client, busybox, "hop2", command=["sleep", "600"], volumes_from=[f"{writer.id}:ro"])
    data.reload(), writer.reload(), hop2.reload()
    volume_name = next(m["Name"] for m in data.attrs["Mounts"] if m["Destination"] == "/var/log/apache2")
    for container in (writer, hop2):
        location = resolve_log_dir(container.attrs, "/var/log/apache2")
        assert location.mount_type == "volume"
        assert location.volume_name == volume_name
        assert location.host_dir == client.api.inspect_volume(volume_name)["Mountpoint"]
    assert resolve_log_dir(hop2.attrs, "/var/log/apache2").read_write is False

    # what the writer writes is what the host path holds
    writer.exec_run(["sh", "-c", "echo hello-from-writer >> /var/log/apache2/access.log"])
    host_file = Path(resolve_log_dir(hop2.attrs, "/var/log/apache2").host_dir) / "access.log"
    assert host_file.read_text() == "hello-from-writer\n"


def test_attach_reports_a_log_dir_that_is_not_on_a_mount(client, busybox):
    lonely = _run(client, busybox, "lonely", command=["sleep", "600"])
    out = logsidecar("docker", "attach", lonely.name)
    print(out.stderr)
    assert out.returncode == 1
    assert "has no volume or bind mount covering /var/log/apache2" in out.stderr
    assert "Mount a volume at /var/log/apache2" in out.stderr


def test_attach_says_when_logs_go_to_stdout(client, busybox, tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    os.symlink("/dev/stdout", logdir / "access.log")
    (logdir / "error.log").write_text("")
    container = _run(
        client,
        busybox,
        "stdoutlogs",
        command=["sleep", "600"],
        volumes={str(logdir): {"bind": "/var/log/apache2", "mode": "rw"}},
    )
    seen = _attach_stderr(container.name, tmp_path, until="docker logs")
    assert "access.log -> /dev/stdout" in seen
    assert f"docker logs {container.name}" in seen


def test_attach_tails_a_bind_mounted_log_dir_with_container_metadata(client, busybox, tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    container = _run(
        client,
        busybox,
        "apache",
        command=["sleep", "600"],
        labels={**LABEL, "tier": "web"},
        volumes={str(logdir): {"bind": "/var/log/apache2", "mode": "rw"}},
    )
    container.exec_run(["sh", "-c", "echo first-line >> /var/log/apache2/access.log"])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "logsidecar",
            "docker",
            "attach",
            container.name,
            "--label",
            "tier",
            "--format",
            "raw",
            "--stdout-format",
            "json",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = json.loads(proc.stdout.readline())
        container.exec_run(["sh", "-c", "echo second-line >> /var/log/apache2/access.log"])
        second = json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        print(err)
    assert [first["body"], second["body"]] == ["first-line", "second-line"]
    resource = second["resource"]
    assert resource["container.id"] == container.id
    assert resource["container.name"] == container.name
    assert resource["container.image.name"] == "logsidecar-test-busybox"
    assert resource["container.label.tier"] == "web"
    # The file as the container sees it, and where it was read on this host.
    assert second["attributes"]["log.file.path"] == "/var/log/apache2/access.log"
    assert second["attributes"]["logsidecar.host.path"] == str(logdir / "access.log")
    assert second["attributes"]["log.file.name"] == "access.log"


def test_audit_finds_exactly_the_leaked_volumes_and_prunes_only_them(client, busybox, volume_image):
    # two leaks: an anonymous volume from a removed container, and a named volume nobody mounts
    leaker = _run(client, volume_image, "leaker", command=["true"])
    leaker.wait(timeout=30)
    leaker.reload()
    anonymous = next(m["Name"] for m in leaker.attrs["Mounts"])
    leaker.remove()  # without v=True: the classic leak
    named_leak = client.volumes.create(name=f"leak-{RUN}", labels=LABEL).name
    # one in use: must never be listed nor pruned
    in_use = client.volumes.create(name=f"inuse-{RUN}", labels=LABEL).name
    _run(client, busybox, "user", command=["sleep", "600"], volumes={in_use: {"bind": "/data", "mode": "rw"}})

    filters = [
        "--filter",
        f"name={anonymous}",
        "--filter",
        f"name={named_leak}",
        "--filter",
        f"name={in_use}",
    ]
    out = logsidecar("docker", "audit", "--json", *filters)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    listed = {v["name"]: v for v in report["unused_volumes"]}
    print(out.stdout)
    assert set(listed) == {anonymous, named_leak}
    assert listed[anonymous]["anonymous"] is True
    assert listed[named_leak]["anonymous"] is False
    assert listed[named_leak]["age_s"] is not None and listed[named_leak]["age_s"] < 600

    text = logsidecar("docker", "audit", *filters)
    print(text.stdout)
    assert "2 volume(s) referenced by no container" in text.stdout

    refused = logsidecar("docker", "audit", "--prune", *filters, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "--yes" in refused.stderr  # a usage error

    pruned = logsidecar("docker", "audit", "--prune", "--yes", *filters)
    print(pruned.stdout, pruned.stderr)
    assert pruned.returncode == 0
    remaining = {v.name for v in client.volumes.list()}
    assert anonymous not in remaining and named_leak not in remaining
    assert in_use in remaining


def test_sidecar_shares_the_targets_volumes_read_only_and_can_be_removed(
    client, busybox, volume_image, demo_images
):
    data = _run(client, volume_image, "sidecar-data", command=["true"])
    data.wait(timeout=30)
    target = _run(client, busybox, "sidecar-target", command=["sleep", "600"], volumes_from=[data.id])
    target.exec_run(["sh", "-c", "echo before-the-sidecar >> /var/log/apache2/access.log"])
    out = logsidecar("docker", "sidecar", target.name, "--format", "raw", "--stdout-format", "json")
    print(out.stdout, out.stderr)
    assert out.returncode == 0, out.stderr
    sidecar = client.containers.get(f"logsidecar-{target.name}")
    try:
        assert sidecar.labels["io.logsidecar.sidecar-for"] == target.id
        assert sidecar.attrs["HostConfig"]["VolumesFrom"] == [f"{target.id}:ro"]
        assert sidecar.attrs["HostConfig"]["ReadonlyRootfs"] is True
        mounts = {m["Destination"]: m for m in sidecar.attrs["Mounts"]}
        assert mounts["/var/log/apache2"]["RW"] is False
        assert mounts["/var/lib/logsidecar"]["RW"] is True
        command = sidecar.attrs["Config"]["Cmd"]
        assert command[-5:] == ["--format", "raw", "--stdout-format", "json", "/var/log/apache2/*.log"]
        assert command[0] == "tail" and f"container.id={target.id}" in command
        target.exec_run(["sh", "-c", "echo after-the-sidecar >> /var/log/apache2/access.log"])

        def bodies():
            logs = sidecar.logs(stdout=True, stderr=False).decode()
            return [json.loads(x)["body"] for x in logs.splitlines() if x.startswith("{")]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(bodies()) < 2:
            time.sleep(0.5)
        assert bodies() == ["before-the-sidecar", "after-the-sidecar"]
        # the records name the container that wrote them, not the sidecar
        logs = sidecar.logs(stdout=True, stderr=False).decode()
        resource = [json.loads(x) for x in logs.splitlines() if x.startswith("{")][-1]["resource"]
        assert resource["container.id"] == target.id and resource["container.name"] == target.name
        assert resource["container.image.name"] == "logsidecar-test-busybox"
    finally:
        removed = logsidecar("docker", "sidecar", "--remove", target.name)
        print(removed.stdout)
        assert f"logsidecar-{target.name}" in removed.stdout
        try:
            client.volumes.get(f"logsidecar-state-{target.name}").remove(force=True)
        except Exception:  # noqa: BLE001
            pass
    assert client.containers.list(all=True, filters={"label": f"io.logsidecar.sidecar-for={target.id}"}) == []


def test_sidecar_with_the_docker_socket_adds_the_writers_metadata(client, busybox, volume_image, demo_images):
    data = _run(client, volume_image, "meta-data", command=["true"])
    data.wait(timeout=30)
    writer = _run(
        client,
        busybox,
        "meta-writer",
        command=["sleep", "600"],
        volumes_from=[data.id],
        labels={"tier": "web"},
    )
    writer.exec_run(["sh", "-c", "echo hello >> /var/log/apache2/access.log"])
    out = logsidecar(
        "docker", "sidecar", writer.name, "--docker-socket", "--format", "raw", "--stdout-format", "json"
    )
    assert out.returncode == 0, out.stderr
    sidecar = client.containers.get(f"logsidecar-{writer.name}")
    try:
        record = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and record is None:
            lines = [
                x for x in sidecar.logs(stdout=True, stderr=False).decode().splitlines() if x.startswith("{")
            ]
            record = json.loads(lines[0]) if lines else None
            time.sleep(0.5)
        print(sidecar.logs(stdout=False, stderr=True).decode()[-2000:])
        assert record is not None and record["body"] == "hello"
        resource = record["resource"]
        assert resource["container.id"] == writer.id
        assert resource["container.name"] == writer.name
        assert resource["container.image.name"] == "logsidecar-test-busybox"
    finally:
        logsidecar("docker", "sidecar", "--remove", writer.name)
        try:
            client.volumes.get(f"logsidecar-state-{writer.name}").remove(force=True)
        except Exception:  # noqa: BLE001
            pass


def test_engine_errors_are_explained(tmp_path):
    out = logsidecar("docker", "--host", f"unix://{tmp_path}/nothing.sock", "audit")
    assert out.returncode == 2  # an environment error
    assert "no engine is listening" in out.stderr


def test_an_unknown_container_is_an_environment_error(client):
    for subcommand in ("attach", "sidecar"):
        out = logsidecar("docker", subcommand, f"nosuch-{RUN}")
        print(out.stderr)
        assert out.returncode == 2
        assert f"no container named or with id 'nosuch-{RUN}'" in out.stderr
        assert "Traceback" not in out.stderr


def test_a_second_sidecar_is_refused_with_the_remove_hint(client, busybox, volume_image, demo_images):
    data = _run(client, volume_image, "twice-data", command=["true"])
    data.wait(timeout=30)
    target = _run(client, busybox, "twice-target", command=["sleep", "600"], volumes_from=[data.id])
    first = logsidecar("docker", "sidecar", target.name)
    assert first.returncode == 0, first.stderr
    try:
        second = logsidecar("docker", "sidecar", target.name)
        print(second.stderr)
        assert second.returncode == 2
        assert f"{target.name} already has a sidecar: logsidecar-{target.name}" in second.stderr
        assert f"logsidecar docker sidecar --remove {target.name}" in second.stderr
        assert "409" not in second.stderr and "Traceback" not in second.stderr
    finally:
        logsidecar("docker", "sidecar", "--remove", target.name)
        _remove_volume(client, f"logsidecar-state-{target.name}")
    # a container that is not ours holds the name: the engine's 409, explained
    other = _run(client, volume_image, "taken-target", command=["sleep", "600"])
    squatter = client.containers.create(busybox, name=f"logsidecar-{other.name}", labels=LABEL)
    try:
        taken = logsidecar("docker", "sidecar", other.name)
        print(taken.stderr)
        assert taken.returncode == 2
        assert (
            f"a container named logsidecar-{other.name} already exists and is not {other.name}'s sidecar"
            in taken.stderr
        )
        assert f"docker rm -f logsidecar-{other.name}" in taken.stderr
        assert "409 Client Error" not in taken.stderr
    finally:
        squatter.remove(force=True)
        _remove_volume(client, f"logsidecar-state-{other.name}")


def test_a_missing_sidecar_image_is_not_pulled_unasked(client, volume_image):
    target = _run(client, volume_image, "noimage-target", command=["sleep", "600"])
    events_since = int(time.time()) - 1
    out = logsidecar("docker", "sidecar", target.name, "--image", f"nosuch-{RUN}:1")
    print(out.stderr)
    assert out.returncode == 2
    assert f"image nosuch-{RUN}:1 is not on this engine" in out.stderr and "(or add --pull)" in out.stderr
    assert "500 Server Error" not in out.stderr and "Traceback" not in out.stderr
    assert client.containers.list(all=True, filters={"name": f"logsidecar-{target.name}"}) == []
    pulls = client.events(since=events_since, until=int(time.time()) + 1, decode=True,
                          filters={"type": "image", "event": "pull"})  # fmt: skip
    assert [e for e in pulls if "nosuch" in json.dumps(e)] == []


def test_an_unreadable_directory_is_named_retried_and_never_a_traceback(client, demo_images, tmp_path):
    """In the shipped image, as its non-root user, on a read-only bind mount: a glob directly in a 0700
    root directory, and a glob below another. Each is a warning naming the directory (no traceback, no
    silent wait); once the directories are opened up, their lines are read."""
    logs = tmp_path / "logs"
    (logs / "listme").mkdir(parents=True)
    (logs / "enterme" / "sub").mkdir(parents=True)
    (logs / "listme" / "a.log").write_text("line-in-listme\n")
    (logs / "enterme" / "sub" / "b.log").write_text("line-in-sub\n")
    logs.chmod(0o755)
    (logs / "listme").chmod(0o700)
    (logs / "enterme").chmod(0o700)
    patterns = {"/var/log/apache2/listme/*.log": "listme", "/var/log/apache2/enterme/sub/*.log": "enterme"}
    container = client.containers.run(
        "logsidecar/logsidecar:local",
        ["tail", "--format", "raw", "--stdout-format", "raw", "--log-format", "json", *patterns],
        name=f"unreadable-{RUN}", detach=True, labels=LABEL,
        volumes={str(logs): {"bind": "/var/log/apache2", "mode": "ro"}},
    )  # fmt: skip

    def our_logs() -> list[dict]:
        err = container.logs(stdout=False, stderr=True).decode()
        assert "Traceback" not in err and "Error: stopped" not in err, err
        return [json.loads(x) for x in err.splitlines() if x.startswith("{")]

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len([e for e in our_logs() if e["event"] == "file_error"]) < 2:
            time.sleep(0.5)
        warnings = {e["pattern"]: e for e in our_logs() if e["event"] == "file_error"}
        print(json.dumps(warnings, indent=1))
        assert set(warnings) == set(patterns)
        for pattern, directory in patterns.items():
            warning = warnings[pattern]
            assert warning["level"] == "warning" and warning["kind"] == "directory_unreadable"
            assert warning["path"] == f"/var/log/apache2/{directory}"
            assert "Permission denied" in warning["error"] and "retried" in warning["error"]
        assert "cannot list /var/log/apache2/listme" in warnings["/var/log/apache2/listme/*.log"]["error"]
        assert (
            "cannot enter /var/log/apache2/enterme" in warnings["/var/log/apache2/enterme/sub/*.log"]["error"]
        )
        container.reload()
        assert container.status == "running"

        (logs / "listme").chmod(0o755)  # opened up: retried, read
        (logs / "enterme").chmod(0o755)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(container.logs(stdout=True, stderr=False).splitlines()) < 2:
            time.sleep(0.5)
        lines = container.logs(stdout=True, stderr=False).decode().splitlines()
        assert sorted(lines) == ["line-in-listme", "line-in-sub"]
        recovered = {e["pattern"] for e in our_logs() if e["event"] == "file_recovered"}
        assert recovered == set(patterns)
    finally:
        container.remove(force=True, v=True)


def test_sidecar_refuses_a_container_without_a_log_volume_as_attach_does(client, busybox, volume_image):
    lonely = _run(client, busybox, "sidecar-lonely", command=["sleep", "600"])
    out = logsidecar("docker", "sidecar", lonely.name, "--state-dir", "/var/lib/logsidecar")
    print(out.stderr)
    assert out.returncode == 1  # a finding, as for attach
    assert f"container {lonely.name} has no volume or bind mount covering /var/log/apache2" in out.stderr
    assert "No sidecar started" in out.stderr
    assert client.containers.list(all=True, filters={"label": f"io.logsidecar.sidecar-for={lonely.id}"}) == []
    # a glob elsewhere is checked the same way; an option's value (--state-dir /var/lib/...) is no glob
    with_volume = _run(client, volume_image, "sidecar-elsewhere", command=["sleep", "600"])
    out = logsidecar(
        "docker", "sidecar", with_volume.name, "--state-dir", "/var/lib/logsidecar", "/srv/logs/*.log"
    )
    assert out.returncode == 1 and "covering /srv/logs" in out.stderr, out.stderr
    assert "/var/lib" not in out.stderr


def test_a_sidecar_that_follows_no_file_is_unhealthy_and_its_health_log_says_why(
    client, busybox, volume_image, demo_images
):
    """The target's logs are on a volume, but no file there matches: the sidecar is up and reads
    nothing. Docker must report it unhealthy, with the waiting pattern and why in its health log; and
    healthy once a log appears."""
    target = _run(client, volume_image, "sidecar-idle", command=["sleep", "600"])
    target.exec_run(["sh", "-c", "echo notes > /var/log/apache2/notes.txt"])
    out = logsidecar("docker", "sidecar", target.name, "--format", "raw")
    assert out.returncode == 0, out.stderr
    sidecar = client.containers.get(f"logsidecar-{target.name}")

    def health_is(status: str) -> dict | None:
        sidecar.reload()
        health = sidecar.attrs["State"].get("Health") or {}
        return health if health.get("Status") == status else None

    try:
        # start period 10 s, then 3 failed probes 5 s apart: a bound from the sidecar's HEALTHCHECK
        deadline = time.monotonic() + 10 + 3 * 5 + 30
        while time.monotonic() < deadline and not health_is("unhealthy"):
            time.sleep(1)
        unhealthy = health_is("unhealthy")
        assert unhealthy, sidecar.attrs["State"].get("Health")
        output = unhealthy["Log"][-1]["Output"]
        assert unhealthy["Log"][-1]["ExitCode"] == 1
        assert (
            "not ready: following 0 files; patterns waiting: /var/log/apache2/*.log (no file matches)"
            in output
        )
        target.exec_run(["sh", "-c", "echo hello >> /var/log/apache2/access.log"])
        deadline = time.monotonic() + 3 * 5 + 30
        while time.monotonic() < deadline and not health_is("healthy"):
            time.sleep(1)
        assert health_is("healthy"), sidecar.attrs["State"].get("Health")
    finally:
        logsidecar("docker", "sidecar", "--remove", target.name)


def test_the_documented_state_volume_lets_a_recreated_sidecar_resume(
    client, busybox, volume_image, demo_images
):
    """The chapter's way, with the README's `docker run` line: a data-only log_vol, a writer through
    --volumes-from, the product's container recreated with `docker rm -f` and `docker run` again."""
    log_vol = _run(client, volume_image, "log_vol", command=["true"])
    log_vol.wait(timeout=30)
    writer = _run(client, busybox, "state-writer", command=["sleep", "600"], volumes_from=[log_vol.id])
    state = f"logsidecar-state-{log_vol.name}"

    def sidecar():
        return client.containers.run(
            "logsidecar/logsidecar:local", ["tail", "--format", "raw", "--stdout-format", "raw"],
            name=f"logsidecar-{log_vol.name}", detach=True, init=True, labels=LABEL,
            volumes_from=[f"{log_vol.id}:ro"], volumes={state: {"bind": "/var/lib/logsidecar", "mode": "rw"}},
        )  # fmt: skip

    def write_and_read(container, lines: list[str], expected: list[str]) -> list[str]:
        for line in lines:
            writer.exec_run(["sh", "-c", f"echo {line} >> /var/log/apache2/access.log"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(
            container.logs(stdout=True, stderr=False).splitlines()
        ) < len(expected):
            time.sleep(0.3)
        time.sleep(1.0)  # a replay would show up by now
        return container.logs(stdout=True, stderr=False).decode().splitlines()

    first = sidecar()
    try:
        assert write_and_read(first, ["one", "two", "three"], ["one", "two", "three"]) == [
            "one",
            "two",
            "three",
        ]
        first.remove(force=True)  # the chapter's recreate: SIGKILL, no graceful stop
        second = sidecar()
        assert write_and_read(second, ["four"], ["four"]) == ["four"]  # resumed: nothing read twice
        second.remove(force=True, v=True)
        assert [v.name for v in client.volumes.list(filters={"name": state})] == [state]  # named, kept
    finally:
        for name in (f"logsidecar-{log_vol.name}",):
            try:
                client.containers.get(name).remove(force=True)
            except Exception:  # noqa: BLE001
                pass
        _remove_volume(client, state)


def test_sidecar_state_volume_is_named_after_the_target_and_goes_with_it(
    client, busybox, volume_image, demo_images
):
    data = _run(client, volume_image, "state-data", command=["true"])
    data.wait(timeout=30)
    target = _run(client, busybox, "state-target", command=["sleep", "600"], volumes_from=[data.id])
    state = f"logsidecar-state-{target.name}"
    try:
        # --remove takes the state volume we created with the sidecar
        out = logsidecar("docker", "sidecar", target.name)
        assert out.returncode == 0, out.stderr
        assert f"checkpoints in volume {state}" in out.stdout
        labels = client.volumes.get(state).attrs["Labels"]
        assert labels["io.logsidecar.state-for"] == target.id
        assert labels["io.logsidecar.state-for-name"] == target.name
        removed = logsidecar("docker", "sidecar", "--remove", target.name)
        print(removed.stdout)
        assert removed.stdout.startswith(f"removed: logsidecar-{target.name}, {state}")
        assert client.volumes.list(filters={"name": state}) == []

        # --keep-state keeps it, and audit says whose it is
        assert logsidecar("docker", "sidecar", target.name).returncode == 0
        kept = logsidecar("docker", "sidecar", "--remove", "--keep-state", target.name)
        assert f"kept: {state} (--keep-state)" in kept.stdout, kept.stdout
        audit = logsidecar("docker", "audit", "--json", "--filter", f"name={state}")
        listed = {v["name"]: v for v in json.loads(audit.stdout)["unused_volumes"]}
        assert listed[state]["state_of"] == target.name
        text = logsidecar("docker", "audit", "--filter", f"name={state}")
        assert f"(logsidecar checkpoints of the sidecar of {target.name})" in text.stdout, text.stdout

        # a volume of the user's with that name is never removed
        _remove_volume(client, state)
        client.volumes.create(name=state, labels=LABEL)
        assert logsidecar("docker", "sidecar", target.name).returncode == 0
        theirs = logsidecar("docker", "sidecar", "--remove", target.name)
        assert f"kept: {state} (not created by logsidecar)" in theirs.stdout, theirs.stdout
        _remove_volume(client, state)

        # --rm: checkpoints in the anonymous volume the engine removes with the container
        out = logsidecar("docker", "sidecar", "--rm", target.name)
        assert out.returncode == 0, out.stderr
        assert "checkpoints removed with it (--rm" in out.stdout
        sidecar = client.containers.get(f"logsidecar-{target.name}")
        anonymous = next(
            m["Name"] for m in sidecar.attrs["Mounts"] if m["Destination"] == "/var/lib/logsidecar"
        )
        assert anonymous != state and client.volumes.list(filters={"name": state}) == []
        sidecar.stop(timeout=20)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.volumes.list(filters={"name": anonymous}):
            time.sleep(0.3)
        assert client.volumes.list(filters={"name": anonymous}) == []
        assert client.containers.list(all=True, filters={"name": f"logsidecar-{target.name}"}) == []
    finally:
        logsidecar("docker", "sidecar", "--remove", target.name)
        _remove_volume(client, state)


# Dockerfiles after `FROM {base}`: what check-image must say about each, as (certain writes as
# (volume, kind, path written), cannot-tell count). The chapter's example first.
CHECK_IMAGE_CASES = {
    "chapter": (
        "RUN mkdir -p /var/log/apache2\nVOLUME /var/log/apache2\nRUN echo started > /var/log/apache2/access.log\n",
        [("/var/log/apache2", "run", "/var/log/apache2/access.log")], 0,
    ),
    "workdir": ("VOLUME /data\nWORKDIR /data\nRUN touch x\n", [("/data", "run", "/data/x")], 0),
    "env": ("ENV D=/data\nVOLUME /data\nRUN echo x > $D/y\n", [("/data", "run", "/data/y")], 0),
    "read-only": ("RUN mkdir /vol && touch /vol/seed\nVOLUME /vol\nRUN ls -la /vol\nRUN cat /vol/seed\n", [], 0),
    "copy": ("VOLUME /vol\nCOPY seed.txt /vol/\n", [("/vol", "copy", "/vol")], 0),
    "multi-stage": (
        "RUN echo built > /out.txt\nFROM {base}\nVOLUME /data\nCOPY --from=0 /out.txt /data/out.txt\n",
        [("/data", "copy", "/data/out.txt")], 0,
    ),
    "cannot-tell": ("VOLUME /data\nRUN echo 'touch /data/x' > /setup.sh && sh /setup.sh /data\n", [], 1),
}  # fmt: skip


def _build(client, builder: str, context: Path, tag: str) -> None:
    if builder == "classic":
        client.images.build(path=str(context), tag=tag, rm=True, labels=LABEL)
        return
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        pytest.skip("BuildKit is not available on this engine's CLI (no buildx)")
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context)], check=True, env=env, capture_output=True
    )


@pytest.mark.parametrize("builder", ["classic", "buildkit"])
@pytest.mark.parametrize("case", list(CHECK_IMAGE_CASES))
def test_check_image_reads_what_the_build_did(client, busybox, tmp_path, builder, case):
    steps, expected, cannot_tell = CHECK_IMAGE_CASES[case]
    (tmp_path / "Dockerfile").write_text(f"FROM {busybox}\n" + steps.format(base=busybox))
    (tmp_path / "seed.txt").write_text("seed\n")
    tag = f"logsidecar-test-check-{case}-{builder}:{RUN}"
    _build(client, builder, tmp_path, tag)
    try:
        out = logsidecar("docker", "check-image", "--json", tag)
        print(out.stdout, out.stderr)
        report = json.loads(out.stdout)
        assert [(f["volume"], f["kind"], f["detail"]) for f in report["findings"]] == expected
        assert len(report["cannot_tell"]) == cannot_tell
        assert out.returncode == (1 if expected else 0)
        text = logsidecar("docker", "check-image", tag)
        print(text.stdout)
        assert ("cannot tell whether it writes" in text.stdout) == bool(cannot_tell)
    finally:
        client.images.remove(tag, force=True)


def test_check_image_that_cannot_be_inspected_is_an_environment_error(client):
    out = logsidecar("docker", "check-image", f"nosuch-{RUN}:1")
    print(out.stderr)
    assert out.returncode == 2  # not 1, which means "found a write into a volume"
    assert f"image nosuch-{RUN}:1 is not on this engine (nothing is pulled unasked)" in out.stderr


def test_audit_prune_keeps_named_volumes_with_data_unless_asked(client, busybox):
    with_data = client.volumes.create(name=f"keepme-{RUN}", labels=LABEL).name
    empty = client.volumes.create(name=f"emptyme-{RUN}", labels=LABEL).name
    filler = client.containers.run(busybox, ["sh", "-c", "echo precious > /v/data"], labels=LABEL,
                                   volumes={with_data: {"bind": "/v", "mode": "rw"}}, detach=True)  # fmt: skip
    filler.wait(timeout=30)
    filler.remove()
    filters = ["--filter", f"name={with_data}", "--filter", f"name={empty}"]
    pruned = logsidecar("docker", "audit", "--prune", "--yes", *filters)
    print(pruned.stdout, pruned.stderr)
    assert pruned.returncode == 0
    assert f"kept {with_data}: named and holds 9 bytes (--include-named removes it)" in pruned.stderr
    remaining = {v.name for v in client.volumes.list(filters={"label": f"io.logsidecar.test-run={RUN}"})}
    assert with_data in remaining and empty not in remaining
    pruned = logsidecar("docker", "audit", "--prune", "--yes", "--include-named", *filters)
    assert f"removed {with_data}" in pruned.stdout, pruned.stdout + pruned.stderr
    assert with_data not in {v.name for v in client.volumes.list()}


def test_audit_filter_applies_to_engine_created_bind_directories(client, busybox, tmp_path):
    made = tmp_path / f"made-by-engine-{RUN}"  # missing: the engine creates it, root-owned and empty
    _run(
        client,
        busybox,
        "binder",
        command=["sleep", "600"],
        volumes={str(made): {"bind": "/logs", "mode": "rw"}},
    )

    def listed(*filters: str) -> list[str]:
        out = logsidecar("docker", "audit", "--json", *filters)
        assert out.returncode == 0, out.stderr
        return [d["path"] for d in json.loads(out.stdout)["engine_created_bind_dirs"]]

    assert str(made) in listed()
    assert listed("--filter", f"name=made-by-engine-{RUN}") == [str(made)]
    assert listed("--filter", f"label=io.logsidecar.test-run={RUN}") == [str(made)]
    assert str(made) not in listed("--filter", f"name=something-else-{RUN}")
    assert str(made) not in listed("--filter", "label=io.logsidecar.test-run=another-run")


def test_audit_reports_a_bind_directory_whose_container_is_gone(client, busybox, tmp_path):
    made = tmp_path / f"leaked-by-engine-{RUN}"  # missing: the engine creates it, root-owned and empty
    kept = tmp_path / f"kept-by-engine-{RUN}"
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    filters = ("--filter", f"name={tmp_path}/")
    gone = _run(
        client,
        busybox,
        "leaker",
        command=["sleep", "600"],
        volumes={str(made): {"bind": "/logs", "mode": "rw"}},
    )
    _run(client, busybox, "keeper", command=["sleep", "600"], volumes={str(kept): {"bind": "/logs", "mode": "rw"}})  # fmt: skip

    def audit(*only: str) -> dict:
        out = logsidecar("docker", "audit", "--json", *(only or filters), env=env)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    first = audit()
    assert sorted(d["path"] for d in first["engine_created_bind_dirs"]) == sorted([str(made), str(kept)])
    assert first["leaked_bind_dirs"] == []
    record = tmp_path / "state/logsidecar/audit-seen.json"
    assert record.stat().st_mode & 0o777 == 0o600
    gone_id = gone.id
    gone.exec_run(["sh", "-c", "echo data > /logs/x.log"])
    gone.remove(force=True)

    after = audit()
    assert [d["path"] for d in after["engine_created_bind_dirs"]] == [str(kept)]
    assert after["leaked_bind_dirs"] == [
        {"path": str(made), "container": gone.name, "container_id": gone_id,
         "first_seen": after["leaked_bind_dirs"][0]["first_seen"], "exists": True, "holds_data": True}
    ]  # fmt: skip
    assert audit("--filter", f"name=something-else-{RUN}")["leaked_bind_dirs"] == []
    assert audit("--filter", f"label=io.logsidecar.test-run={RUN}")["leaked_bind_dirs"] == []  # labels gone
    text = logsidecar("docker", "audit", *filters, env=env).stdout
    assert f"{made}  (container {gone.name} {gone_id[:12]}, gone; exists, holds data)" in text, text
    # --prune never touches host directories; --prune-dirs removes only an empty one
    logsidecar("docker", "audit", "--prune", "--yes", *filters, env=env)
    assert made.is_dir()
    pruned = logsidecar("docker", "audit", "--prune-dirs", *filters, env=env)
    assert f"kept directory {made}" in pruned.stderr and (made / "x.log").exists(), pruned.stderr
    client.containers.run(busybox, ["rm", "/logs/x.log"], volumes={str(made): {"bind": "/logs", "mode": "rw"}},
                          labels=LABEL, remove=True)  # fmt: skip
    pruned = logsidecar("docker", "audit", "--prune-dirs", *filters, env=env)
    assert f"removed directory {made}" in pruned.stdout, pruned.stdout + pruned.stderr
    assert not made.exists()


@pytest.mark.parametrize(
    ("setup", "expected_time", "source"),
    [
        ({}, "2026-12-05T08:26:04.611338+00:00", "no TZ and has no /etc/localtime"),
        ({"environment": {"TZ": "Asia/Shanghai"}}, "2026-12-05T08:26:04.611338+08:00", "its TZ=Asia/Shanghai"),
        ({"localtime": "/usr/share/zoneinfo/America/New_York"}, "2026-12-05T08:26:04.611338-05:00",
         "its /etc/localtime -> /usr/share/zoneinfo/America/New_York"),
    ],
)  # fmt: skip
def test_attach_reads_error_log_times_in_the_containers_zone(
    client, busybox, tmp_path, setup, expected_time, source
):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "error.log").write_text(
        "[Sat Dec 05 08:26:04.611338 2026] [core:error] [pid 1:tid 2] AH00037: x\n"
    )
    container = _run(client, busybox, f"tz-{uuid.uuid4().hex[:6]}", command=["sleep", "600"], environment=setup.get("environment"),
                     volumes={str(logdir): {"bind": "/var/log/apache2", "mode": "rw"}})  # fmt: skip
    if "localtime" in setup:
        made = container.exec_run(
            ["sh", "-c", f"rm -f /etc/localtime; ln -s {setup['localtime']} /etc/localtime"]
        )
        assert made.exit_code == 0, made.output
    proc = subprocess.Popen(
        [sys.executable, "-m", "logsidecar", "docker", "attach", container.name, "--format", "error",
         "--stdout-format", "json", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TZ": "Asia/Shanghai"},  # the host's zone must not matter
    )  # fmt: skip
    try:
        record = json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    print(err[-1500:])
    assert record["timestamp"] == expected_time
    assert f"error-log times of {container.name} are read in" in err and source in err


def _attach_stderr(container_name: str, tmp_path: Path, until: str = "attaching to") -> str:
    """`docker attach` run until its stderr holds `until` (by default: it says it is attaching; every
    warning comes before), or 30 s; its stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "logsidecar", "docker", "attach", container_name, "--state-dir", str(tmp_path / "s")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen = ""
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and until not in seen:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    print(seen)
    return seen


def test_attach_says_when_several_containers_write_the_volume(client, busybox, volume_image, tmp_path):
    log_vol = _run(client, volume_image, "writers-logvol", command=["true"])
    log_vol.wait(timeout=30)
    web1 = _run(client, busybox, "writers-web1", command=["sleep", "600"], volumes_from=[log_vol.id])
    web2 = _run(client, busybox, "writers-web2", command=["sleep", "600"], volumes_from=[web1.id])
    both = f"{web1.name}, {web2.name}"

    err = _attach_stderr(web2.name, tmp_path)
    assert (
        f"is written by several containers ({both}): records of {web1.name} will be labelled {web2.name}"
        in err
    )
    err = _attach_stderr(log_vol.name, tmp_path)
    assert f"{log_vol.name} does not write volume" in err and f"it is written by {both}" in err

    web2.stop(timeout=1)  # one writer left: nothing to say
    err = _attach_stderr(web1.name, tmp_path)
    assert "attaching to" in err and "warning" not in err


def _remove_volume(client, name: str) -> None:
    try:
        client.volumes.get(name).remove(force=True)
    except Exception:  # noqa: BLE001 - not created, or already gone
        pass


def _attach_until(
    container, tmp_path: Path, name: str, *extra: str, until: bytes
) -> tuple[list[str], list[dict]]:
    """Run `docker attach` with its stdout in a file until `until` is in it and a few discovery cycles
    more; returns (stdout lines, our own logs)."""
    out = tmp_path / f"{name}.out"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "logsidecar", "docker", "attach", container.name, *extra,
             "--format", "raw", "--stdout-format", "raw", "--log-format", "json",
             "--state-dir", str(tmp_path / f"{name}-state")],
            stdout=stdout, stderr=subprocess.PIPE, cwd=REPO_ROOT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while until not in out.read_bytes() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            time.sleep(2.0)  # many discovery cycles after the real line: anything else would be read by now
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
    print(err.decode()[-3000:])
    logs = [json.loads(line) for line in err.splitlines() if line.startswith(b"{")]
    return out.read_text(errors="replace").splitlines(), logs + [{"stderr": err.decode()}]


def test_attach_never_follows_a_link_planted_in_the_volume_out_of_it(client, busybox, volume_image, tmp_path):
    # Secrets on the host, outside the volume: a file, and a directory holding a "log".
    host_secrets = tmp_path / "host-secrets"
    host_secrets.mkdir(mode=0o700)
    (host_secrets / "shadow").write_text("".join(f"HOST-SECRET-{i}\n" for i in range(5)))
    (host_secrets / "shadow").chmod(0o600)
    (host_secrets / "access.log").write_text("HOST-SECRET-dir\n")
    data = _run(client, volume_image, "plant-data", command=["true"])
    data.wait(timeout=30)
    writer = _run(client, busybox, "plant-writer", command=["sleep", "600"], volumes_from=[data.id])
    planted = writer.exec_run(
        [
            "sh", "-c",
            "cd /var/log/apache2 && echo real-line >> error.log"
            f" && busybox ln -s {host_secrets}/shadow access.log"  # access.log -> /etc/shadow, as found
            " && busybox ln -s /proc/self/fd/1 other_access.log"  # the official httpd image's link
            f" && busybox ln -s {host_secrets} apache2"  # apache2 -> /etc
            " && mkdir site && echo site-line >> site/x.log",
        ]
    )  # fmt: skip
    assert planted.exit_code == 0, planted.output

    lines, logs = _attach_until(writer, tmp_path, "files", until=b"real-line")
    assert lines == ["real-line"]  # not one line of the secret, not one record of our own records
    refused = {(os.path.basename(e["path"]), e["reason"]) for e in logs if e.get("event") == "file_refused"}
    assert refused == {("access.log", "outside_base"), ("other_access.log", "own_output")}
    assert f"docker logs {writer.name}" in logs[-1]["stderr"]  # the stdout-logging case is explained

    lines, logs = _attach_until(
        writer, tmp_path, "dirs", "--path", "/var/log/apache2/*/*.log", until=b"site-line"
    )
    assert lines == ["site-line"]
    refused = {
        (e["path"].split("/_data/")[-1], e["reason"]) for e in logs if e.get("event") == "file_refused"
    }
    assert refused == {("apache2/access.log", "outside_base")}

    escaped = logsidecar("docker", "attach", writer.name, "--path", "/var/log/apache2/apache2/*.log")
    print(escaped.stderr)
    assert escaped.returncode == 1
    assert f"leads it to {host_secrets}, outside the volume: refusing to follow it" in escaped.stderr
    assert "HOST-SECRET" not in escaped.stdout


def test_sidecar_explains_logs_linked_to_stdout_and_never_reads_its_own_output(
    client, busybox, volume_image, demo_images
):
    data = _run(client, volume_image, "stdout-data", command=["true"])
    data.wait(timeout=30)
    target = _run(client, busybox, "stdout-target", command=["sleep", "600"], volumes_from=[data.id])
    linked = target.exec_run(
        [
            "sh",
            "-c",
            "cd /var/log/apache2 && busybox ln -s /proc/self/fd/1 access.log && echo real-line >> error.log",
        ]
    )
    assert linked.exit_code == 0, linked.output
    out = logsidecar("docker", "sidecar", target.name, "--format", "raw", "--stdout-format", "raw")
    print(out.stdout, out.stderr)
    assert out.returncode == 0, out.stderr
    assert "access.log -> /proc/self/fd/1" in out.stderr and f"docker logs {target.name}" in out.stderr
    sidecar = client.containers.get(f"logsidecar-{target.name}")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b"real-line" not in sidecar.logs(stdout=True, stderr=False):
            time.sleep(0.5)
        time.sleep(2.0)
        stdout = sidecar.logs(stdout=True, stderr=False).decode().splitlines()
        stderr = sidecar.logs(stdout=False, stderr=True).decode()
        print(stderr[-2000:])
        assert stdout == ["real-line"]
        refused = [json.loads(x) for x in stderr.splitlines() if '"file_refused"' in x]
        assert [(r["path"], r["reason"]) for r in refused] == [("/var/log/apache2/access.log", "own_output")]
    finally:
        logsidecar("docker", "sidecar", "--remove", target.name)
        try:
            client.volumes.get(f"logsidecar-state-{target.name}").remove(force=True)
        except Exception:  # noqa: BLE001
            pass
