"""Recovery after a collector returns: the batches waiting out their backoff go out at once.

A real receiver (tests/support/otlp_receiver.py) is stopped while several sends of one sink are in
flight; they back off towards `max_backoff_s`. It is started again on the same port. The first send
that gets through ends the backoff of the others (`ExportRetry._back_off`), so every in-flight batch is
delivered about one export round-trip after the first one, not each after its own backoff. Over gRPC
with round_robin the channel reconnects by itself and says so: then even the first goes out within
grpc's reconnect backoff of the return, not at its own next attempt. A delay the server asked for
(RetryInfo) is still waited out in full."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from logsidecar import events
from logsidecar.events import Event
from logsidecar.record import LogRecord
from logsidecar.sinks.otlp import OtlpSink
from logsidecar.sinks.otlp_retry import RECOVERY_JITTER_S
from logsidecar.sinks.otlp_settings import LoadBalancing, OtlpProtocol, OtlpSettings
from logsidecar.sinks.otlp_transport import GRPC_MAX_RECONNECT_BACKOFF_MS
from tests.support.helpers import wait_for_async
from tests.support.otlp_receiver import GrpcWitness, HttpWitness, port_accepts

IN_FLIGHT = 4  # concurrent sends of one sink (the pipeline's lane workers)
RECORDS_PER_BATCH = 200
INITIAL_BACKOFF_S = 0.2
MAX_BACKOFF_S = 3.0


@pytest.fixture
def retries() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def note(event: Any, fields: dict[str, Any]) -> None:
        if event is Event.SINK_RETRY:
            seen.append({**fields, "at": time.monotonic()})

    unsubscribe = events.subscribe(note)
    yield seen
    unsubscribe()


def batch(name: str) -> list[LogRecord]:
    return [LogRecord(body=f"{name} {i}") for i in range(RECORDS_PER_BATCH)]


async def round_trip_s(sink: OtlpSink) -> float:
    """The slowest of three exports of one batch to the live receiver: what one delivery costs here."""
    slowest = 0.0
    for n in range(3):
        began = time.monotonic()
        await sink.send(batch(f"probe{n}"))
        slowest = max(slowest, time.monotonic() - began)
    return slowest


def capped_attempt(cap_s: float) -> int:
    """The first attempt whose backoff (INITIAL_BACKOFF_S, doubling) reaches the cap `cap_s`."""
    attempt = 1
    while INITIAL_BACKOFF_S * 2 ** (attempt - 1) < cap_s:
        attempt += 1
    return attempt


async def sends_backing_off_at_the_cap(
    sink: OtlpSink,
    receiver: GrpcWitness | HttpWitness,
    cap_s: float,
    retries: list[dict[str, Any]],
    delivered_at: dict[str, float],
    message: str,
) -> list[asyncio.Task[None]]:
    """Start `sink`, send a warm-up batch (the connection is up), stop `receiver` and send IN_FLIGHT
    batches b0, b1... (each notes in `delivered_at` when it got through). Returns their tasks once
    each send failed until its backoff reached the cap: from then on, left alone, each waits
    0.8-1.2 x cap_s between attempts, at its own phase. (Every send reports each attempt number once.)"""

    async def send(name: str) -> None:
        await sink.send(batch(name))
        delivered_at[name] = time.monotonic()

    await sink.start()
    await sink.send(batch("warm-up"))  # the connection is up, then goes down under the sends
    await asyncio.to_thread(receiver.stop)
    tasks = [asyncio.create_task(send(f"b{n}")) for n in range(IN_FLIGHT)]
    capped = capped_attempt(cap_s)
    await wait_for_async(
        lambda: sum(1 for r in retries if r["attempt"] == capped) >= IN_FLIGHT, 60, 0.01, message=message
    )
    return tasks


def stopped_receiver(protocol: OtlpProtocol) -> tuple[GrpcWitness | HttpWitness, str]:
    """A witness (not started yet; `stop()` + `start()` keep its port and what it received) and its endpoint."""
    if protocol is OtlpProtocol.GRPC:
        grpc_witness = GrpcWitness()
        return grpc_witness, grpc_witness.endpoint
    http_witness = HttpWitness()
    return http_witness, http_witness.url


@pytest.mark.parametrize("protocol", [OtlpProtocol.GRPC, OtlpProtocol.HTTP_PROTOBUF], ids=["grpc", "http"])
def test_in_flight_batches_are_delivered_one_round_trip_after_the_first_not_after_their_backoff(
    protocol: OtlpProtocol, retries: list[dict[str, Any]]
) -> None:
    receiver, endpoint = stopped_receiver(protocol)
    receiver.start()
    sink = OtlpSink(
        OtlpSettings(
            endpoint=endpoint,
            protocol=protocol,
            initial_backoff_s=INITIAL_BACKOFF_S,
            max_backoff_s=MAX_BACKOFF_S,
        )
    )
    delivered_at: dict[str, float] = {}

    async def scenario() -> tuple[float, float]:
        tasks = await sends_backing_off_at_the_cap(
            sink, receiver, MAX_BACKOFF_S, retries, delivered_at, "every send backing off at the cap"
        )
        returned = time.monotonic()
        await asyncio.to_thread(receiver.start)
        await wait_for_async(lambda: port_accepts(receiver.port), 10, 0.01, message="the receiver listening")
        await asyncio.wait_for(asyncio.gather(*tasks), 4 * MAX_BACKOFF_S)
        trip = await round_trip_s(sink)
        await sink.close()
        return returned, trip

    try:
        returned, trip = asyncio.run(scenario())
        receiver_bodies = Counter(receiver.bodies())
    finally:
        receiver.stop()
    first, last = min(delivered_at.values()), max(delivered_at.values())
    print(
        f"{protocol.value}: receiver back -> first batch {first - returned:.3f}s, -> last {last - returned:.3f}s;"
        f" first -> last {last - first:.3f}s (one round-trip {trip:.3f}s, backoff cap {MAX_BACKOFF_S}s)"
    )
    # Nothing lost while the sends waited.
    for name in delivered_at:
        assert all(receiver_bodies[f"{name} {i}"] >= 1 for i in range(RECORDS_PER_BATCH)), name
    # The others were woken by the first success: each needed its jitter and one export (they go
    # concurrently; serialized on the connection at worst, IN_FLIGHT round-trips). Left to their own
    # backoff they would come at their own phases within 0.8-1.2 x MAX_BACKOFF_S.
    bound = RECOVERY_JITTER_S + IN_FLIGHT * trip
    assert bound < 0.8 * MAX_BACKOFF_S / 2, "the receiver is too slow here for the bound to mean anything"
    assert last - first <= bound


def test_over_grpc_round_robin_every_batch_goes_out_once_the_channel_reconnects_not_at_its_next_attempt(
    retries: list[dict[str, Any]],
) -> None:
    receiver = GrpcWitness().start()
    cap_s = 10.0  # well above grpc's reconnect backoff, so waiting for our own next attempt shows
    sink = OtlpSink(
        OtlpSettings(
            endpoint=receiver.endpoint,
            load_balancing=LoadBalancing.ROUND_ROBIN,
            initial_backoff_s=INITIAL_BACKOFF_S,
            max_backoff_s=cap_s,
        )
    )
    delivered_at: dict[str, float] = {}

    async def scenario() -> tuple[float, float, float]:
        tasks = await sends_backing_off_at_the_cap(
            sink, receiver, cap_s, retries, delivered_at, "every send at the cap"
        )
        capped = capped_attempt(cap_s)
        # Each send just began a wait of at least 0.8 x cap_s (less how far apart their attempts drifted).
        drift = max(r["at"] for r in retries if r["attempt"] == capped) - min(
            r["at"] for r in retries if r["attempt"] == capped
        )
        returned = time.monotonic()
        await asyncio.to_thread(receiver.start)
        await asyncio.wait_for(asyncio.gather(*tasks), 2 * cap_s)
        trip = await round_trip_s(sink)
        await sink.close()
        own_next_attempt = 0.8 * cap_s - drift
        return returned, trip, own_next_attempt

    try:
        returned, trip, own_next_attempt = asyncio.run(scenario())
    finally:
        receiver.stop()
    last = max(delivered_at.values()) - returned
    print(
        f"\ngrpc round_robin: receiver back -> last batch {last:.3f}s (own next attempt >= {own_next_attempt:.3f}s)"
    )
    # The channel is READY within grpc's reconnect backoff (+20 % jitter) of the return; then every
    # send retries within the jitter and needs one export (IN_FLIGHT round-trips if serialized).
    bound = 1.2 * GRPC_MAX_RECONNECT_BACKOFF_MS / 1000 + RECOVERY_JITTER_S + IN_FLIGHT * trip
    assert bound < own_next_attempt, (
        "the sends' own next attempts came too soon for the bound to mean anything"
    )
    assert last <= bound


def test_a_delay_the_server_asked_for_is_not_cut_short_by_another_send_getting_through() -> None:
    with GrpcWitness() as receiver:
        receiver.throttle_responses = 1
        receiver.throttle_delay_s = 1.5
        # The server asks for 1.5 s; our own backoff would be 0.01 s.
        sink = OtlpSink(OtlpSettings(endpoint=receiver.endpoint, initial_backoff_s=0.01))
        done_at: dict[str, float] = {}

        async def send(name: str) -> None:
            await sink.send(batch(name))
            done_at[name] = time.monotonic()

        async def scenario() -> None:
            await sink.start()
            throttled = asyncio.create_task(send("throttled"))
            await wait_for_async(lambda: receiver.throttle_log, 10, 0.01, message="the throttled answer")
            await send("other")  # accepted while the throttled one waits as told
            await throttled
            await sink.close()

        asyncio.run(scenario())
    waited = done_at["throttled"] - receiver.throttle_log[0]
    assert done_at["other"] < done_at["throttled"]
    assert waited >= receiver.throttle_delay_s * 0.95
