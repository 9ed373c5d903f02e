"""Roles (issue 13 §2, docs/processes.md): `--role api|delivery|all`.

An api process answers RPCs and runs no scheduler, dispatcher or sweeper; a
delivery process runs them and serves gRPC health only. They share nothing but
PostgreSQL, so here they run on a database of their own (the suite's shared
server would deliver too). On SQLite one process does everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pushhub.v1 import registration_pb2, registration_pb2_grpc
from pushhub_server.config import Role
from pushhub_server.listener import StartupError
from pushhub_server.server import SERVICE_NAMES
from tests.own_database import own_database

from .harness import PUBLISHED, SCHEDULED, StoreProbe, Stubs, create_app, settle, start_test_server

SERVING = health_pb2.HealthCheckResponse.SERVING


def on_postgres(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("roles split one deployment into processes: PostgreSQL only")


@pytest_asyncio.fixture
async def fleet_database(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    on_postgres(database_url)
    async with own_database(database_url, tmp_path, "pushhub_roles") as url:
        yield url


@pytest_asyncio.fixture
async def api(fleet_database: str, clock) -> AsyncIterator[object]:
    server = await start_test_server(fleet_database, clock, role=Role.API)
    try:
        yield server
    finally:
        await server.stop(1.0)


@pytest_asyncio.fixture
async def delivery(fleet_database: str, clock, api) -> AsyncIterator[object]:
    server = await start_test_server(fleet_database, clock, role=Role.DELIVERY)
    try:
        yield server
    finally:
        await server.stop(1.0)


async def test_a_delivery_process_delivers_what_an_api_process_published(
    fleet_database: str, clock, api, delivery
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
        app = await create_app(Stubs.on(channel), clock)
        registered = [(await app.register()).registration.registration_id for _ in range(3)]
        published = await app.publish(broadcast=True, message="from the api process")
        delivered = await settle(delivery, app, published.message_id)
        assert (delivered.state, delivered.run_count) == (PUBLISHED, 1)
    probe = StoreProbe(fleet_database)
    try:
        assert await probe.recipients(app, published.message_id) == sorted(registered)
    finally:
        await probe.close()


async def test_an_api_process_alone_delivers_nothing(fleet_database: str, clock, api) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.port}") as channel:
        app = await create_app(Stubs.on(channel), clock)
        await app.register()
        published = await app.publish(broadcast=True, message="nobody delivers this")
        # A running scheduler is woken by the publish and claims the run in milliseconds.
        await asyncio.sleep(0.5)
        status = await app.status(published.message_id)
        assert (status.state, status.run_count) == (SCHEDULED, 0)


async def test_a_delivery_process_serves_health_only(delivery) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{delivery.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        overall = await health.Check(health_pb2.HealthCheckRequest())
        assert overall.status == SERVING
        for service in SERVICE_NAMES:
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await registration_pb2_grpc.DeviceRegistrationServiceStub(channel).RegisterDevice(
                registration_pb2.RegisterDeviceRequest()
            )
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("role", [Role.API, Role.DELIVERY])
async def test_on_sqlite_one_process_does_everything(tmp_path: Path, clock, role: Role) -> None:
    sqlite = f"sqlite+aiosqlite:///{tmp_path / 'one-process.db'}"
    with pytest.raises(StartupError) as refused:
        await start_test_server(sqlite, clock, role=role)
    assert str(refused.value) == (
        f"--role {role} (PUSHHUB_ROLE) needs PostgreSQL: on SQLite one process "
        "answers RPCs and delivers; use --role all"
    )
    assert not (tmp_path / "one-process.db").exists()  # refused before the database is touched
