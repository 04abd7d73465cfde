"""PathMatcher and fstype: glob semantics incl. `**`, excludes, watched directories, mountinfo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logsidecar.tail.discovery import PathMatcher, static_base, translate_glob
from logsidecar.tail.fstype import filesystem_type, needs_polling


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/l/*.log", "/l/access.log", True),
        ("/l/*.log", "/l/sub/access.log", False),
        ("/l/**/*.log", "/l/access.log", True),
        ("/l/**/*.log", "/l/a/b/access.log", True),
        ("/l/access.log*", "/l/access.log.1", True),
        ("/l/access_log.[0-9]*", "/l/access_log.2026", True),
        ("/l/access_log.[!0-9]*", "/l/access_log.2026", False),
        ("/l/?.log", "/l/ab.log", False),
    ],
)
def test_translate_glob(pattern: str, path: str, matches: bool) -> None:
    assert bool(translate_glob(pattern).match(path)) is matches


def test_static_base() -> None:
    assert static_base("/var/log/apache2/*.log") == Path("/var/log/apache2")
    assert static_base("/var/log/**/access.log") == Path("/var/log")
    assert static_base("/var/log/access.log") == Path("/var/log")


def test_scan_applies_excludes_and_finds_nested_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("access.log", "error.log", "access.log.1.gz", "a/vhost.log", ".hidden.log"):
        (tmp_path / name).write_text("x\n")
    matcher = PathMatcher((str(tmp_path / "**" / "*.log*"),), exclude=(str(tmp_path / "*.gz"),))
    assert matcher.scan() == sorted(str(tmp_path / n) for n in ("access.log", "error.log", "a/vhost.log"))
    assert matcher.wants(str(tmp_path / "a" / "new.log"))
    assert not matcher.wants(str(tmp_path / "old.log.gz"))
    assert not matcher.wants(str(tmp_path / ".hidden.log"))
    assert tmp_path / "a" in matcher.directories_to_watch(matcher.scan())


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:40 / /var/log/apache2 rw,relatime - overlay overlay rw,lowerdir=/a
41 27 0:41 / /mnt/nfs rw,relatime - nfs4 server:/export rw
42 27 0:42 / /host rw,relatime - fuse.grpcfuse grpcfuse rw
43 27 0:43 / /with\\040space rw,relatime - 9p 9p rw
"""


@pytest.mark.parametrize(
    ("path", "fs_type", "polling"),
    [
        ("/var/log/apache2/access.log", "overlay", True),
        ("/var/lib/x", "ext4", False),
        ("/mnt/nfs/logs/a.log", "nfs4", True),
        ("/host/logs", "fuse.grpcfuse", True),
        ("/with space/logs", "9p", True),
        ("/mnt/nfsother", "ext4", False),
    ],
)
def test_filesystem_type_from_mountinfo(path: str, fs_type: str, polling: bool) -> None:
    assert filesystem_type(Path(path), MOUNTINFO) == fs_type
    assert needs_polling(fs_type) is polling


def test_unknown_filesystem_polls() -> None:
    assert needs_polling(None)


def test_compressed_generations_are_never_followed(tmp_path):
    for name in ("access.log", "access.log.1", "access.log.2.gz", "access.log.3.bz2", "access.log.4.zst"):
        (tmp_path / name).write_text("x\n")
    matcher = PathMatcher((str(tmp_path / "access.log*"),))
    assert [os.path.basename(p) for p in matcher.scan()] == ["access.log", "access.log.1"]
    assert not matcher.wants(str(tmp_path / "access.log.2.gz"))
    assert matcher.wants(str(tmp_path / "access.log.1"))
