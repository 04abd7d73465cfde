"""Sinks declare how the pipeline batches and sends to them (`Sink.capabilities`): the OTLP sink from
its settings, stdout by the default (one send at a time, in order, no waiting for more)."""

from __future__ import annotations

import io

from logsidecar.sinks.base import SinkCapabilities
from logsidecar.sinks.otlp import OtlpSink
from logsidecar.sinks.otlp_settings import OtlpSettings
from logsidecar.sinks.stdout import StdoutFormat, StdoutSink


def test_otlp_sink_declares_the_batching_of_its_settings() -> None:
    settings = OtlpSettings(
        endpoint="http://unused:4317", batch_timeout_s=0.35, batch_size=7, max_concurrent_sends=3
    )
    assert OtlpSink(settings).capabilities == SinkCapabilities(
        batch_timeout_s=0.35, max_batch_records=7, max_concurrent_sends=3
    )


def test_stdout_sink_sends_each_batch_at_once_and_in_order() -> None:
    sink = StdoutSink(StdoutFormat.JSON, stream=io.BytesIO())
    assert sink.capabilities == SinkCapabilities()
    assert (sink.capabilities.batch_timeout_s, sink.capabilities.max_concurrent_sends) == (0.0, 1)
