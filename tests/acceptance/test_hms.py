"""Huawei Push Kit through the real gRPC server: credentials, tokens, the simulator,
and delivery to the fake Push Kit (tests/fakes/hms.py) with its OAuth endpoint.

The fake checks the request as Huawei documents it (at most 1,000 tokens a
request, ``data`` a string, the bearer token issued to this client and not
expired by the shared clock) and answers with Push Kit's codes.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio
import sqlalchemy as sa

from pushhub.v1 import admin_pb2, common_pb2, publish_pb2
from pushhub.v1 import registration_pb2 as reg
from pushhub.v1 import status_pb2 as st
from pushhub_server.config import Config
from pushhub_server.core.clock import ManualClock
from pushhub_server.delivery.providers.simulator import FLAKY, INVALID
from pushhub_server.store import Database
from pushhub_server.store.schema import apps as apps_table
from tests.conftest import ADMIN_TOKEN
from tests.fakes.hms import FakeHms
from tests.fakes.tls import TlsFiles, issue_tls_files
from tests.own_database import own_database as own_database_for

from .harness import (
    ADMIN_METADATA,
    AppHandle,
    StoreProbe,
    Stubs,
    create_app,
    expect_error,
    injected_token,
    platform_counts,
    settle,
    stream_requests,
)

HMS = common_pb2.PLATFORM_HMS
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
PUBLISHED = common_pb2.MESSAGE_STATE_PUBLISHED
TERMINAL = {PUBLISHED, common_pb2.MESSAGE_STATE_FAILED, common_pb2.MESSAGE_STATE_CANCELLED}


def hms_token() -> str:
    """Push Kit tokens look like this: letters, digits and a few punctuation marks."""
    return f"IQAAAACy0kYt{secrets.token_urlsafe(60)}"


def hms_request(app_id: str, client_id: str, secret: str) -> admin_pb2.SetHmsCredentialsRequest:
    return admin_pb2.SetHmsCredentialsRequest(
        app_id=app_id, client_id=client_id, client_secret=secret
    )


# ------------------------------------------------- the session server ----


async def test_credentials_are_checked_stored_sealed_and_reported(
    app: AppHandle, stubs: Stubs, empty_database: str
) -> None:
    secret = secrets.token_hex(32)
    answer = await stubs.admin.SetHmsCredentials(
        hms_request(app.app_id, "104012345", secret), metadata=app.server()
    )
    assert answer.app.hms_configured and not answer.app.web_push_configured
    db = Database.from_url(empty_database)
    try:
        async with db.read() as conn:
            stored = (
                await conn.execute(
                    sa.select(apps_table.c.hms_credentials).where(apps_table.c.id == app.app_id)
                )
            ).scalar_one()
    finally:
        await db.dispose()
    assert stored.startswith("fernet:") and secret not in stored


@pytest.mark.parametrize(
    ("client_id", "secret", "field", "reason"),
    [
        ("", "s3cret", "client_id", "FIELD_REQUIRED"),
        ("abc", "s3cret", "client_id", "INVALID_CREDENTIALS"),
        ("1/../2", "s3cret", "client_id", "INVALID_CREDENTIALS"),
        ("1" * 33, "s3cret", "client_id", "INVALID_CREDENTIALS"),
        ("104012345", "", "client_secret", "FIELD_REQUIRED"),
        ("104012345", "with space", "client_secret", "INVALID_CREDENTIALS"),
        ("104012345", "line\nbreak", "client_secret", "INVALID_CREDENTIALS"),
        ("104012345", "x" * 513, "client_secret", "INVALID_CREDENTIALS"),
    ],
    ids=[
        "no-id",
        "letters",
        "path",
        "long-id",
        "no-secret",
        "space",
        "line-break",
        "long-secret",
    ],
)
async def test_bad_credentials_are_refused_and_nothing_is_stored(
    app: AppHandle, stubs: Stubs, client_id: str, secret: str, field: str, reason: str
) -> None:
    info = await expect_error(
        stubs.admin.SetHmsCredentials(
            hms_request(app.app_id, client_id, secret), metadata=app.server()
        ),
        INVALID_ARGUMENT,
        reason,
        field=field,
    )
    assert not secret or secret not in str(info)
    listed = await stubs.admin.ListApps(admin_pb2.ListAppsRequest(), metadata=app.server())
    assert not listed.apps[0].hms_configured


async def test_only_the_app_itself_or_the_operator_sets_its_credentials(
    app: AppHandle, other_app: AppHandle, stubs: Stubs
) -> None:
    request = hms_request(app.app_id, "104012345", "s3cret")
    for metadata in (other_app.server(), app.device()):
        await expect_error(
            stubs.admin.SetHmsCredentials(request, metadata=metadata),
            grpc.StatusCode.PERMISSION_DENIED,
            "ADMIN_NOT_ALLOWED",
        )
    answer = await stubs.admin.SetHmsCredentials(request, metadata=ADMIN_METADATA)
    assert answer.app.hms_configured


async def test_an_hms_token_registers(app: AppHandle) -> None:
    token = hms_token()
    answer = await app.register(platform=HMS, device_token=token, auth=app.device())
    assert (answer.registration.platform, answer.registration.device_token) == (HMS, token)
    assert not answer.registration.HasField("web_push_keys")


@pytest.mark.parametrize(
    "token",
    ["a b", "a/b", 'a"b', "a\nb", "tok\u00e9n", "x" * 4097],
    ids=["space", "slash", "quote", "line-break", "non-ascii", "too-long"],
)
async def test_a_token_outside_the_syntax_is_refused(app: AppHandle, token: str) -> None:
    reason = "VALUE_TOO_LONG" if len(token) > 4096 else "INVALID_DEVICE_TOKEN"
    await expect_error(
        app.register(platform=HMS, device_token=token),
        INVALID_ARGUMENT,
        reason,
        field="device_token",
    )
    assert await app.list_all() == []


async def test_web_push_keys_are_refused_for_hms(app: AppHandle) -> None:
    keys = reg.WebPushKeys(p256dh="BAAA", auth="AAAA")
    await expect_error(
        app.register(platform=HMS, device_token=hms_token(), web_push_keys=keys),
        INVALID_ARGUMENT,
        "WEB_PUSH_KEYS_NOT_ALLOWED",
        field="web_push_keys",
    )


async def test_the_simulator_delivers_hms_and_injects_failures(
    server, app: AppHandle, store: StoreProbe
) -> None:
    delivered = await app.register(platform=HMS, device_token=hms_token())
    invalid = await app.register(platform=HMS, device_token=injected_token(INVALID, HMS))
    flaky = await app.register(platform=HMS, device_token=injected_token(FLAKY, HMS))

    response = await app.publish(
        notification=publish_pb2.Notification(title="Hello", body="World"), broadcast=True
    )
    status = await settle(server, app, response.message_id)

    # The flaky token fails once and is delivered on the retry.
    assert platform_counts(status)[HMS] == (3, 2, 1)
    assert dict(status.failure_reasons) == {"Unregistered": 1}
    payloads = await store.payloads(app, response.message_id)
    assert set(payloads) == {
        delivered.registration.registration_id,
        flaky.registration.registration_id,
    }
    notification = payloads[delivered.registration.registration_id]["android"]["notification"]
    assert (notification["title"], notification["body"]) == ("Hello", "World")
    remaining = {r.registration_id for r in await app.list_all()}
    assert invalid.registration.registration_id not in remaining


# ------------------------------------------------------ the fake Push Kit ----


@dataclass
class World:
    clock: ManualClock
    stubs: Stubs
    hms: FakeHms

    async def app(self) -> AppHandle:
        app = await create_app(self.stubs, self.clock, prefix="hms")
        client_id, secret = self.hms.oauth_client()
        answer = await self.stubs.admin.SetHmsCredentials(
            hms_request(app.app_id, client_id, secret), metadata=app.server()
        )
        assert answer.app.hms_configured
        return app


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return issue_tls_files(tmp_path_factory.mktemp("hms-acceptance-tls"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def own_database(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    directory = tmp_path_factory.mktemp("hms-acceptance-db")
    async with own_database_for(database_url, directory, "pushhub_hms") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tls: TlsFiles, own_database: str) -> AsyncIterator[World]:
    from pushhub_server.server import start_server

    clock = ManualClock()
    hms = FakeHms(clock, tls)
    await hms.start()
    config = Config(
        database_url=own_database,
        listen="127.0.0.1:0",
        admin_token=ADMIN_TOKEN,
        secret_key="hms-acceptance-secret",
        sweep_interval=3600,
        hms_endpoint=hms.base_url,
        hms_token_endpoint=hms.token_endpoint,
        hms_ca_file=str(tls.ca_file),
    )
    running = await start_server(config, clock=clock)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            await channel.channel_ready()
            yield World(clock, Stubs.on(channel), hms)
    finally:
        await running.stop(1.0)
        await hms.stop()


async def register_many(app: AppHandle, tokens: list[str]) -> None:
    batches = [
        reg.RegisterDevicesRequest(
            registrations=[
                reg.RegisterDeviceRequest(platform=HMS, device_token=token)
                for token in tokens[start : start + 1000]
            ]
        )
        for start in range(0, len(tokens), 1000)
    ]
    call = app.stubs.registrations.RegisterDevices(stream_requests(batches), metadata=app.server())
    async for response in call:
        assert all(result.HasField("response") for result in response.results)


async def deliver(app: AppHandle, **fields: Any) -> st.MessageStatus:
    fields.setdefault("broadcast", True)
    fields.setdefault("notification", publish_pb2.Notification(title="Hello", body="World"))
    response = await app.publish(**fields)
    deadline = time.monotonic() + 30
    while True:
        status = await app.status(response.message_id)
        if status.state in TERMINAL:
            assert status.state == PUBLISHED, status
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.02)


def requests_for(world: World, tokens: list[str]) -> list[dict[str, Any]]:
    wanted = set(tokens)
    return [r for r in world.hms.requests if wanted.intersection(r["message"]["token"])]


async def live_tokens(app: AppHandle) -> set[str]:
    return {r.device_token for r in await app.list_all()}


async def test_a_broadcast_is_one_request_per_thousand_devices(world: World) -> None:
    app = await world.app()
    tokens = [hms_token() for _ in range(2500)]
    await register_many(app, tokens)

    status = await deliver(
        app,
        notification=publish_pb2.Notification(title="Hello", body="World", data={"k": "v"}),
        priority=publish_pb2.PRIORITY_HIGH,
    )

    assert platform_counts(status)[HMS] == (2500, 2500, 0)
    sent = requests_for(world, tokens)
    sizes = sorted(len(request["message"]["token"]) for request in sent)
    assert sum(sizes) == 2500 and max(sizes) <= 1000 and len(sent) == 3
    assert sorted(t for r in sent for t in r["message"]["token"]) == sorted(tokens)
    message = sent[0]["message"]
    assert message["android"]["notification"]["title"] == "Hello"
    assert json.loads(message["data"]) == {"k": "v"}
    assert "validate_only" not in sent[0] or sent[0]["validate_only"] is False


async def test_illegal_tokens_of_a_partial_success_are_invalidated(world: World) -> None:
    app = await world.app()
    tokens = [hms_token() for _ in range(10)]
    await register_many(app, tokens)
    world.hms.invalid.update(tokens[:3])

    status = await deliver(app)

    assert platform_counts(status)[HMS] == (10, 7, 3)
    assert dict(status.failure_reasons) == {"HMS_80100000": 3}
    assert await live_tokens(app) == set(tokens[3:])
    again = await deliver(app)
    assert platform_counts(again)[HMS] == (7, 7, 0)


async def test_every_token_invalid_invalidates_them_all(world: World) -> None:
    app = await world.app()
    tokens = [hms_token() for _ in range(4)]
    await register_many(app, tokens)
    world.hms.invalid.update(tokens)

    status = await deliver(app)

    assert platform_counts(status)[HMS] == (4, 0, 4)
    assert dict(status.failure_reasons) == {"HMS_80300007": 4}
    assert await live_tokens(app) == set()


async def test_an_expired_access_token_is_refreshed_and_the_send_retried_once(
    world: World,
) -> None:
    app = await world.app()
    tokens = [hms_token() for _ in range(3)]
    await register_many(app, tokens)
    await deliver(app)  # fetches and caches the access token
    exchanges = world.hms.token_requests
    world.hms.expire_tokens()

    status = await deliver(app)

    assert platform_counts(status)[HMS] == (3, 3, 0)
    assert world.hms.token_requests == exchanges + 1
    assert await live_tokens(app) == set(tokens)  # not the devices' fault


async def test_a_revoked_access_token_is_replaced(world: World) -> None:
    app = await world.app()
    await register_many(app, [hms_token()])
    await deliver(app)
    world.hms.revoke_tokens()

    status = await deliver(app)

    assert platform_counts(status)[HMS] == (1, 1, 0)


@pytest.mark.parametrize(("status_code", "retry_after"), [(429, "1"), (503, None), (500, None)])
async def test_throttling_and_outages_are_retried(
    world: World, status_code: int, retry_after: str | None
) -> None:
    app = await world.app()
    tokens = [hms_token() for _ in range(3)]
    await register_many(app, tokens)
    await deliver(app)  # the access token first: fail_next applies to sends
    world.hms.fail_next(1, status_code, retry_after)

    started = time.monotonic()
    status = await deliver(app)

    assert platform_counts(status)[HMS] == (3, 3, 0)
    if retry_after:
        assert time.monotonic() - started >= 0.95


async def test_a_dry_run_uses_validate_only(world: World) -> None:
    app = await world.app()
    good, bad = hms_token(), hms_token()
    world.hms.invalid.add(bad)
    validated = len(world.hms.validated)

    accepted = await app.register(platform=HMS, device_token=good, track=True)
    refused = await app.register(platform=HMS, device_token=bad, track=True)

    assert await final_state(app, accepted.request_id) == st.REGISTRATION_STATE_SUCCESS
    assert await final_state(app, refused.request_id) == st.REGISTRATION_STATE_FAILED
    [checked] = world.hms.validated[validated:]
    assert checked["validate_only"] is True and checked["message"]["token"] == [good]
    assert not requests_for(world, [good, bad])  # nothing was delivered


async def final_state(app: AppHandle, request_id: str) -> int:
    deadline = time.monotonic() + 15
    while True:
        answer = await app.stubs.status.GetRegistrationStatus(
            st.GetRegistrationStatusRequest(request_ids=[request_id]), metadata=app.server()
        )
        [status] = answer.statuses
        if status.state != st.REGISTRATION_STATE_PENDING:
            return status.state
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.02)
