"""File identity: growing prefix fingerprints, keys distinct per content generation."""

from __future__ import annotations

import os
from pathlib import Path

from logsidecar.tail.identity import FileId, fingerprints_match, new_file_key, read_fingerprint


def test_fingerprint_that_grew_still_matches() -> None:
    assert fingerprints_match(b"GET /a", b"GET /a HTTP/1.1\n")
    assert fingerprints_match(b"GET /a HTTP/1.1\n", b"GET /a")


def test_different_first_bytes_do_not_match() -> None:
    assert not fingerprints_match(b"GET /a", b"GET /b")


def test_empty_fingerprint_matches_nothing() -> None:
    assert not fingerprints_match(b"", b"")
    assert not fingerprints_match(b"", b"abc")


def test_same_inode_with_other_content_is_not_the_same_file() -> None:
    old = FileId(dev=1, ino=42, fingerprint=b"old content")
    reused = FileId(dev=1, ino=42, fingerprint=b"new content")
    assert old.same_inode(reused)
    assert not old.same_content_start(reused)


def test_read_fingerprint_is_capped_and_short_for_small_files(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"x" * 40)
    big = tmp_path / "big"
    big.write_bytes(b"y" * 5000)
    for path, expected in ((small, b"x" * 40), (big, b"y" * 1024)):
        fd = os.open(path, os.O_RDONLY)
        try:
            assert read_fingerprint(fd, 1024) == expected
        finally:
            os.close(fd)


def test_file_keys_are_distinct_for_the_same_inode() -> None:
    keys = {new_file_key(1, 42) for _ in range(100)}
    assert len(keys) == 100
    assert all(key.startswith("1-2a-") for key in keys)
