"""Shared helpers for the acceptance and end-to-end suites.

Everything here talks to a real PushHub server over gRPC: apps come from
AdminService.CreateApp with the operator token, and errors are read from the
google.rpc.Status the server attaches to its trailing metadata.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from pushhub.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    publish_pb2,
    publish_pb2_grpc,
    registration_pb2,
    registration_pb2_grpc,
    status_pb2_grpc,
)
from pushhub.v1 import status_pb2 as pushhub_status_pb2
from pushhub_server.api.convert.common import platform_or_refusal
from pushhub_server.config import Config
from pushhub_server.core.clock import ManualClock
from pushhub_server.core.credentials import SecretBox
from pushhub_server.core.errors import accepted
from pushhub_server.core.messages import InboxEntry
from pushhub_server.delivery.providers.simulator import Injection
from pushhub_server.store import Database, SqlAppRepository, SqlInbox, SqlMessageRepository
from pushhub_server.store.schema import registrations as registrations_table
from tests.conftest import ADMIN_TOKEN

APNS = common_pb2.PLATFORM_APNS
FCM = common_pb2.PLATFORM_FCM
DOMAIN = "pushhub"
DETAILS_KEY = "grpc-status-details-bin"
Metadata = tuple[tuple[str, str], ...]
# Credentials are sealed at rest in the acceptance server.
SECRET_KEY = "acceptance-secret-key"


# ---------------------------------------------------------------- server ----


async def start_test_server(
    database_url: str, clock: ManualClock, tracer_provider=None, **settings
):
    """Starts the real server on a random port (imported late: it may not exist yet);
    settings override the Config fields the suite uses. Spans go to tracer_provider
    when one is given."""
    from pushhub_server.server import start_server

    config = Config(
        **{
            "database_url": database_url,
            "listen": "127.0.0.1:0",
            "admin_token": ADMIN_TOKEN,
            "secret_key": SECRET_KEY,
            "sweep_interval": 3600,
            **settings,
        }
    )
    return await start_server(config, clock=clock, tracer_provider=tracer_provider)


@dataclass
class Stubs:
    registrations: registration_pb2_grpc.DeviceRegistrationServiceStub
    status: status_pb2_grpc.StatusServiceStub
    publish: publish_pb2_grpc.PublishServiceStub
    admin: admin_pb2_grpc.AdminServiceStub

    @classmethod
    def on(cls, channel: grpc.aio.Channel) -> Stubs:
        return cls(
            registration_pb2_grpc.DeviceRegistrationServiceStub(channel),
            status_pb2_grpc.StatusServiceStub(channel),
            publish_pb2_grpc.PublishServiceStub(channel),
            admin_pb2_grpc.AdminServiceStub(channel),
        )


def bearer(key: str, user_token: str | None = None) -> Metadata:
    metadata: list[tuple[str, str]] = [("authorization", f"Bearer {key}")]
    if user_token is not None:
        metadata.append(("user-token", user_token))
    return tuple(metadata)


ADMIN_METADATA = bearer(ADMIN_TOKEN)


# ------------------------------------------------------------------ apps ----


@dataclass
class AppHandle:
    """A fresh app: its id, its two keys and metadata helpers."""

    app_id: str
    name: str
    server_key: str
    device_key: str
    stubs: Stubs
    clock: ManualClock

    def server(self, user_token: str | None = None) -> Metadata:
        return bearer(self.server_key, user_token)

    def device(self, user_token: str | None = None) -> Metadata:
        return bearer(self.device_key, user_token)

    async def user_token(self, user_id: str, ttl: timedelta | None = None) -> str:
        # PyJWT checks `iat` against the wall clock, the server stamps it with
        # the ManualClock: never mint a token while the test clock is ahead.
        await wait_until_wall_clock_passes(self.clock)
        request = admin_pb2.IssueUserTokenRequest(app_id=self.app_id, user_id=user_id)
        if ttl is not None:
            request.ttl.CopyFrom(duration_pb2.Duration(seconds=int(ttl.total_seconds())))
        response = await self.stubs.admin.IssueUserToken(request, metadata=self.server())
        assert response.token
        return response.token

    async def register(
        self, auth: Metadata | None = None, **fields
    ) -> registration_pb2.RegisterDeviceResponse:
        fields.setdefault("platform", APNS)
        fields.setdefault("device_token", new_token())
        request = registration_pb2.RegisterDeviceRequest(**fields)
        return await self.stubs.registrations.RegisterDevice(
            request, metadata=auth or self.server()
        )

    async def list_all(
        self, page_size: int = 1000, **filters
    ) -> list[registration_pb2.Registration]:
        found: list[registration_pb2.Registration] = []
        token = ""
        for _ in range(10_000):
            page = await self.stubs.registrations.ListRegistrations(
                registration_pb2.ListRegistrationsRequest(
                    page_size=page_size, page_token=token, **filters
                ),
                metadata=self.server(),
            )
            found.extend(page.registrations)
            token = page.next_page_token
            if not token:
                return found
        raise AssertionError("ListRegistrations never ended")

    async def publish(self, auth: Metadata | None = None, **fields) -> publish_pb2.PublishResponse:
        request = publish_pb2.PublishRequest(**fields)
        return await self.stubs.publish.Publish(request, metadata=auth or self.server())

    async def cancel(
        self, message_id: str, auth: Metadata | None = None
    ) -> publish_pb2.CancelMessageResponse:
        request = publish_pb2.CancelMessageRequest(message_id=message_id)
        return await self.stubs.publish.CancelMessage(request, metadata=auth or self.server())

    async def status(
        self, message_id: str, auth: Metadata | None = None
    ) -> pushhub_status_pb2.MessageStatus:
        request = pushhub_status_pb2.GetMessageStatusRequest(message_id=message_id)
        response = await self.stubs.status.GetMessageStatus(request, metadata=auth or self.server())
        return response.status


async def create_app(stubs: Stubs, clock: ManualClock, prefix: str = "acceptance") -> AppHandle:
    name = f"{prefix}-{uuid.uuid4().hex}"
    created = await stubs.admin.CreateApp(
        admin_pb2.CreateAppRequest(name=name), metadata=ADMIN_METADATA
    )
    assert created.app.app_id and created.server_key and created.device_key
    assert created.server_key != created.device_key
    return AppHandle(created.app.app_id, name, created.server_key, created.device_key, stubs, clock)


async def wait_until_wall_clock_passes(clock: ManualClock) -> None:
    lead = (clock.now() - datetime.now(UTC)).total_seconds()
    if lead > -1:
        await asyncio.sleep(lead + 1.05)


# ------------------------------------------------------------ publishing ----

SCHEDULED = common_pb2.MESSAGE_STATE_SCHEDULED
PUBLISHING = common_pb2.MESSAGE_STATE_PUBLISHING
PUBLISHED = common_pb2.MESSAGE_STATE_PUBLISHED
FAILED = common_pb2.MESSAGE_STATE_FAILED
CANCELLED = common_pb2.MESSAGE_STATE_CANCELLED
TERMINAL = (PUBLISHED, FAILED, CANCELLED)


async def settle(
    server, app: AppHandle, message_id: str, *, runs: int | None = None, timeout: float = 10.0
) -> pushhub_status_pb2.MessageStatus:
    """Drives the scheduler until the message is terminal, or (with `runs`) has finished
    that many runs and is not mid-run; returns its status.

    The server's own scheduler loop may claim the run first, so this polls the
    status rather than trusting run_due's count. Never sleeps more than 20 ms at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await server.scheduler.run_due()
        status = await app.status(message_id)
        if status.state in TERMINAL:
            return status
        if runs is not None and status.run_count >= runs and status.state != PUBLISHING:
            return status
        if loop.time() > deadline:
            raise AssertionError(f"message {message_id} did not settle: {status}")
        await asyncio.sleep(0.02)


class StoreProbe:
    """Reads what the server stored through the store's public ports (the simulator's
    inbox, messages by request id, apps), never its tables; store_unchecked alone
    writes a row, to arrange what an older server left behind."""

    def __init__(self, database_url: str) -> None:
        self._db = Database.from_url(database_url)
        self._inbox = SqlInbox(self._db)
        self._messages = SqlMessageRepository(self._db)
        self._apps = SqlAppRepository(self._db)

    async def close(self) -> None:
        await self._db.dispose()

    async def deliveries(
        self, app: AppHandle, message_id: str | None = None, registration_id: str | None = None
    ) -> list[InboxEntry]:
        """What the simulator delivered for the app, oldest first."""
        entries = await self._inbox.list(app.app_id, registration_id, message_id, 100_000)
        return entries[::-1]

    async def payloads(self, app: AppHandle, message_id: str) -> dict[str, dict]:
        """registration id → its delivered payload (parsed); each delivered once."""
        entries = await self.deliveries(app, message_id)
        found = {entry.registration_id: json.loads(entry.payload) for entry in entries}
        assert len(found) == len(entries), "a registration was delivered twice"
        return found

    async def recipients(self, app: AppHandle, message_id: str) -> list[str]:
        """Registration ids delivered for the message, sorted, with repeats."""
        return sorted(entry.registration_id for entry in await self.deliveries(app, message_id))

    async def store_unchecked(self, registration_id: str, **json_columns: str) -> None:
        """Overwrites JSON columns of a registration (metadata_json, templates_json) with
        text an older server, before today's checks, could have stored."""
        update = (
            sa.update(registrations_table)
            .where(registrations_table.c.id == registration_id)
            .values(**json_columns)
        )
        async with self._db.write() as conn:
            assert (await conn.execute(update)).rowcount == 1

    async def signing_secret(self, app: AppHandle) -> str:
        """The app's user-token signing secret, opened as the server opens it: what an
        operator's backend minting its own user tokens holds."""
        stored = await self._apps.get_app(app.app_id)
        assert stored is not None
        return SecretBox(SECRET_KEY).open(stored.signing_secret)

    async def published(self, app: AppHandle, request_id: str) -> str | None:
        """The id of the message the app published with this request_id, if one was
        stored: a refused publish must leave none."""
        return await self._messages.find_request(app.app_id, request_id)


def platform_counts(status: pushhub_status_pb2.MessageStatus) -> dict[int, tuple[int, int, int]]:
    """platform → (targeted, sent, failed)."""
    return {
        counts.platform: (counts.targeted_count, counts.sent_count, counts.failed_count)
        for counts in status.platform_counts
    }


# ---------------------------------------------------------------- values ----


def new_token(length: int = 64) -> str:
    """Random hex digits: with the default length, a valid token for APNs and FCM alike."""
    return secrets.token_hex(length // 2 + 1)[:length]


def injected_token(kind: Injection, platform: int) -> str:
    """A valid token on which the simulator fails as kind says (its prefix table)."""
    return kind.token(accepted(platform_or_refusal(platform)), new_token(56))


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# ---------------------------------------------------------------- errors ----


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status in the trailers; it must agree with the call status."""
    trailers = error.trailing_metadata() or ()
    for key, value in trailers:
        if key == DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            assert status.code == error.code().value[0], (status, error)
            assert status.message == error.details(), (status, error)
            return status
    raise AssertionError(f"no {DETAILS_KEY} in the trailers of {error!r}")


def unpack_details(status: status_pb2.Status):
    infos: list[error_details_pb2.ErrorInfo] = []
    bad_requests: list[error_details_pb2.BadRequest] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            bad_requests.append(bad_request)
    return infos, bad_requests


def retry_delay(status: status_pb2.Status) -> float:
    """Seconds of the google.rpc.RetryInfo a RESOURCE_EXHAUSTED must carry."""
    delays = []
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delays.append(info.retry_delay.ToTimedelta().total_seconds())
    assert len(delays) == 1, f"exactly one RetryInfo expected: {status}"
    assert delays[0] > 0, status
    return delays[0]


def check_status(
    status: status_pb2.Status,
    code: grpc.StatusCode,
    reason: str,
    *,
    legacy_code: str | None = None,
    field: str | None = None,
    metadata: dict[str, str] | None = None,
) -> error_details_pb2.ErrorInfo:
    """Asserts the error model (docs/architecture.md) on a google.rpc.Status."""
    assert status.code == code.value[0], f"expected {code.name}, got {status}"
    assert status.message, "an error must carry a message"
    assert "Traceback" not in status.message
    infos, bad_requests = unpack_details(status)
    assert len(infos) == 1, f"exactly one ErrorInfo expected: {status}"
    [info] = infos
    assert info.domain == DOMAIN
    assert info.reason == reason, f"expected reason {reason}, got {info.reason}: {status.message}"
    if legacy_code is not None:
        assert info.metadata.get("legacy_code") == legacy_code, dict(info.metadata)
    if field is not None:
        assert info.metadata.get("field") == field, dict(info.metadata)
        assert len(bad_requests) == 1, f"a field error carries one BadRequest: {status}"
        fields = [violation.field for violation in bad_requests[0].field_violations]
        assert field in fields, fields
        assert all(v.description for v in bad_requests[0].field_violations)
    for key, value in (metadata or {}).items():
        assert info.metadata.get(key) == value, (key, dict(info.metadata))
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry_delay(status)  # the server refused work it could take later: say when
    return info


def check_error(
    error: grpc.aio.AioRpcError, code: grpc.StatusCode, reason: str, **expected
) -> error_details_pb2.ErrorInfo:
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
    return check_status(rich_status(error), code, reason, **expected)


async def expect_error(
    call, code: grpc.StatusCode, reason: str, **expected
) -> error_details_pb2.ErrorInfo:
    """Awaits a unary call that must fail with `code` and `reason`."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return check_error(caught.value, code, reason, **expected)


async def outcome_code(call) -> grpc.StatusCode:
    """OK or the error code of a unary call."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def stream_requests(
    batches: Sequence[registration_pb2.RegisterDevicesRequest],
) -> AsyncIterator[registration_pb2.RegisterDevicesRequest]:
    for batch in batches:
        yield batch
