"""A stop leaves nothing unread: the compose demo (named-volume variant) on a real Docker engine.

Apache writes a burst, the sidecar gets SIGTERM at once, and the stack is torn down with its volumes
(`down -v`): every line must have reached the collector (rotel, read through the otlp-witness behind
it), exactly once, because nothing is left to resume from afterwards.

"At once" is made certain rather than hoped for: the sidecar is frozen (`docker pause`) while Apache
answers the burst and writes its lines; then it is stopped the way `down` stops it (`docker stop`:
SIGTERM, 10 s grace), which delivers the SIGTERM as it thaws. So at the moment it handles the signal
every line of the burst is unread. The collector is read before `down -v` (which removes it too); a
stopped container is not restarted (restart: unless-stopped), so whatever the collector has then came
from the stopped sidecar, and after `down -v` no checkpoint is left to resume anything from.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from logsidecar.tail.options import TailOptions
from logsidecar.tail.reading import READ_BUDGET_CHUNKS
from tests.support.compose_stack import ComposeStack, ids_with_prefix
from tests.support.helpers import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]

VARIANT = "named-volume"
DELIVERY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10  # what `docker compose down` (and docker stop) give a container before SIGKILL
SENDERS = 4
# A burst bigger than one read cycle of one file (an access-log line of these requests is ~110 bytes).
READ_CYCLE_BYTES = READ_BUDGET_CHUNKS * TailOptions(include=("x",)).read_chunk_bytes
BURST = 12000


@pytest.fixture
def stack(demo_images: None, e2e_run_id: str) -> Iterator[ComposeStack]:
    stack = ComposeStack(VARIANT, f"{e2e_run_id}drain")
    try:
        stack.up()
        wait_for(stack.apache_answers, timeout=60, interval=0.2, message="apache answers on 127.0.0.1")
        wait_for(stack.witness_answers, timeout=60, interval=0.2, message="otlp-witness answers")
        wait_for(stack.sidecar_following, timeout=60, interval=0.2, message="the sidecar follows its files")
        yield stack
    finally:
        if not stack.is_down:
            stack.down()


def send_burst(stack: ComposeStack, ids: list[str]) -> None:
    """Real HTTP requests from SENDERS keep-alive connections at once."""
    errors: list[BaseException] = []

    def sender(part: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", stack.apache_port, timeout=10)
        try:
            for request_id in part:
                connection.request("GET", f"/index.html?id={request_id}")
                response = connection.getresponse()
                response.read()
                assert response.status == 200
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender, args=(ids[n::SENDERS],)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []


def test_sigterm_right_after_a_burst_then_down_v_loses_nothing(stack: ComposeStack, e2e_report) -> None:
    prefix = "drain-burst-"
    sent = [f"{prefix}{n:05d}" for n in range(BURST)]
    sidecar = stack.container_id("logsidecar")

    subprocess.run(["docker", "pause", sidecar], check=True, capture_output=True)
    send_burst(stack, sent)
    # Apache writes a request's line after answering it: wait until every line is in the file.
    wait_for(
        lambda: (
            int(stack.exec("apache", "grep", "-c", f"id={prefix}", "/var/log/apache2/access.log")) == BURST
        ),
        timeout=60,
        interval=0.2,
        message="apache wrote every line of the burst",
    )
    burst_bytes = int(stack.exec("apache", "stat", "-c", "%s", "/var/log/apache2/access.log"))
    assert burst_bytes > READ_CYCLE_BYTES

    # SIGTERM as the sidecar thaws: every line of the burst is unread when it handles the signal.
    stack.compose("stop", "-t", str(STOP_TIMEOUT_S), "logsidecar", timeout=STOP_TIMEOUT_S + 60)
    state = json.loads(subprocess.run(
        ["docker", "inspect", "-f", "{{json .State}}", sidecar], check=True, capture_output=True, text=True
    ).stdout)  # fmt: skip
    last_lines = subprocess.run(
        ["docker", "logs", sidecar], capture_output=True, text=True, timeout=30
    ).stderr.splitlines()[-3:]

    def all_arrived() -> bool:
        return set(sent) <= set(ids_with_prefix(stack.collector_records(), prefix))

    try:
        wait_for(all_arrived, timeout=DELIVERY_TIMEOUT_S, interval=0.5)
    except AssertionError:
        pass  # the exactly-once check below names what is missing
    received = ids_with_prefix(stack.collector_records(), prefix)
    e2e_report(
        f"{VARIANT}/sigterm-after-burst",
        len(sent),
        sum(received.values()),
        sum(received.values()) - len(received),
    )

    volumes = stack.down()
    remaining = set(
        subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True, text=True).stdout.split()
    )
    assert sorted(set(volumes) & remaining) == []

    missing = sorted(set(sent) - set(received))
    duplicated = sorted(i for i, n in received.items() if n > 1)
    assert (len(missing), missing[:5], duplicated[:5]) == (0, [], []), last_lines
    assert received == Counter(sent)
    # 0: it stopped by itself within docker's grace period (137: docker had to SIGKILL it).
    assert (state["Status"], state["ExitCode"]) == ("exited", 0), last_lines
    stopped = json.loads(last_lines[-1])
    assert (stopped["event"], stopped["drained"]) == ("stopped", True), stopped
