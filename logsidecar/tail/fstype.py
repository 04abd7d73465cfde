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


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The filesystem type of the mount holding `path` (resolved), or None if unknown."""
    try:
        text = mountinfo if mountinfo is not None else MOUNTINFO.read_text()
    except OSError:
        return None
    target = os.path.realpath(path)
    best_point = ""
    best_type: str | None = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        if len(fields) < 5:
            continue
        mount_point = _unescape(fields[4])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best_point):
            best_point = mount_point
            best_type = right.split()[0] if right.split() else None
    return best_type


def needs_polling(fs_type: str | None) -> bool:
    """True when inotify cannot be trusted on this filesystem type (or the type is unknown)."""
    if fs_type is None:
        return True
    return fs_type in POLLING_FS_TYPES or fs_type.startswith(("fuse", "smb"))
