"""Pure parts of the Docker knowledge: mount resolution, image refs, history scanning."""

from __future__ import annotations

import pytest

from logsidecar.containers.image_check import check_history
from logsidecar.containers.metadata import container_resource, is_anonymous_volume_name, split_image_ref
from logsidecar.containers.mounts import NotOnMount, resolve_log_dir
from logsidecar.containers.sidecar import tail_command

ATTRS = {
    "Id": "a" * 64,
    "Name": "/web",
    "Image": "sha256:" + "b" * 64,
    "Config": {"Image": "registry.local:5000/team/apache:2.4", "Labels": {"tier": "web", "owner": "ops"}},
    "Mounts": [
        {
            "Type": "volume",
            "Name": "logs",
            "Source": "/var/lib/docker/volumes/logs/_data",
            "Destination": "/var/log",
            "RW": True,
        },
        {"Type": "bind", "Source": "/srv/apache-logs", "Destination": "/var/log/apache2", "RW": False},
    ],
}


def test_longest_mount_prefix_wins():
    loc = resolve_log_dir(ATTRS, "/var/log/apache2/vhosts")
    assert (loc.host_dir, loc.mount_type, loc.read_write) == ("/srv/apache-logs/vhosts", "bind", False)
    loc = resolve_log_dir(ATTRS, "/var/log/nginx")
    assert (loc.host_dir, loc.volume_name) == ("/var/lib/docker/volumes/logs/_data/nginx", "logs")


def test_a_dir_on_no_mount_is_explained():
    with pytest.raises(
        NotOnMount, match="container web has no volume or bind mount covering /usr/local/apache2/logs"
    ):
        resolve_log_dir(ATTRS, "/usr/local/apache2/logs")


def test_path_prefix_is_by_component_not_by_string():
    with pytest.raises(NotOnMount):
        resolve_log_dir({"Name": "/x", "Mounts": [ATTRS["Mounts"][1]]}, "/var/log/apache22")


def test_container_resource_uses_semantic_convention_names():
    res = container_resource(ATTRS, labels=["tier"])
    assert res == {
        "container.id": "a" * 64,
        "container.name": "web",
        "container.runtime": "docker",
        "container.image.name": "registry.local:5000/team/apache",
        "container.image.tags": ["2.4"],
        "container.image.id": "sha256:" + "b" * 64,
        "container.label.tier": "web",
    }
    assert "container.label.owner" in container_resource(ATTRS, labels=["*"])


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("httpd", ("httpd", None)),
        ("httpd:2.4", ("httpd", "2.4")),
        ("localhost:5000/httpd", ("localhost:5000/httpd", None)),
        ("localhost:5000/httpd:2", ("localhost:5000/httpd", "2")),
        ("httpd@sha256:abc", ("httpd@sha256:abc", None)),
    ],
)
def test_split_image_ref(ref, expected):
    assert split_image_ref(ref) == expected


def test_anonymous_volume_names():
    assert is_anonymous_volume_name("f" * 64)
    assert not is_anonymous_volume_name("apache-logs")


CLASSIC = [  # newest first, as the engine returns it
    {"CreatedBy": "/bin/sh -c chown -R www-data /var/log/apache2/"},
    {"CreatedBy": '/bin/sh -c #(nop)  CMD ["apache2ctl" "-DFOREGROUND"]'},
    {"CreatedBy": "/bin/sh -c #(nop) COPY file:0a1b in /var/log/apache2/placeholder "},
    {"CreatedBy": "/bin/sh -c echo hi > /var/log/apache2-other/x"},
    {"CreatedBy": "/bin/sh -c #(nop)  VOLUME [/var/log/apache2]"},
    {"CreatedBy": "/bin/sh -c mkdir -p /var/log/apache2"},
]
BUILDKIT = [
    {"CreatedBy": "RUN /bin/sh -c touch /data/seed # buildkit"},
    {"CreatedBy": 'VOLUME ["/data"]'},
    {"CreatedBy": "RUN /bin/sh -c touch /data/before # buildkit"},
]


def test_history_flags_steps_after_volume_only():
    report = check_history("img", ["/var/log/apache2"], CLASSIC)
    assert [(f.step, f.kind) for f in report.findings] == [(4, "copy"), (6, "run")]


def test_history_understands_buildkit_records():
    report = check_history("img", ["/data"], BUILDKIT)
    assert [(f.step, f.instruction) for f in report.findings] == [
        (3, "RUN /bin/sh -c touch /data/seed # buildkit")
    ]


# BuildKit's records (no buildx on the test engine, so these are the strings BuildKit writes).
BUILDKIT_FORMS = [
    {"CreatedBy": "RUN |1 SUB=y /bin/sh -c sh run.sh # buildkit"},
    {"CreatedBy": "COPY seed.txt ./ # buildkit"},
    {"CreatedBy": "RUN /bin/sh -c ls -la /vol && cat /vol/seed # buildkit"},
    {"CreatedBy": "RUN |1 SUB=y /bin/sh -c echo x > $D/$SUB # buildkit"},
    {"CreatedBy": "WORKDIR /data"},
    {"CreatedBy": "ENV D=/data"},
    {"CreatedBy": "VOLUME [/data /vol]"},
]


def test_history_resolves_workdir_env_and_build_args_in_buildkit_records():
    report = check_history("img", [], BUILDKIT_FORMS)
    assert [(f.step, f.kind, f.detail) for f in report.findings] == [
        (4, "run", "/data/y"),
        (6, "copy", "/data"),
    ]
    assert [(f.step, f.detail) for f in report.cannot_tell] == [(7, "sh run.sh")]


def test_sidecar_adds_the_default_glob_only_when_no_path_is_given():
    assert tail_command(["--format", "raw"]) == ["tail", "--format", "raw", "/var/log/apache2/*.log"]
    assert tail_command(["/logs/*.log"]) == ["tail", "/logs/*.log"]
    # an option's value is not a path when the caller parsed the paths out
    assert tail_command(["--state-dir", "/s"], paths=()) == [
        "tail",
        "--state-dir",
        "/s",
        "/var/log/apache2/*.log",
    ]


def test_cli_default_sidecar_image_is_the_one_the_library_uses():
    from logsidecar.cli.docker import DEFAULT_SIDECAR_IMAGE
    from logsidecar.containers.sidecar import DEFAULT_IMAGE

    assert DEFAULT_SIDECAR_IMAGE == DEFAULT_IMAGE


def test_the_cli_does_not_import_the_docker_sdk_until_a_docker_command_runs():
    import subprocess
    import sys

    code = "import sys, logsidecar.cli; print('docker' in sys.modules, 'requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
