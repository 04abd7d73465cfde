"""Which watch mechanism a directory needs, from its filesystem type.

inotify only sees changes made through the local kernel: on network and FUSE-style filesystems
(NFS, CIFS/SMB, 9p, virtiofs, Docker Desktop's grpcfuse/fakeowner bind mounts) writes by the other
side never raise an event, and on overlayfs (older kernels) writes to a lower-layer file can be
missed. Those get stat polling; everything else gets inotify plus a slow stat safety net.

The type is read from `/proc/self/mountinfo` (the mount whose mount point is the longest prefix of
the resolved path); when that is unavailable we assume polling is needed (the safe choice).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

POLLING_FS_TYPES = frozenset(
    {
        "overlay",
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "9p",
        "virtiofs",
        "grpcfuse",
        "fakeowner",
        "vboxsf",
        "prl_fs",
        "vmhgfs",
        "ceph",
        "glusterfs",
        "lustre",
        "afs",
        "davfs",
        "sshfs",
    }
)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")


@dataclass(frozen=True, slots=True)
class Mount:
    point: str
    fs_type: str | None


def mount_table(mountinfo: str | None = None) -> list[Mount] | None:
    """The mounts of /proc/self/mountinfo (or of `mountinfo`), or None when it cannot be read."""
    try:
        text = mountinfo if mountinfo is not None else MOUNTINFO.read_text()
    except OSError:
        return None
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        if len(fields) < 5:
            continue
        mounts.append(Mount(_unescape(fields[4]), right.split()[0] if right.split() else None))
    return mounts


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount whose mount point is the longest prefix of the absolute `path`, read lexically:
    resolving the path (symlinks) would ask the filesystem, which may be the one that hangs."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.point
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.point)):
            best = mount
    return best


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The filesystem type of the mount holding `path` (resolved), or None if unknown."""
    mounts = mount_table(mountinfo)
    if mounts is None:
        return None
    mount = mount_of(os.path.realpath(path), mounts)
    return mount.fs_type if mount is not None else None


def needs_polling(fs_type: str | None) -> bool:
    """True when inotify cannot be trusted on this filesystem type (or the type is unknown)."""
    if fs_type is None:
        return True
    return fs_type in POLLING_FS_TYPES or fs_type.startswith(("fuse", "smb"))
