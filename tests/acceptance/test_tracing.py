"""Traces (issue 13 §3): the Publish's RPC span, and the run, chunk and provider
send spans of its delivery linked to it; the per-RPC log line names the trace."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pushhub.v1 import registration_pb2 as reg
from pushhub.v1 import status_pb2
from pushhub_server.core.clock import ManualClock
from tests.own_database import own_database

from .harness import (
    APNS,
    FCM,
    PUBLISHED,
    AppHandle,
    Stubs,
    create_app,
    new_token,
    settle,
    start_test_server,
    stream_requests,
)

PUBLISH = "/pushhub.v1.PublishService/Publish"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def traced(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, spans: InMemorySpanExporter
) -> AsyncIterator[object]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    async with own_database(
        database_url, tmp_path_factory.mktemp("tracing"), "test_tracing"
    ) as url:
        running = await start_test_server(
            url, ManualClock(), chunk_size=2, tracer_provider=provider
        )
        try:
            yield running
        finally:
            await running.stop(1.0)


@pytest_asyncio.fixture(loop_scope="session")
async def traced_app(traced) -> AsyncIterator[AppHandle]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{traced.port}") as channel:
        yield await create_app(Stubs.on(channel), ManualClock())


async def test_delivery_spans_link_to_the_publish(
    traced, traced_app: AppHandle, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    for platform in (APNS, APNS, FCM):
        await traced_app.register(platform=platform)
    spans.clear()
    caplog.set_level(logging.INFO, logger="pushhub.rpc")

    published = await traced_app.publish(message="traced", broadcast=True)
    status = await settle(traced, traced_app, published.message_id)
    assert status.state == PUBLISHED

    finished = spans.get_finished_spans()
    (publish,) = [span for span in finished if span.name == PUBLISH]
    (run,) = _named(finished, "pushhub.run")
    chunks = _named(finished, "pushhub.chunk")
    sends = _named(finished, "pushhub.provider_send")
    assert len(chunks) == 2  # three recipients, two to a chunk
    assert {span.attributes["pushhub.platform"] for span in sends} == {"apns", "fcm"}

    publish_context = publish.context
    publish_ids = (publish_context.trace_id, publish_context.span_id)
    for span in (run, *chunks, *sends):
        linked = [(link.context.trace_id, link.context.span_id) for link in span.links]
        assert linked == [publish_ids], span.name
    assert run.attributes["pushhub.message_id"] == published.message_id
    assert run.parent is None  # a trace of its own, linked to the Publish
    assert {chunk.parent.span_id for chunk in chunks} == {run.context.span_id}
    chunk_ids = {chunk.context.span_id for chunk in chunks}
    assert all(send.parent.span_id in chunk_ids for send in sends)

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pushhub.rpc"]
    (publish_line,) = [line for line in lines if line["method"] == PUBLISH]
    assert publish_line["trace_id"] == format(publish_context.trace_id, "032x")


async def test_a_refused_call_is_traced_and_logged_with_its_trace(
    traced, traced_app: AppHandle, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    spans.clear()
    caplog.set_level(logging.INFO, logger="pushhub.rpc")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await traced_app.publish(auth=(("authorization", "Bearer not-a-key"),), message="x")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    (span,) = [span for span in spans.get_finished_spans() if span.name == PUBLISH]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pushhub.rpc"]
    (line,) = [line for line in lines if line["method"] == PUBLISH]
    assert line["code"] == "UNAUTHENTICATED"
    assert line["trace_id"] == format(span.context.trace_id, "032x")


async def test_without_tracing_the_log_line_has_no_trace_id(
    app: AppHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pushhub.rpc")
    await app.register()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pushhub.rpc"]
    assert lines and all("trace_id" not in line for line in lines)


def _named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_streaming_calls_are_traced(
    traced, traced_app: AppHandle, spans: InMemorySpanExporter
) -> None:
    """A bidi import and a server-streamed watch answer as without tracing."""
    spans.clear()
    batch = reg.RegisterDevicesRequest(
        registrations=[reg.RegisterDeviceRequest(platform=APNS, device_token=new_token())]
    )
    call = traced_app.stubs.registrations.RegisterDevices(
        stream_requests([batch]), metadata=traced_app.server()
    )
    answers = [answer async for answer in call]
    assert answers[0].results[0].WhichOneof("outcome") == "response"

    published = await traced_app.publish(message="watched", broadcast=True)
    await settle(traced, traced_app, published.message_id)
    watch = traced_app.stubs.status.WatchMessageStatus(
        status_pb2.WatchMessageStatusRequest(message_id=published.message_id),
        metadata=traced_app.server(),
    )
    states = [answer.status.state async for answer in watch]
    assert states[-1] == PUBLISHED

    names = {span.name for span in spans.get_finished_spans()}
    assert "/pushhub.v1.DeviceRegistrationService/RegisterDevices" in names
    assert "/pushhub.v1.StatusService/WatchMessageStatus" in names
