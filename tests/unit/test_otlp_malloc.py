"""sinks/otlp_malloc: after `release_large_buffers`, a request-sized block is a mapping of its own
(unmapped when freed), even after glibc's dynamic threshold would have put it in the heap; the
user's MALLOC_MMAP_THRESHOLD_ wins. Each case runs in a fresh interpreter: the setting is per
process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc's malloc only",
)

# Frees a 4 MiB block (glibc raises its dynamic mmap threshold to 4 MiB), then allocates a 600 KiB
# block (between our threshold and that one) and says whether it lies in the brk heap.
PROBE = textwrap.dedent(
    """
    import sys
    from logsidecar.sinks.otlp_malloc import release_large_buffers
    applied = release_large_buffers() if sys.argv[1] == "release" else False
    big = bytes(4 << 20)
    del big
    block = bytes(600 << 10)
    address = id(block)
    in_heap = False
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= address < end:
                in_heap = line.rstrip().endswith("[heap]")
    print(applied, in_heap, "ctypes" in sys.modules)
    """
)


def probe(mode: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_without_it_a_request_sized_block_lands_in_the_heap() -> None:
    # The situation the module is for: the dynamic threshold keeps freed megabytes in the heap.
    assert probe("none") == ["False", "True", "False"]


def test_with_it_a_request_sized_block_is_its_own_mapping() -> None:
    assert probe("release") == ["True", "False", "True"]


def test_the_users_threshold_wins_and_ctypes_is_not_loaded() -> None:
    assert probe("release", MALLOC_MMAP_THRESHOLD_="8388608") == ["False", "True", "False"]
