"""File identity: which file is this, independently of the path it is found at.

A file is identified by device + inode (`Inode`, the OS identity of an open file: does this path still
point at my file?) *and* a fingerprint: the first bytes of its content, up to `fingerprint_bytes`
(`FileId` is both). The fingerprint grows while the file is small (a quiet error_log may stay under
1 KiB for days), so two fingerprints "match" when the shorter one is a prefix of the longer one.

Invariants:
- The inode alone is never trusted: a new file on a reused inode starts with other bytes (or none),
  so its fingerprint does not extend the old one and it is read from 0.
- An empty fingerprint (empty file) matches nothing: there is nothing to resume in an empty file.
- The fingerprint's bytes stay in memory; what is stored (checkpoints) is a `StoredFingerprint`: its
  length and a SHA-256 of those bytes, never the bytes (the first KiB of a log, or of a secret a
  link pointed to, is content). A stored fingerprint matches a candidate with at least that many
  bytes whose first `length` bytes hash the same: a fingerprint that grew still matches.
- `file_key` is a stable opaque string naming one *content generation* of a file: it survives renames
  (rotation) and restarts (it is stored in the checkpoint), and a truncation starts a new generation
  with a new key, so offsets under one key only ever grow. It is used in checkpoints and in
  `log.record.uid`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Inode:
    """Device and inode number: where the OS keeps a file, whatever path it is found at. Names an open
    file while it is open; across time never trusted alone (inodes are reused: see `FileId`)."""

    dev: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> Inode:
        return cls(st.st_dev, st.st_ino)


@dataclass(frozen=True, slots=True)
class FileId:
    """Device, inode and the fingerprint (first bytes) of a file as last seen."""

    dev: int
    ino: int
    fingerprint: bytes

    @property
    def inode(self) -> Inode:
        return Inode(self.dev, self.ino)

    def same_inode(self, other: FileId) -> bool:
        return self.dev == other.dev and self.ino == other.ino

    def same_content_start(self, other: FileId) -> bool:
        """True when one fingerprint is a prefix of the other and neither is empty."""
        return fingerprints_match(self.fingerprint, other.fingerprint)


def fingerprints_match(a: bytes, b: bytes) -> bool:
    """Prefix match of two non-empty fingerprints (the longer one grew from the shorter one)."""
    if not a or not b:
        return False
    if len(a) <= len(b):
        return b.startswith(a)
    return a.startswith(b)


@dataclass(frozen=True, slots=True)
class StoredFingerprint:
    """A fingerprint as the checkpoint store keeps it: length and SHA-256, no content."""

    length: int
    sha256: bytes

    @classmethod
    def of(cls, fingerprint: bytes) -> StoredFingerprint:
        return cls(len(fingerprint), hashlib.sha256(fingerprint).digest())

    def matches(self, fingerprint: bytes) -> bool:
        """`fingerprint` (raw, possibly longer: it grew) starts with the bytes we hashed. Empty
        fingerprints match nothing."""
        if not self.length or len(fingerprint) < self.length:
            return False
        return hashlib.sha256(fingerprint[: self.length]).digest() == self.sha256


EMPTY_FINGERPRINT = StoredFingerprint.of(b"")


def read_fingerprint(fd: int, fingerprint_bytes: int) -> bytes:
    """The first `fingerprint_bytes` of the open file (fewer when the file is shorter)."""
    return os.pread(fd, fingerprint_bytes, 0)


def new_file_key(dev: int, ino: int) -> str:
    """A fresh key for a new content generation. The random part keeps keys of files that reused an
    inode (or of a truncated file's next generation) distinct in checkpoints and record uids."""
    # os.urandom is what secrets.token_hex uses; the secrets module would load hmac and OpenSSL's
    # hashlib backend (~3.4 MiB of RSS) for these four bytes.
    return f"{dev:x}-{ino:x}-{os.urandom(4).hex()}"
