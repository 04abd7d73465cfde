"""Large OTLP buffers go back to the system when freed: glibc's mmap threshold, fixed at 512 KiB.

Why: an export request is ~1 MiB (2,048 records; up to the 4 MiB cap), and up to 4 are in flight,
each copied by grpc (or requests) on its way out. glibc serves a block above its mmap threshold
(128 KiB at start) with its own mmap and unmaps it on free, but raises the threshold to the size of
every such block freed (its "dynamic threshold", up to 32 MiB): after the first requests, they come
from the heaps of the malloc arenas instead, where the freed megabytes stay resident, scattered
between smaller blocks. Fixing the threshold (`mallopt(M_MMAP_THRESHOLD)`, which also turns the
dynamic threshold off) keeps requests and grpc's copies of them out of the heaps. Measured with
benchmarks/otlp_throughput.py (1M lines into rotel, fp-venv, alternated): peak RSS OTLP/gRPC ~100 ->
~87 MiB, OTLP/HTTP ~85 -> ~76 MiB, CPU s per line unchanged. 128 KiB also lowers the peak but costs
~15 % CPU (file chunks and line lists are then mmapped too); 1 MiB misses the ~1 MiB requests.

Applied when the OTLP sink starts (before its transport's threads and the first request), not for
stdout, whose buffers are smaller. The user's own MALLOC_MMAP_THRESHOLD_ wins (glibc read it at
start); on a libc without mallopt (musl) nothing happens. ctypes (and libc's mallopt) are
documented APIs; importing ctypes costs ~0.6 MiB, less than the peak it saves.

Why not MALLOC_MMAP_THRESHOLD_ in the runtime's environment at its exec (service/handover), which
would also cover stdout and spare ctypes: measured (fp-venv, alternated), idle OTLP/gRPC into rotel
42.9/43.1 MiB with it against 42.7/42.7 with this, and stdout JSON (1M lines) pays for it:
0.45/0.45 -> 0.61/0.57 CPU s per 100k lines, 245k -> 174-189k lines/s, for a peak 1.5 MiB lower.
"""

from __future__ import annotations

import os

LARGE_BUFFER_BYTES = 512 * 1024
_M_MMAP_THRESHOLD = -3  # <malloc.h>


def release_large_buffers(threshold: int = LARGE_BUFFER_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes; True when applied."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no libc to load, or one without mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
