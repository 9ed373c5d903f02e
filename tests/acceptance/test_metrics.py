"""/metrics in the Prometheus text format (issue 13 §3): RPCs, refused ones included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from pushhub.v1 import registration_pb2 as reg
from pushhub_server.core.clock import ManualClock
from tests.own_database import own_database

from .harness import APNS, AppHandle, Stubs, bearer, create_app, start_test_server
from .metrics_scrape import labels, scrape

SERVICE = "pushhub.v1.DeviceRegistrationService"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def metered(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[object]:
    """A server of its own (its own database, so no other server's scheduler
    delivers its messages) with metrics on, on a free port."""
    async with own_database(tmp_path_factory.mktemp("metrics"), "test_metrics") as url:
        running = await start_test_server(url, ManualClock(), metrics_listen="127.0.0.1:0")
        try:
            yield running
        finally:
            await running.stop(1.0)


@pytest_asyncio.fixture(loop_scope="session")
async def metered_app(metered) -> AsyncIterator[AppHandle]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metered.port}") as channel:
        yield await create_app(Stubs.on(channel), ManualClock())


async def test_rpcs_are_counted_by_service_method_and_code(metered, metered_app) -> None:
    assert metered.metrics_port
    before = await scrape(metered.metrics_port)
    await metered_app.register()
    await metered_app.register()
    with pytest.raises(grpc.aio.AioRpcError):  # refused by a handler: no device_token
        await metered_app.register(device_token="")
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # refused by the auth interceptor
        await metered_app.stubs.registrations.RegisterDevice(
            reg.RegisterDeviceRequest(platform=APNS, device_token="x" * 64),
            metadata=bearer("not-a-key"),
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    after = await scrape(metered.metrics_port)
    method = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "RegisterDevice"}

    def delta(name: str, **more: str) -> float:
        key = labels(**method, **more)
        return after[name].get(key, 0.0) - before.get(name, {}).get(key, 0.0)

    assert delta("grpc_server_started_total") == 4
    assert delta("grpc_server_handled_total", grpc_code="OK") == 2
    assert delta("grpc_server_handled_total", grpc_code="INVALID_ARGUMENT") == 1
    assert delta("grpc_server_handled_total", grpc_code="UNAUTHENTICATED") == 1
    assert delta("grpc_server_handling_seconds_count") == 4
    assert delta("grpc_server_handling_seconds_bucket", le="+Inf") == 4


async def test_every_named_metric_is_exposed(metered) -> None:
    """docs/observability.md promises these names; a dashboard relies on them."""
    exposed = await scrape(metered.metrics_port)
    for name in (
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "pushhub_runs_in_flight",
        "pushhub_scheduler_lag_seconds_bucket",
    ):
        assert name in exposed, name


async def test_metrics_are_off_by_default(server) -> None:
    assert server.metrics_port is None


def test_the_endpoint_refuses_a_listen_address_without_port(tmp_path: Path) -> None:
    from pushhub_server.listener import StartupError
    from pushhub_server.observability.metrics_endpoint import serve_metrics, served_registry

    with pytest.raises(StartupError, match="not HOST:PORT"):
        serve_metrics("localhost", served_registry())
