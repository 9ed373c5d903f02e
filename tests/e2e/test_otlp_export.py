"""`pushhub serve` with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans by OTLP
(issue 13 §3): the Publish's span and its delivery's, linked, reach a collector."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from pushhub.v1 import (
    common_pb2,
    publish_pb2,
    publish_pb2_grpc,
    registration_pb2,
    registration_pb2_grpc,
)
from tests.e2e.server_process import Launcher, ServerProcess
from tests.fakes.otlp_collector import Collector, running_collector

PUBLISH = "/pushhub.v1.PublishService/Publish"
WAIT_SECONDS = 30.0


@pytest_asyncio.fixture(loop_scope="session")
async def collector() -> AsyncIterator[Collector]:
    async with running_collector() as running:
        yield running


@pytest.fixture
def launcher(collector: Collector, tmp_path: Path) -> Iterator[Launcher]:
    settings = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_SERVICE_NAME": "pushhub-e2e",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds between batches
    }
    launcher = Launcher(f"sqlite+aiosqlite:///{tmp_path / 'otlp.db'}", tmp_path, settings)
    try:
        yield launcher
    finally:
        launcher.kill_all()


async def test_spans_reach_the_collector_linked_to_the_publish(
    launcher: Launcher, collector: Collector
) -> None:
    key = json.loads(launcher.cli("apps", "create", "traced", "--json"))["server_key"]
    server: ServerProcess = await launcher.serve()
    auth = (("authorization", f"Bearer {key}"),)
    async with grpc.aio.insecure_channel(server.address) as channel:
        await registration_pb2_grpc.DeviceRegistrationServiceStub(channel).RegisterDevice(
            registration_pb2.RegisterDeviceRequest(
                platform=common_pb2.PLATFORM_APNS, device_token="ab" * 32
            ),
            metadata=auth,
        )
        await publish_pb2_grpc.PublishServiceStub(channel).Publish(
            publish_pb2.PublishRequest(message="exported", broadcast=True), metadata=auth
        )

    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    # A span is exported when it ends: the run's span ends after its sends.
    awaited = (PUBLISH, "pushhub.provider_send", "pushhub.run")
    while not all(collector.named(name) for name in awaited):
        assert loop.time() < deadline, f"spans never arrived:\n{server.output()}"
        await asyncio.sleep(0.1)

    (publish,) = collector.named(PUBLISH)
    assert publish.service == "pushhub-e2e"
    (run,) = collector.named("pushhub.run")
    assert [(link.trace_id, link.span_id) for link in run.span.links] == [
        (publish.span.trace_id, publish.span.span_id)
    ]
