"""Where a file starts: its checkpoint, 0, or the end; and start-up recovery of what was rotated while
we were down.

A new file resumes from its checkpoint (`find_checkpoint`: same dev+inode and a matching fingerprint,
or else an equal full fingerprint: the file was copied or moved across filesystems), or starts at 0
(start_at=end only for files present at startup without a checkpoint: after the last complete line).
Its identity is made durable before its first bytes are read (see the Tailer's Restart guarantees).

At startup, checkpointed files that were rotated while we were down are found next to their old path
by identity and drained from their checkpoint (`drain_files_rotated_while_down`), and rotated siblings
no checkpoint knows that were written after our last durable checkpoint are read from 0
(`read_files_created_after_last_checkpoint`). After lost inotify events the same search looks for
files written since the events may have been lost (`Tailer.rescan_after_lost_events`).

Startup's scans call the filesystem directly (not through the network-mount stall guard).
"""

from __future__ import annotations

import os
import time

from logsidecar import events
from logsidecar.events import Event, FileResumed, FileRotated
from logsidecar.tail.checkpoint_schedule import CheckpointSchedule
from logsidecar.tail.checkpoints import Checkpoint, CheckpointStore
from logsidecar.tail.copytruncate import SiblingSearch
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.discovery import PathMatcher
from logsidecar.tail.fileset import FileSet, FileState, TrackedFile
from logsidecar.tail.identity import Inode, fingerprints_match, new_file_key
from logsidecar.tail.options import StartAt, TailOptions
from logsidecar.tail.reader import FileReader, ReaderFactory

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".zip", ".lzma", ".br")
COMPRESSED_MAGIC = (
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",
    b"\x04\x22\x4d\x18",
    b"PK\x03\x04",
)


class Resume:
    def __init__(
        self,
        options: TailOptions,
        store: CheckpointStore,
        files: FileSet,
        counters: TailCounters,
        schedule: CheckpointSchedule,
        readers: ReaderFactory,
        siblings: SiblingSearch,
        matcher: PathMatcher,
    ) -> None:
        self.options = options
        self.store = store
        self.files = files
        self.counters = counters
        self.schedule = schedule
        self.readers = readers
        self.siblings = siblings
        self.matcher = matcher

    def start(self, reader: FileReader, state: FileState, startup: bool) -> None:
        """Follow a new file from its checkpoint, from 0, or (start_at=end, at startup) from its end."""
        checkpoint = self.find_checkpoint(reader)
        offset = 0
        if checkpoint is not None and checkpoint.offset <= reader.size:
            reader.file_key = checkpoint.file_key
            offset = checkpoint.offset
            events.emit(FileResumed(path=reader.path, file_key=reader.file_key, offset=offset))
        else:
            reader.file_key = new_file_key(reader.inode.dev, reader.inode.ino)
            if startup and self.options.start_at is StartAt.END and state is FileState.ACTIVE:
                offset = self._end_of_last_line(reader)
        reader.scan_offset = offset
        reader.framer.reset(offset)
        tracked = TrackedFile(
            reader,
            state,
            committed_offset=offset,
            rotated_at=time.monotonic() if state is FileState.ROTATED else None,
        )
        self.files.add(tracked)
        self.schedule.track(reader)
        if checkpoint is None or offset == 0:
            # make a fresh file's start durable too, so a restart knows it (and its offset 0)
            self.store.commit(reader.file_key, offset)
            # ...and durable *before* we read it: if we are killed before the next periodic write and
            # the file is rotated while we are down, the restart must still find it by identity.
            self.schedule.persist_identities_soon()
        self.counters.files_added += 1
        events.emit(
            Event.FILE_ADDED,
            path=reader.path,
            file_key=reader.file_key,
            offset=offset,
            size=reader.size,
            state=state.value,
        )
        if state is FileState.ROTATED:
            self.counters.rotations += 1
            events.emit(FileRotated(path=reader.path, file_key=reader.file_key, seen_late=True))

    def _end_of_last_line(self, reader: FileReader) -> int:
        """start_at=end: start after the last complete line, so a line being written is read whole."""
        size = reader.size
        window = min(size, self.options.max_line_bytes, 64 * 1024)
        try:
            tail = os.pread(reader.fd, window, size - window)
        except OSError:
            return size
        newline = tail.rfind(b"\n")
        if newline < 0:
            return (
                0 if window == size else size
            )  # no newline at all: the whole file is the line being written
        return size - window + newline + 1

    def find_checkpoint(self, reader: FileReader) -> Checkpoint | None:
        """A checkpoint for this file: same dev+inode and matching fingerprint, or else an equal full
        fingerprint (the file was copied or moved across filesystems). Followed keys are excluded."""
        best: Checkpoint | None = None
        for entry in self.store.entries():
            if entry.file_key in self.files:
                continue
            same_inode = entry.inode == reader.inode
            if not entry.fingerprint.length and entry.offset == 0 and same_inode:
                best = best or entry  # made durable while still empty: resuming at 0 is reading from 0
                continue
            if not entry.fingerprint.matches(reader.fingerprint):
                continue
            if same_inode:
                if best is None or best.inode != reader.inode or entry.last_seen > best.last_seen:
                    best = entry
            elif entry.fingerprint.length >= self.options.fingerprint_bytes and best is None:
                best = entry
        return best

    def drain_files_rotated_while_down(self) -> None:
        """Step 4 at startup: a checkpointed file no longer at its path may sit next to it under a
        rotated name (access.log.1). Found by identity, it is drained from its checkpoint."""
        followed = {t.reader.file_key for t in self.files.values()}
        inodes = self.files.inodes()
        for entry in self.store.entries():
            if entry.file_key in followed:
                continue
            # An empty fingerprint (the file was empty when we first made it durable) is matched by
            # dev+inode only.
            found = self.siblings.find_copy(
                entry.path, entry.fingerprint, entry.offset, inodes, same_inode=entry.inode
            )
            if found is None:
                continue
            fd, path, st, head = found
            reader = self.readers.make(fd, path, st, entry.file_key, head, entry.offset)
            tracked = TrackedFile(
                reader, FileState.ROTATED, committed_offset=entry.offset, rotated_at=time.monotonic()
            )
            self.files.add(tracked)
            inodes.add(Inode.of(st))
            self.schedule.track(reader)
            events.emit(
                FileResumed(
                    path=path,
                    file_key=entry.file_key,
                    offset=entry.offset,
                    rotated_while_down=True,
                    previous_path=entry.path,
                )
            )

    def read_files_created_after_last_checkpoint(self, since: float | None = None) -> None:
        """Step 4 at startup: a rotation can create a file and we can be killed before its identity
        was durable; if it is rotated again while we are down, no checkpoint names it. Such a file
        sits next to a followed path under a rotated name, is unknown to every checkpoint, and was
        written after our last durable checkpoint: it is read from 0. Copies of known content
        (copytruncate) and compressed files are not. With `since` (wall clock), files written since
        then are looked for instead: after lost inotify events (see rescan_after_lost_events)."""
        entries = self.store.entries()
        if since is not None:
            cutoff = since
        elif not entries:
            return  # first start: older rotated files are history, not ours
        else:
            cutoff = max(e.last_seen for e in entries) - max(self.options.checkpoint_interval_s, 1.0)
        followed = self.files.values()
        known_inodes = {e.inode for e in entries} | {t.reader.inode for t in followed}
        stored_fingerprints = [e.fingerprint for e in entries if e.fingerprint.length]
        followed_fingerprints = [t.reader.fingerprint for t in followed if t.reader.fingerprint]
        paths = {e.path for e in entries} | {t.reader.path for t in followed}
        for path in sorted(paths):
            directory, name = os.path.split(path)
            try:
                names = self.siblings.names(directory, name)
            except OSError:
                continue
            for candidate in names:
                candidate_path = os.path.join(directory, candidate)
                if candidate.endswith(COMPRESSED_SUFFIXES) or self.matcher.wants(candidate_path):
                    continue  # compressed, or followed by the glob under this name anyway
                st = self.siblings.inspect(candidate_path)
                if st is None:
                    continue
                inode = Inode.of(st)
                if inode in known_inodes or st.st_mtime < cutoff:
                    continue
                opened = self.siblings.open(candidate_path)
                if opened is None:
                    continue
                fd, st = opened
                reader = self.readers.new(fd, candidate_path, st)
                if (
                    reader.fingerprint.startswith(COMPRESSED_MAGIC)
                    or any(known.matches(reader.fingerprint) for known in stored_fingerprints)
                    or any(fingerprints_match(reader.fingerprint, known) for known in followed_fingerprints)
                ):
                    reader.close()
                    continue
                known_inodes.add(inode)
                self.start(reader, FileState.ROTATED, startup=False)
                events.emit(
                    FileResumed(
                        path=candidate_path,
                        file_key=reader.file_key,
                        offset=0,
                        rotated_while_down=since is None,
                        created_after_last_checkpoint=since is None,
                        created_while_events_were_lost=since is not None,
                        previous_path=path,
                    )
                )
