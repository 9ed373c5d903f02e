"""/metrics in the Prometheus text format (issue 13 §3): RPCs, refused ones included."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from google.protobuf import duration_pb2

from pushhub.v1 import registration_pb2 as reg
from pushhub_server.config import Config
from pushhub_server.core.clock import ManualClock
from pushhub_server.delivery.providers.simulator import FLAKY, INVALID, REJECTED
from pushhub_server.listener import StartupError
from pushhub_server.server import start_server
from tests import dashboard
from tests.own_database import own_database

from .harness import (
    APNS,
    FCM,
    PUBLISHED,
    AppHandle,
    Stubs,
    bearer,
    create_app,
    injected_token,
    settle,
    start_test_server,
    timestamp,
)
from .metrics_scrape import labels, scrape

SERVICE = "pushhub.v1.DeviceRegistrationService"


@pytest.fixture(scope="module")
def metered_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def clock_ahead(metered_clock: ManualClock) -> datetime:
    return metered_clock.now() + timedelta(hours=1)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def metered(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, metered_clock: ManualClock
) -> AsyncIterator[object]:
    """A server of its own (its own database, so no other server's scheduler
    delivers its messages) with metrics on, on a free port."""
    async with own_database(
        database_url, tmp_path_factory.mktemp("metrics"), "test_metrics"
    ) as url:
        running = await start_test_server(url, metered_clock, metrics_listen="127.0.0.1:0")
        try:
            yield running
        finally:
            await running.stop(1.0)


@pytest_asyncio.fixture(loop_scope="session")
async def metered_app(metered, metered_clock: ManualClock) -> AsyncIterator[AppHandle]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metered.port}") as channel:
        yield await create_app(Stubs.on(channel), metered_clock)


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


def _metered_config(tmp_path: Path, metrics_listen: str) -> Config:
    return Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'untouched.db'}",
        listen="127.0.0.1:0",
        metrics_listen=metrics_listen,
    )


async def test_the_server_refuses_a_metrics_address_without_port(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="not HOST:PORT"):
        await start_server(_metered_config(tmp_path, "localhost"))


async def test_a_taken_metrics_port_stops_the_start_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(StartupError, match=f"cannot serve metrics on {address}"):
            await start_server(_metered_config(tmp_path, address))
    assert not (tmp_path / "untouched.db").exists()  # refused before the database


async def test_a_publish_counts_its_notifications_and_its_end(metered, metered_app) -> None:
    """Sent, failed by kind and retried per platform; the message's terminal state;
    one provider request per platform and send; the run's lag."""
    app = metered_app
    for _ in range(3):
        await app.register(platform=APNS)
    await app.register(platform=FCM)
    await app.register(platform=APNS, device_token=injected_token(INVALID, APNS))
    await app.register(platform=FCM, device_token=injected_token(REJECTED, FCM))
    await app.register(platform=APNS, device_token=injected_token(FLAKY, APNS))
    before = await scrape(metered.metrics_port)

    published = await app.publish(message="counted", broadcast=True)
    status = await settle(metered, app, published.message_id)
    assert status.state == PUBLISHED
    after = await scrape(metered.metrics_port)

    def delta(name: str, **pairs: str) -> float:
        key = labels(**pairs)
        return after.get(name, {}).get(key, 0.0) - before.get(name, {}).get(key, 0.0)

    notifications = "pushhub_notifications_total"
    assert delta(notifications, platform="apns", outcome="sent", reason="") == 4
    assert delta(notifications, platform="fcm", outcome="sent", reason="") == 1
    assert delta(notifications, platform="apns", outcome="retried", reason="") == 1
    assert delta(notifications, platform="apns", outcome="failed", reason="invalid_token") == 1
    assert delta(notifications, platform="fcm", outcome="failed", reason="rejected") == 1
    assert delta("pushhub_messages_total", state="published") == 1
    # Both platforms once, then the retry of the flaky APNs token.
    assert delta("pushhub_provider_request_seconds_count", platform="apns") == 2
    assert delta("pushhub_provider_request_seconds_count", platform="fcm") == 1
    assert delta("pushhub_scheduler_lag_seconds_count") == 1
    assert after["pushhub_runs_in_flight"][labels()] == 0


async def test_a_cancel_counts_the_message_cancelled(metered, metered_app, clock_ahead) -> None:
    before = await scrape(metered.metrics_port)
    published = await metered_app.publish(
        message="later", broadcast=True, publish_at=timestamp(clock_ahead)
    )
    await metered_app.cancel(published.message_id)
    after = await scrape(metered.metrics_port)
    key = labels(state="cancelled")
    cancelled = after["pushhub_messages_total"][key]
    assert cancelled - before.get("pushhub_messages_total", {}).get(key, 0.0) == 1


async def test_a_repeat_that_expired_before_its_first_run_counts_its_end_once(
    metered, metered_app, metered_clock: ManualClock
) -> None:
    """The scheduler ends it at claim without a run (docs/observability.md: every
    message is counted once at its terminal state, whatever ends it)."""
    start = metered_clock.now()
    before = await scrape(metered.metrics_port)
    published = await metered_app.publish(
        message="too late",
        broadcast=True,
        publish_at=timestamp(start + timedelta(seconds=1)),
        repeat_every=duration_pb2.Duration(seconds=1),
        repeat_expires_at=timestamp(start + timedelta(seconds=2)),
    )
    # The server was "down" until more than a lease after repeat_expires_at.
    metered_clock.advance(timedelta(minutes=5))
    status = await settle(metered, metered_app, published.message_id)
    assert (status.state, status.run_count) == (PUBLISHED, 0)
    await metered.scheduler.run_due()  # nothing left to claim, nor to count again

    after = await scrape(metered.metrics_port)
    key = labels(state="published")
    ended = after["pushhub_messages_total"][key]
    assert ended - before.get("pushhub_messages_total", {}).get(key, 0.0) == 1


async def test_the_dashboard_queries_only_metrics_and_labels_that_exist(
    metered, metered_app
) -> None:
    """deploy/grafana/pushhub.json: every panel's query names exposed metrics, and
    groups by labels they have (after traffic, so every labelled series exists)."""
    await metered_app.register(platform=APNS)
    await metered_app.register(platform=FCM, device_token=injected_token(REJECTED, FCM))
    published = await metered_app.publish(message="for the dashboard", broadcast=True)
    await settle(metered, metered_app, published.message_id)
    exposed = await scrape(metered.metrics_port)

    board = dashboard.load()
    assert board["panels"] and board["uid"] == "pushhub"
    queries = dashboard.expressions(board)
    assert queries
    for query in queries:
        names = dashboard.metric_names(query)
        assert names, query
        for name in names:
            assert name in exposed, f"{name} in {query!r} is not a metric PushHub exposes"
            labelled = {label for series in exposed[name] for label, _ in series}
            missing = dashboard.grouping_labels(query) - labelled
            assert not missing, f"{query!r} groups by {missing}, which {name} lacks"
