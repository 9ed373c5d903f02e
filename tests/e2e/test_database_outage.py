"""PostgreSQL stopped and restarted under a running server (issue 11, part 4).

While the database is down, every RPC answers UNAVAILABLE with reason
DATABASE_UNAVAILABLE (retryable; never INTERNAL), and the gRPC health service
says NOT_SERVING, overall and per service. Once it is back, health says
SERVING again, RPCs work, and a message published before the outage (and due
during it) is delivered: nothing was restarted but PostgreSQL.

The PostgreSQL is the test's own (tests/e2e/private_postgres.py), whatever
database the suite runs on: the machine's shared cluster is never stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pushhub.v1 import admin_pb2, status_pb2
from pushhub_server.config import Config
from pushhub_server.core.clock import ManualClock
from pushhub_server.server import SERVICE_NAMES, start_server
from tests.acceptance.harness import (
    ADMIN_METADATA,
    APNS,
    FCM,
    PUBLISHED,
    Stubs,
    bearer,
    create_app,
    expect_error,
    new_token,
    timestamp,
)
from tests.conftest import ADMIN_TOKEN

from .private_postgres import PrivatePostgres, binaries

pytestmark = pytest.mark.slow

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
# Generous bounds on waits for a state, never assertions about speed.
STATE_TIMEOUT = 60.0


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    bindir = binaries()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    server = PrivatePostgres(bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


async def health_of(health: health_pb2_grpc.HealthStub) -> dict[str, int]:
    """The health status of the server ("") and of each service."""
    statuses = {}
    for service in ("", *SERVICE_NAMES):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        statuses[service] = answer.status
    return statuses


async def wait_for_health(health: health_pb2_grpc.HealthStub, status: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STATE_TIMEOUT
    while set((statuses := await health_of(health)).values()) != {status}:
        assert loop.time() < deadline, f"health never became {status}: {statuses}"
        await asyncio.sleep(0.05)


async def test_health_and_rpcs_follow_postgresql_down_and_up(postgres: PrivatePostgres) -> None:
    clock = ManualClock()
    config = Config(
        database_url=postgres.url,
        listen="127.0.0.1:0",
        admin_token=ADMIN_TOKEN,
        sweep_interval=0.5,
        scheduler_poll_interval=0.2,
        # No regular probe during the test: the outage is noticed through the
        # calls that fail, and recovery through the probes an outage starts.
        health_interval=3600,
    )
    server = await start_server(config, clock=clock)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stubs = Stubs.on(channel)
            health = health_pb2_grpc.HealthStub(channel)
            app = await create_app(stubs, clock, prefix="outage")
            await app.register(platform=APNS, device_token=new_token(), channels=["news"])
            await app.register(platform=FCM, device_token="fcm-outage_1:a", channels=["news"])
            due = clock.now() + timedelta(minutes=1)
            before = await app.publish(channel="news", message="hello", publish_at=timestamp(due))
            assert set((await health_of(health)).values()) == {SERVING}

            postgres.stop()
            await during_the_outage(app, stubs, before.message_id)
            await wait_for_health(health, NOT_SERVING)
            clock.advance(timedelta(minutes=2))  # the message falls due while the database is out
            await during_the_outage(app, stubs, before.message_id)

            postgres.start()
            await wait_for_health(health, SERVING)
            await app.register(platform=APNS, device_token=new_token(), channels=["news"])
            status = await wait_until_published(app, before.message_id)
            assert (status.targeted_count, status.sent_count) == (2, 2)
    finally:
        await server.stop(1.0)


async def test_first_rpcs_after_a_postgresql_restart_succeed(postgres: PrivatePostgres) -> None:
    """A restart between two calls is invisible: the connections it closed are
    replaced, not handed to a call (docs/performance.md, "Unary writes")."""
    clock = ManualClock()
    config = Config(
        database_url=postgres.url,
        listen="127.0.0.1:0",
        admin_token=ADMIN_TOKEN,
        # Nothing in the background queries the database meanwhile: the RPCs
        # after the restart are the first to take a pooled connection.
        health_interval=3600,
        sweep_interval=3600,
        scheduler_poll_interval=3600,
    )
    server = await start_server(config, clock=clock)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stubs = Stubs.on(channel)
            app = await create_app(stubs, clock, prefix="restart")
            await app.register(platform=APNS, device_token=new_token(), channels=["news"])

            postgres.stop()
            postgres.start()
            # A write first, then reads: each on a pooled connection the restart closed.
            await app.register(platform=APNS, device_token=new_token(), channels=["news"])
            assert len(await app.list_all()) == 2
            await stubs.admin.ListApps(admin_pb2.ListAppsRequest(), metadata=ADMIN_METADATA)
    finally:
        await server.stop(1.0)


async def during_the_outage(app, stubs: Stubs, message_id: str) -> None:
    """Each kind of caller gets UNAVAILABLE: a retry later may succeed."""
    unavailable = (UNAVAILABLE, "DATABASE_UNAVAILABLE")
    await expect_error(app.register(device_token=new_token()), *unavailable)
    await expect_error(app.publish(channel="news", message="during"), *unavailable)
    await expect_error(app.status(message_id), *unavailable)
    # A key this server has not seen cannot be checked: not UNAUTHENTICATED, which
    # would tell a valid key's owner to give up.
    await expect_error(
        app.register(bearer("phs_unseen_key"), device_token=new_token()), *unavailable
    )
    await expect_error(
        stubs.admin.ListApps(admin_pb2.ListAppsRequest(), metadata=ADMIN_METADATA), *unavailable
    )
    watch = stubs.status.WatchMessageStatus(
        status_pb2.WatchMessageStatusRequest(message_id=message_id), metadata=app.server()
    )
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await watch.read()
    assert ended.value.code() == UNAVAILABLE, ended.value


async def wait_until_published(app, message_id: str) -> status_pb2.MessageStatus:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STATE_TIMEOUT
    while (status := await app.status(message_id)).state != PUBLISHED:
        assert loop.time() < deadline, f"never published after the outage: {status}"
        await asyncio.sleep(0.05)
    return status
