"""The runtime imports hashlib without its OpenSSL backend (`logsidecar.runtime`): the digests that
checkpoints store (sha256 of a file's first bytes) and record uids carry (blake2b of file keys) must
stay bit for bit what they were, or every stored checkpoint would stop matching its file."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import orjson

from tests.support.paths import REPO_ROOT

SAMPLES = [
    b"",
    b"x",
    b'192.0.2.7 - - [05/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1\n' * 40,
    bytes(range(256)) * 8,
]

RUNTIME_DIGESTS = """
import sys, orjson
from logsidecar import runtime
runtime.import_asyncio_without_ssl()
runtime.import_hashlib_without_openssl()
import hashlib
samples = orjson.loads(sys.stdin.buffer.read())
print(orjson.dumps({
    "openssl": "_hashlib" in sys.modules,
    "sha256": [hashlib.sha256(bytes(s)).hexdigest() for s in samples],
    "blake2b": [hashlib.blake2b(bytes(s), digest_size=8).hexdigest() for s in samples],
}).decode())
"""


def test_the_runtime_digests_are_openssls_without_openssl() -> None:
    done = subprocess.run(
        [sys.executable, "-c", RUNTIME_DIGESTS],
        input=orjson.dumps([list(s) for s in SAMPLES]),
        capture_output=True,
        cwd=REPO_ROOT,
        check=True,
    )
    runtime = orjson.loads(done.stdout)
    assert runtime["openssl"] is False  # the backend was left out ...
    assert "_hashlib" in sys.modules  # ... here it is in: these are OpenSSL's digests
    assert runtime["sha256"] == [hashlib.sha256(s).hexdigest() for s in SAMPLES]
    assert runtime["blake2b"] == [hashlib.blake2b(s, digest_size=8).hexdigest() for s in SAMPLES]
