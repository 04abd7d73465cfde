"""Copytruncate: a followed file whose content is copied away (access.log.1) and then truncated.

While the copy is being made it is a new file that starts like a followed one: it is not adopted
(`is_copy_of_followed`), or its lines would be read twice. When the followed file is found shorter
than our read offset, or its first bytes changed (`handle_truncation`), the tail that was copied away
is read from the copy (a sibling whose content starts with our fingerprint and is at least as long as
our offset), and the file itself restarts at 0 as a new content generation (a new file_key). The
hand-over is explicit: the old reader hands its descriptor over (`FileReader.hand_over`) to the
successor reading the truncated file, and continues in the copy (`FileReader.continue_in`), or, with
no copy, is dropped.

Copytruncate loss bound (documented, unavoidable for any tailer): bytes the writer appended after
logrotate finished copying and before it truncated are in neither file. If the copy is not visible in
the same directory when we notice the truncation (compressed at once without `delaycompress`,
`olddir` elsewhere, or removed), the bytes between our read offset and the truncation point are lost
too; that is at most what was written since our previous read of that file (under inotify: usually
nothing; when polling: at most poll_interval_s of writes). Such losses are counted in
`bytes_possibly_lost` and said in the `file_truncated` event (`recovered=False`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from logsidecar import events
from logsidecar.events import Event, FileSkipped, FileTruncated
from logsidecar.tail.checkpoint_schedule import CheckpointSchedule
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.fileset import FileSet, TrackedFile
from logsidecar.tail.identity import Inode, StoredFingerprint, new_file_key, read_fingerprint
from logsidecar.tail.open_policy import FilePolicy, Refused
from logsidecar.tail.options import TailOptions
from logsidecar.tail.reader import FileReader, Framed, ReaderFactory
from logsidecar.tail.reports import PathReports
from logsidecar.tail.retention import Retention

# Shared first bytes that make a new file "a copy of a followed file" (copytruncate's .1 being made).
# Mistaking a copy for a new file costs duplicates of its content; mistaking a distinct file for a
# copy loses the whole file. Two logs in one directory can start with the same probe line in the same
# second, so one line (~200 bytes) is not enough evidence: ask for several.
COPY_MIN_MATCH_BYTES = 512

T = TypeVar("T")

SiblingCopy = tuple[int, str, os.stat_result, bytes]  # descriptor, path, its stat, its first bytes


class SiblingSearch:
    """Files next to a path under a rotated name (access.log.1, access.log-2026...) holding its content."""

    def __init__(self, options: TailOptions, policy: FilePolicy, reports: PathReports) -> None:
        self.options = options
        self.policy = policy
        self.reports = reports
        self._listdir_cache: dict[str, list[str]] | None = None

    @contextmanager
    def listing_cached(self) -> Iterator[None]:
        """Within: each directory is listed once (startup and rescans look at the same ones per entry)."""
        self._listdir_cache = {}
        try:
            yield
        finally:
            self._listdir_cache = None

    def find_copy(
        self,
        path: str,
        fingerprint: StoredFingerprint,
        min_size: int,
        exclude_inodes: set[Inode],
        same_inode: Inode | None,
    ) -> SiblingCopy | None:
        """A file next to `path` whose name starts with path's name (access.log.1, access.log-2026...),
        whose content starts with `fingerprint` and which is at least `min_size` long; opened, with
        those first bytes. With `same_inode`, that inode is preferred and other inodes need a full
        fingerprint."""
        if not fingerprint.length and same_inode is None:
            return None
        directory, name = os.path.split(path)
        try:
            names = self.names(directory, name)
        except OSError:
            return None
        for candidate in names:
            candidate_path = os.path.join(directory, candidate)
            st = self.inspect(candidate_path)
            if st is None:
                continue
            inode = Inode.of(st)
            if inode in exclude_inodes or st.st_size < min_size:
                continue
            if (
                same_inode is not None
                and inode != same_inode
                and fingerprint.length < self.options.fingerprint_bytes
            ):
                continue
            opened = self.open(candidate_path)
            if opened is None:
                continue
            fd, st = opened
            try:
                head = os.pread(fd, fingerprint.length, 0)
            except OSError:
                os.close(fd)
                continue
            if StoredFingerprint.of(head) == fingerprint:
                return fd, candidate_path, st, head
            os.close(fd)
        return None

    def inspect(self, path: str) -> os.stat_result | None:
        """The policy's stat of a sibling; None when refused (reported once) or gone."""
        return self._under_policy(self.policy.inspect, path)

    def open(self, path: str) -> tuple[int, os.stat_result] | None:
        """A sibling opened under the policy; None as for `inspect`."""
        return self._under_policy(self.policy.open_file, path)

    def _under_policy(self, call: Callable[[str], T], path: str) -> T | None:
        try:
            return call(path)
        except Refused as refused:
            self.reports.refused(refused)
        except OSError:
            pass  # not an error: siblings come and go with rotations
        return None

    def names(self, directory: str, name: str) -> list[str]:
        """Names in `directory` that start with `name` (rotated generations: name.1, name-2026...).
        Raises OSError when the directory cannot be listed."""
        directory = directory or "."
        cache = self._listdir_cache
        if cache is not None and directory in cache:
            entries = cache[directory]
        else:
            entries = os.listdir(directory)
            if cache is not None:
                cache[directory] = entries
        return sorted(n for n in entries if n.startswith(name) and n != name)


class CopyTruncate:
    def __init__(
        self,
        options: TailOptions,
        files: FileSet,
        counters: TailCounters,
        reports: PathReports,
        siblings: SiblingSearch,
        readers: ReaderFactory,
        retention: Retention,
        schedule: CheckpointSchedule,
    ) -> None:
        self.options = options
        self.files = files
        self.counters = counters
        self.reports = reports
        self.siblings = siblings
        self.readers = readers
        self.retention = retention
        self.schedule = schedule

    def is_copy_of_followed(self, reader: FileReader) -> bool:
        """A new file in the same directory whose content starts like a followed file's is a copy of
        it (copytruncate's access.log.1 while it is being made): adopting it would read the same lines
        twice. handle_truncation reads it from our offset when the original is truncated."""
        directory = os.path.dirname(reader.path)
        candidate = reader.file_id
        for key, tracked in self.files.items():
            other = tracked.reader
            if other.inode == reader.inode or other.scan_offset == 0:
                continue
            if min(len(other.fingerprint), len(reader.fingerprint)) < COPY_MIN_MATCH_BYTES:
                continue  # too short to tell a copy from two files that merely start alike
            if os.path.dirname(other.path) == directory and other.file_id.same_content_start(candidate):
                if reader.inode not in self.files.skipped:
                    self.files.skipped.add(reader.inode)
                    events.emit(FileSkipped(path=reader.path, reason="copy of a followed file", file_key=key))
                return True
        return False

    def handle_truncation(self, key: str, tracked: TrackedFile) -> Framed:
        """Step 7: recover the copied-away tail from a visible copy, restart the file at 0. Returns the
        old generation's pending partial line when there was no copy (to be emitted as it is)."""
        reader = tracked.reader
        old_offset = reader.scan_offset
        self.counters.truncations += 1
        copy = self.siblings.find_copy(
            reader.path,
            StoredFingerprint.of(reader.fingerprint),
            old_offset,
            {reader.inode},
            same_inode=None,
        )
        leftover = Framed()
        # The truncated file continues as a new content generation (new key, offset 0), on the same fd.
        try:
            st = os.fstat(reader.fd)
            fingerprint = read_fingerprint(reader.fd, self.options.fingerprint_bytes)
        except OSError as error:
            if copy is not None:
                os.close(copy[0])
            self.reports.error(reader.path, error)
            return leftover
        new_key = new_file_key(st.st_dev, st.st_ino)
        successor = self.readers.make(reader.hand_over(), reader.path, st, new_key, fingerprint, 0)

        def truncated(
            recovered: bool, copy_path: str | None = None, bytes_known_lost: int | None = None
        ) -> None:
            """`file_truncated` for this generation change, with how the old tail went."""
            events.emit(
                FileTruncated(
                    path=successor.path,
                    file_key=key,
                    new_file_key=new_key,
                    offset=old_offset,
                    recovered=recovered,
                    copy_path=copy_path,
                    bytes_known_lost=bytes_known_lost,
                )
            )

        if copy is not None:
            copy_fd, copy_path, copy_st, _ = copy
            reader.continue_in(copy_fd, copy_path, copy_st)
            self.retention.mark_rotated(key, tracked, is_rotation=False)
            self.counters.copytruncate_recovered += 1
            self.schedule.track(reader)
            truncated(recovered=True, copy_path=copy_path)
            events.emit(
                Event.COPYTRUNCATE_RECOVERED,
                path=successor.path,
                copy_path=copy_path,
                file_key=key,
                from_offset=old_offset,
                bytes=max(copy_st.st_size - old_offset, 0),
            )
        else:
            # Nothing to recover from: what was written after our last read and before the truncation
            # is gone. The pending partial line (if any) is emitted as it is.
            lost = max(reader.size - old_offset, 0)
            self.counters.bytes_possibly_lost += lost
            reader.flush_partial(leftover)
            self.files.pop(key)
            truncated(recovered=False, bytes_known_lost=lost)
        self.files.add(TrackedFile(successor))
        self.schedule.track(successor)
        self.schedule.persist_identities_soon()
        return leftover
