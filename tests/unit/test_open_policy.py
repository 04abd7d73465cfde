"""The file-opening policy, case by case, on real files, symlinks, FIFOs, devices and directories."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from logsidecar import events
from logsidecar.tail.open_policy import FilePolicy, FollowSymlinks, Reason, Refused
from tests.support.paths import REPO_ROOT

NEVER, WITHIN, ANYWHERE = FollowSymlinks.NEVER, FollowSymlinks.WITHIN, FollowSymlinks.ANYWHERE


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """base/ (the followed directory) with a real log, and a secret next to it, outside."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "real.log").write_bytes(b"real line\n")
    (tmp_path / "secret").write_bytes(b"SECRET\n")
    return base


def read_all(opened_fd: int) -> bytes:
    try:
        return os.pread(opened_fd, 1 << 16, 0)
    finally:
        os.close(opened_fd)


def refusal(policy: FilePolicy, path: Path) -> Reason:
    with pytest.raises(Refused) as caught:
        policy.open_file(str(path))
    with pytest.raises(Refused) as inspected:
        policy.inspect(str(path))
    assert inspected.value.reason is caught.value.reason
    return caught.value.reason


@pytest.mark.parametrize("mode", [NEVER, WITHIN, ANYWHERE])
def test_a_regular_file_is_opened_read_only_in_every_mode(tree: Path, mode: FollowSymlinks) -> None:
    policy = FilePolicy(mode, [tree])
    fd, st = policy.open_file(str(tree / "real.log"))
    flags = os.get_blocking(fd), os.get_inheritable(fd)
    assert stat.S_ISREG(st.st_mode) and st.st_ino == os.stat(tree / "real.log").st_ino
    assert flags == (False, False)  # O_NONBLOCK | O_CLOEXEC
    assert read_all(fd) == b"real line\n"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(NEVER, Reason.SYMLINK), (WITHIN, Reason.OUTSIDE_BASE), (ANYWHERE, None)],
)
def test_a_symlink_out_of_the_base_directory(
    tree: Path, mode: FollowSymlinks, expected: Reason | None
) -> None:
    (tree / "access.log").symlink_to(tree.parent / "secret")
    policy = FilePolicy(mode, [tree])
    if expected is None:
        assert read_all(policy.open_file(str(tree / "access.log")).fd) == b"SECRET\n"
    else:
        assert refusal(policy, tree / "access.log") is expected


@pytest.mark.parametrize(("mode", "expected"), [(NEVER, Reason.SYMLINK), (WITHIN, None), (ANYWHERE, None)])
def test_a_symlink_that_stays_inside_the_base_directory(
    tree: Path, mode: FollowSymlinks, expected: Reason | None
) -> None:
    (tree / "rotated").mkdir()
    (tree / "rotated" / "log.0").write_bytes(b"inside\n")
    (tree / "current.log").symlink_to("rotated/log.0")  # rotatelogs -l, cronolog --symlink
    policy = FilePolicy(mode, [tree])
    if expected is None:
        assert read_all(policy.open_file(str(tree / "current.log")).fd) == b"inside\n"
    else:
        assert refusal(policy, tree / "current.log") is expected


def test_a_symlinked_directory_cannot_redirect_the_glob_to_host_files(tree: Path) -> None:
    # `apache2 -> /etc`: the glob base/*/x.log reaches files of another directory through it
    elsewhere = tree.parent / "etc"
    elsewhere.mkdir()
    (elsewhere / "shadow.log").write_bytes(b"root:HASH\n")
    (tree / "apache2").symlink_to(elsewhere, target_is_directory=True)
    assert refusal(FilePolicy(WITHIN, [tree]), tree / "apache2" / "shadow.log") is Reason.OUTSIDE_BASE
    assert refusal(FilePolicy(NEVER, [tree]), tree / "apache2" / "shadow.log") is Reason.SYMLINK


def test_the_base_directory_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "data"
    real.mkdir()
    (real / "a.log").write_bytes(b"a\n")
    (tmp_path / "logs").symlink_to(real, target_is_directory=True)  # the operator's own choice
    for mode in (NEVER, WITHIN):
        assert (
            read_all(FilePolicy(mode, [tmp_path / "logs"]).open_file(str(tmp_path / "logs" / "a.log")).fd)
            == b"a\n"
        )


@pytest.mark.parametrize("mode", [NEVER, WITHIN, ANYWHERE])
def test_special_files_are_never_opened(tree: Path, mode: FollowSymlinks) -> None:
    os.mkfifo(tree / "fifo.log")
    (tree / "dir.log").mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tree / "sock.log"))
    policy = FilePolicy(mode, [tree])
    try:
        for name in ("fifo.log", "dir.log", "sock.log"):
            assert refusal(policy, tree / name) is Reason.NOT_REGULAR, name
    finally:
        listener.close()


def test_devices_are_never_opened_even_through_a_followed_link(tree: Path) -> None:
    (tree / "null.log").symlink_to("/dev/null")
    (tree / "zero.log").symlink_to("/dev/zero")
    policy = FilePolicy(ANYWHERE, [tree])
    with pytest.raises(Refused) as caught:
        policy.open_file(str(tree / "zero.log"))
    assert caught.value.reason is Reason.NOT_REGULAR and "device" in caught.value.detail
    assert refusal(FilePolicy(WITHIN, [tree]), tree / "zero.log") is Reason.OUTSIDE_BASE
    # /dev/null may be our own stdout (pytest -s < /dev/null ...): either way it is refused
    assert refusal(policy, tree / "null.log") in (Reason.NOT_REGULAR, Reason.OWN_OUTPUT)


def test_a_fifo_check_does_not_block_or_release_a_waiting_writer(tree: Path) -> None:
    os.mkfifo(tree / "access.log")
    released = threading.Event()

    def writer() -> None:
        try:
            fd = os.open(tree / "access.log", os.O_WRONLY)  # blocks until someone opens it to read
        except OSError:
            return
        released.set()
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    for mode in (NEVER, WITHIN, ANYWHERE):
        assert refusal(FilePolicy(mode, [tree]), tree / "access.log") is Reason.NOT_REGULAR
    assert not released.wait(0.5)  # nobody opened the FIFO for reading
    os.close(os.open(tree / "access.log", os.O_RDONLY | os.O_NONBLOCK))  # now someone does
    assert released.wait(5)
    thread.join(5)


@pytest.mark.parametrize("mode", [NEVER, WITHIN, ANYWHERE])
def test_our_own_stdout_is_never_followed(tree: Path, tmp_path: Path, mode: FollowSymlinks) -> None:
    # Our stdout redirected to a file inside the followed directory, and a log linked to /dev/stdout.
    out = tree / "our-stdout.log"
    saved = os.dup(1)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(fd, 1)
        os.close(fd)
        (tree / "access.log").symlink_to("/dev/stdout")
        policy = FilePolicy(mode, [tree])
        assert refusal(policy, out) is Reason.OWN_OUTPUT
        with pytest.raises(Refused) as caught:
            policy.open_file(str(tree / "access.log"))
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    assert caught.value.reason is Reason.OWN_OUTPUT
    assert "docker logs" in caught.value.detail  # the stdout-logging case is explained
    assert read_all(FilePolicy(mode, [tree]).open_file(str(out)).fd) == b""  # no longer our stdout


def test_a_dangling_link_is_not_found_not_refused(tree: Path) -> None:
    (tree / "access.log").symlink_to(tree / "not-yet.log")
    with pytest.raises(FileNotFoundError):
        FilePolicy(WITHIN, [tree]).open_file(str(tree / "access.log"))


def test_a_path_under_no_base_has_its_own_directory_as_base(tree: Path) -> None:
    (tree / "access.log").symlink_to(tree.parent / "secret")
    assert refusal(FilePolicy(WITHIN), tree / "access.log") is Reason.OUTSIDE_BASE
    assert FilePolicy(WITHIN, [tree.parent, tree]).base_for(str(tree / "x")) == str(tree)  # innermost


def test_a_link_swapped_between_a_log_and_a_secret_never_opens_the_secret(tree: Path) -> None:
    link = tree / "access.log"
    link.symlink_to("real.log")
    stop = threading.Event()

    swapping = threading.Event()

    def swap() -> None:
        tmp = tree / "access.log.tmp"
        while not stop.is_set():
            for target in (str(tree.parent / "secret"), "real.log"):
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(target)
                os.rename(tmp, link)
            swapping.set()

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    assert swapping.wait(5)
    policy = FilePolicy(WITHIN, [tree])
    opened = refused = attempts = 0
    # At least 3,000 opens; then on until both sides of the race were hit (the thread scheduler may
    # keep the swapper off the CPU for a whole stretch), within a deadline.
    deadline = time.monotonic() + 30
    try:
        while attempts < 3000 or not (opened and refused) and time.monotonic() < deadline:
            attempts += 1
            try:
                fd, _st = policy.open_file(str(link))
            except Refused as error:
                assert error.reason in (Reason.OUTSIDE_BASE, Reason.CHANGED)
                refused += 1
                continue
            except FileNotFoundError:
                continue
            assert read_all(fd) == b"real line\n"
            opened += 1
    finally:
        stop.set()
        swapper.join(5)
    assert opened and refused  # both sides of the race were hit, and the secret never came through


def test_each_refusal_is_reported_once_per_path_and_reason(tree: Path) -> None:
    os.mkfifo(tree / "fifo.log")
    (tree / "access.log").symlink_to(tree.parent / "secret")
    said: list[dict[str, object]] = []
    unsubscribe = events.subscribe(
        lambda event, fields: event.value == "file_refused" and said.append(fields)
    )
    policy = FilePolicy(WITHIN, [tree])
    try:
        for _ in range(3):
            for name in ("fifo.log", "access.log"):
                try:
                    policy.open_file(str(tree / name))
                except Refused as refused:
                    policy.report(refused)
    finally:
        unsubscribe()
    assert [(f["path"], f["reason"]) for f in said] == [
        (str(tree / "fifo.log"), "not_regular"),
        (str(tree / "access.log"), "outside_base"),
    ]
    assert said[1]["target"] == str(tree.parent / "secret")
    assert policy.refusals == {Reason.NOT_REGULAR: 1, Reason.OUTSIDE_BASE: 1}


def test_a_base_directory_swapped_for_a_link_after_start_does_not_move_the_base(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_bytes(b"log\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "access.log").write_bytes(b"SECRET\n")
    policy = FilePolicy(WITHIN, [logs])  # started while logs/ is a real directory
    logs.rename(tmp_path / "logs.old")
    logs.symlink_to(secrets, target_is_directory=True)  # the writer controls logs/'s parent
    with pytest.raises(Refused) as caught:
        policy.open_file(str(logs / "access.log"))
    assert caught.value.reason in (Reason.OUTSIDE_BASE, Reason.CHANGED)


NO_PROC_CHECK = """
import json, os, sys
from logsidecar.tail.open_policy import FilePolicy, Refused
assert not os.path.exists("/proc/self/fd"), "/proc is still mounted"
base = sys.argv[1]
policy = FilePolicy("within", [base])
result = {}
for name in ("real.log", "access.log", "fifo.log", "inside.log"):
    try:
        fd, _ = policy.open_file(os.path.join(base, name))
        result[name] = os.pread(fd, 100, 0).decode()
        os.close(fd)
    except Refused as refused:
        result[name] = refused.reason.value
print(json.dumps(result))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_without_proc_the_read_open_falls_back_to_o_nofollow_and_the_policy_holds(tree: Path) -> None:
    # A real process in a mount namespace where /proc is unmounted: no /proc/self/fd to reopen from.
    (tree / "access.log").symlink_to(tree.parent / "secret")
    (tree / "inside.log").symlink_to("real.log")
    os.mkfifo(tree / "fifo.log")
    done = subprocess.run(
        ["unshare", "--mount", "--fork", "sh", "-c", 'umount -l /proc && exec "$0" -c "$1" "$2"',
         sys.executable, NO_PROC_CHECK, str(tree)],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "real.log": "real line\n",
        "access.log": "outside_base",
        "fifo.log": "not_regular",
        "inside.log": "real line\n",
    }
