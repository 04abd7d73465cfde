"""A real FUSE filesystem whose server can stop answering, like an NFS server that died.

Run as `python -m tests.support.stall_fs MOUNTPOINT NAME`: it mounts a filesystem (type `fuse`,
so logsidecar polls it) holding one file, NAME, that grows, and obeys commands on stdin, one per
line, answering each with `ok <command> <calls blocked so far>` on stdout:

- `append TEXT`: append TEXT and a newline to the file.
- `stall`: from now on every call on the mount (getattr of any path, readdir, open, read, the
  flush of a close) blocks in the server until `release`; the kernel passes each one to the server
  (no attribute or data cache: attr_timeout=0, entry_timeout=0, direct_io), so stats and reads in
  the client hang exactly as on a hard NFS mount whose server is gone.
- `release`: answer the blocked calls and every later one.
- `count`: just answer (how many calls were blocked so far).

It runs in the foreground until unmounted (`fusermount3 -u MOUNTPOINT`); end of stdin releases.
"""

from __future__ import annotations

import errno
import stat
import sys
import threading
import time
from typing import Any

import mfusepy as fuse


class StallFS(fuse.Operations):
    use_ns = True  # times in nanoseconds (mfusepy's non-deprecated mode)

    def __init__(self, name: str) -> None:
        self.file = "/" + name
        self.data = bytearray()
        self.mutex = threading.Lock()
        self.answering = threading.Event()
        self.answering.set()
        self.blocked = 0
        self.mounted_at = time.time_ns()
        self.changed_at = self.mounted_at

    def _wait_until_answering(self) -> None:
        if not self.answering.is_set():
            with self.mutex:
                self.blocked += 1
            self.answering.wait()

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        self._wait_until_answering()
        if path == "/":
            times = {"st_mtime": self.mounted_at, "st_ctime": self.mounted_at, "st_atime": self.mounted_at}
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_ino": 1, **times}
        if path == self.file:
            with self.mutex:
                size, changed = len(self.data), self.changed_at
            times = {"st_mtime": changed, "st_ctime": changed, "st_atime": changed}
            return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_ino": 2, "st_size": size, **times}
        raise fuse.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        self._wait_until_answering()
        return [".", "..", self.file[1:]]

    def open(self, path: str, flags: int) -> int:
        self._wait_until_answering()
        if path != self.file:
            raise fuse.FuseOSError(errno.ENOENT)
        return 0

    def flush(self, path: str, fh: int) -> int:
        self._wait_until_answering()  # close(2) waits for it, as NFS's close-to-open does
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        self._wait_until_answering()
        with self.mutex:
            return bytes(self.data[offset : offset + size])

    def obey(self, line: str) -> str:
        command, _, text = line.rstrip("\n").partition(" ")
        if command == "append":
            with self.mutex:
                self.data += text.encode() + b"\n"
                self.changed_at = time.time_ns()
        elif command == "stall":
            self.answering.clear()
        elif command == "release":
            self.answering.set()
        elif command != "count":
            return f"error unknown command {command!r}"
        with self.mutex:
            return f"ok {command} {self.blocked}"


def main() -> None:
    mountpoint, name = sys.argv[1], sys.argv[2]
    fs = StallFS(name)

    def obey_stdin() -> None:
        for line in sys.stdin:
            print(fs.obey(line), flush=True)
        fs.answering.set()

    threading.Thread(target=obey_stdin, daemon=True).start()
    fuse.FUSE(
        fs,
        mountpoint,
        foreground=True,
        fsname="stallfs",
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        direct_io=True,
    )


if __name__ == "__main__":
    main()
