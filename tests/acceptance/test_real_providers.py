"""Real delivery, end to end: the gRPC server talks to the fake APNs and the fake FCM.

The server, the two fakes and the provider tokens share one ManualClock, so the
fakes judge JWT ages by the same time the server signs them with. The server
gets its own database (a SQLite file, or a throwaway PostgreSQL database when
PUSHHUB_TEST_DATABASE_URL is PostgreSQL) and its own apps, with credentials set
over AdminService exactly as an operator would.

The fake APNs throttles a key whose provider token is replaced within 20 minutes
(TooManyProviderTokenUpdates), as Apple does. Every app here shares one key, so
only test_provider_tokens_follow_the_refresh_rules moves the clock, and it leaves
it 25 minutes past the last token it caused, where any new token is welcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import duration_pb2

from pushhub.v1 import admin_pb2, common_pb2, publish_pb2
from pushhub.v1 import registration_pb2 as reg
from pushhub.v1 import status_pb2 as st
from pushhub_server.config import Config
from pushhub_server.core.clock import ManualClock
from pushhub_server.core.credentials import ApnsCredentials, FcmCredentials
from tests.conftest import ADMIN_TOKEN
from tests.fakes.apns import FakeApns, ReceivedRequest, new_signing_key
from tests.fakes.fcm import FakeFcm
from tests.fakes.tls import TlsFiles, issue_tls_files
from tests.own_database import own_database as own_database_for

from .harness import (
    ADMIN_METADATA,
    APNS,
    FCM,
    AppHandle,
    Stubs,
    create_app,
    new_token,
    rich_status,
    stream_requests,
)
from .webhook_sink import Sink, running_sink, signature

KEY_ID = "KEY1234567"
TEAM_ID = "TEAM123456"
TOPIC = "com.example.pushhub"
SECRET_KEY = "real-providers-secret-key"

PUBLISHED = common_pb2.MESSAGE_STATE_PUBLISHED
CANCELLED = common_pb2.MESSAGE_STATE_CANCELLED
TERMINAL = {PUBLISHED, common_pb2.MESSAGE_STATE_FAILED, CANCELLED}
PENDING = st.REGISTRATION_STATE_PENDING
SUCCESS = st.REGISTRATION_STATE_SUCCESS
FAILED = st.REGISTRATION_STATE_FAILED
NO_REASON = st.REGISTRATION_FAILURE_REASON_UNSPECIFIED
DRY_RUN_FAILED = st.REGISTRATION_FAILURE_REASON_DRY_RUN_SENDING_FAILED

# Loggers of the fakes' own HTTP/2 stack (h2, hpack), which the server never uses:
# hpack logs every decoded header at DEBUG, the test's own bearer tokens included.
FAKE_LOGGERS = ("h2", "hpack")
JWT_SHAPE = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+")


# ------------------------------------------------------------- fixtures ----


@dataclass
class World:
    """The server under test and the fakes it delivers to."""

    clock: ManualClock
    stubs: Stubs
    apns: FakeApns
    fcm: FakeFcm
    apns_private_key: str
    running: Any

    async def app(self, *, apns: bool = True, fcm: bool = True) -> AppHandle:
        """A new app, with credentials for the chosen fakes (set with its server key)."""
        app = await create_app(self.stubs, self.clock, prefix="real")
        if apns:
            answer = await self.stubs.admin.SetApnsCredentials(
                self.apns_request(app.app_id), metadata=app.server()
            )
            assert answer.app.apns_configured
        if fcm:
            answer = await self.stubs.admin.SetFcmCredentials(
                self.fcm_request(app.app_id), metadata=app.server()
            )
            assert answer.app.fcm_configured
        return app

    def apns_request(self, app_id: str) -> admin_pb2.SetApnsCredentialsRequest:
        return admin_pb2.SetApnsCredentialsRequest(
            app_id=app_id,
            key_id=KEY_ID,
            team_id=TEAM_ID,
            topic=TOPIC,
            private_key_pem=self.apns_private_key,
            environment=admin_pb2.APNS_ENVIRONMENT_PRODUCTION,
        )

    def fcm_request(
        self, app_id: str, account: dict[str, str] | None = None
    ) -> admin_pb2.SetFcmCredentialsRequest:
        document = json.dumps(account or self.fcm.service_account("pushhub-real"))
        return admin_pb2.SetFcmCredentialsRequest(app_id=app_id, service_account_json=document)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return issue_tls_files(tmp_path_factory.mktemp("real-providers-tls"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def own_database(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A database of this module's own: the session server keeps the shared one."""
    directory = tmp_path_factory.mktemp("real-providers-db")
    async with own_database_for(database_url, directory, "pushhub_real") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tls: TlsFiles, own_database: str, webhooks: Sink) -> AsyncIterator[World]:
    from pushhub_server.server import start_server

    clock = ManualClock()
    private_key, public_key = new_signing_key()
    apns = FakeApns(
        tls, clock, topic=TOPIC, team_id=TEAM_ID, key_id=KEY_ID, public_key_pem=public_key
    )
    fcm = FakeFcm(clock, tls)
    await apns.start()
    await fcm.start()
    config = Config(
        database_url=own_database,
        listen="127.0.0.1:0",
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
        sweep_interval=3600,
        apns_endpoint=apns.url,
        apns_ca_file=str(tls.ca_file),
        fcm_endpoint=fcm.base_url,
        fcm_ca_file=str(tls.ca_file),
        webhook_allowed_hosts=f"127.0.0.1:{webhooks.port}",
    )
    running = await start_server(config, clock=clock)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            await channel.channel_ready()
            yield World(clock, Stubs.on(channel), apns, fcm, private_key, running)
    finally:
        await running.stop(1.0)
        await apns.stop()
        await fcm.stop()


# -------------------------------------------------------------- webhook ----


@pytest.fixture(scope="module")
def webhooks() -> Iterator[Sink]:
    with running_sink() as sink:
        yield sink


# -------------------------------------------------------------- helpers ----


def hex_token() -> str:
    """An APNs device token: 64 hex digits."""
    return new_token(64)


def fcm_token() -> str:
    return f"fcm:{new_token(40)}"


async def register_many(app: AppHandle, platform: int, tokens: list[str]) -> None:
    """Registers the tokens over the bulk stream, a thousand per request."""
    batches = [
        reg.RegisterDevicesRequest(
            registrations=[
                reg.RegisterDeviceRequest(platform=platform, device_token=token)
                for token in tokens[start : start + 1000]
            ]
        )
        for start in range(0, len(tokens), 1000)
    ]
    call = app.stubs.registrations.RegisterDevices(stream_requests(batches), metadata=app.server())
    async for response in call:
        errors = [result.error for result in response.results if result.HasField("error")]
        assert not errors, errors[:3]


async def publish(app: AppHandle, **fields: Any) -> str:
    fields.setdefault("broadcast", True)
    fields.setdefault("notification", publish_pb2.Notification(title="Hello", body="World"))
    response = await app.stubs.publish.Publish(
        publish_pb2.PublishRequest(**fields), metadata=app.server()
    )
    assert response.status == publish_pb2.PUBLISH_STATUS_SCHEDULED, response
    return response.message_id


async def finished(app: AppHandle, message_id: str, timeout: float = 30.0) -> st.MessageStatus:
    """The message's status once it reaches a terminal state."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await app.stubs.status.GetMessageStatus(
            st.GetMessageStatusRequest(message_id=message_id), metadata=app.server()
        )
        if answer.status.state in TERMINAL:
            return answer.status
        if time.monotonic() > deadline:
            raise AssertionError(f"message {message_id} still {answer.status}")
        await asyncio.sleep(0.02)


async def deliver(app: AppHandle, **fields: Any) -> st.MessageStatus:
    status = await finished(app, await publish(app, **fields))
    assert status.state == PUBLISHED, status
    return status


def per_platform(status: st.MessageStatus) -> dict[int, tuple[int, int, int]]:
    return {
        counts.platform: (counts.targeted_count, counts.sent_count, counts.failed_count)
        for counts in status.platform_counts
        if counts.targeted_count or counts.sent_count or counts.failed_count
    }


def apns_requests(world: World, tokens: list[str] | set[str]) -> list[ReceivedRequest]:
    wanted = set(tokens)
    return [request for request in world.apns.requests if request.token in wanted]


def fcm_sent(world: World, tokens: list[str] | set[str]) -> list[dict[str, Any]]:
    wanted = set(tokens)
    return [body for body in world.fcm.messages if body["message"].get("token") in wanted]


async def registration_states(app: AppHandle, request_ids: list[str]) -> list[tuple[int, int]]:
    answer = await app.stubs.status.GetRegistrationStatus(
        st.GetRegistrationStatusRequest(request_ids=request_ids), metadata=app.server()
    )
    return [(status.state, status.failure_reason) for status in answer.statuses]


async def final_state(app: AppHandle, request_id: str, timeout: float = 15.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        [state] = await registration_states(app, [request_id])
        if state[0] != PENDING:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"registration request {request_id} still PENDING")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------- delivery ----


async def test_broadcast_reaches_each_fake_in_its_providers_shape(world: World) -> None:
    app = await world.app()
    apple = [hex_token() for _ in range(3)]
    google = [fcm_token() for _ in range(3)]
    await register_many(app, APNS, apple)
    await register_many(app, FCM, google)

    status = await deliver(
        app,
        notification=publish_pb2.Notification(title="Hello", body="World", data={"order": "42"}),
        headers={"campaign": "spring"},
        priority=publish_pb2.PRIORITY_HIGH,
        collapse_key="news",
        ttl=duration_pb2.Duration(seconds=3600),
    )

    assert (status.targeted_count, status.sent_count, status.failed_count) == (6, 6, 0)
    assert per_platform(status) == {APNS: (3, 3, 0), FCM: (3, 3, 0)}
    assert dict(status.failure_reasons) == {}

    received = apns_requests(world, apple)
    assert sorted(request.token for request in received) == sorted(apple)
    expiration = int(world.clock.now().timestamp()) + 3600
    for request in received:
        assert request.status == 200, request
        headers = request.headers
        assert headers["apns-topic"] == TOPIC
        assert headers["apns-push-type"] == "alert"
        assert headers["apns-priority"] == "10"
        assert headers["apns-collapse-id"] == "news"
        assert int(headers["apns-expiration"]) == expiration
        assert "apns-id" not in headers  # optional: Apple assigns one (delivery/payloads/apns.py)
        assert headers["authorization"].startswith("bearer ")
        payload = json.loads(request.payload)
        assert payload["aps"]["alert"] == {"title": "Hello", "body": "World"}
        assert payload["order"] == "42" and payload["campaign"] == "spring"

    bodies = fcm_sent(world, google)
    assert sorted(body["message"]["token"] for body in bodies) == sorted(google)
    for body in bodies:
        assert "validate_only" not in body
        message = body["message"]
        assert message["notification"] == {"title": "Hello", "body": "World"}
        assert message["data"]["order"] == "42" and message["data"]["campaign"] == "spring"
        assert message["android"]["priority"] == "HIGH"
        assert message["android"]["ttl"] == "3600s"
        assert message["android"]["collapse_key"] == "news"


async def test_platform_without_credentials_goes_to_the_simulator(world: World) -> None:
    app = await world.app(fcm=False)
    apple, google = hex_token(), fcm_token()
    await register_many(app, APNS, [apple])
    await register_many(app, FCM, [google])

    status = await deliver(app)

    assert per_platform(status) == {APNS: (1, 1, 0), FCM: (1, 1, 0)}
    assert [request.status for request in apns_requests(world, [apple])] == [200]
    assert fcm_sent(world, [google]) == []


async def test_apns_dead_tokens_are_pruned_and_left_out_later(world: World) -> None:
    app = await world.app(fcm=False)
    alive = [hex_token() for _ in range(2)]
    unregistered, bad, other_topic = hex_token(), hex_token(), hex_token()
    world.apns.unregistered.add(unregistered)
    world.apns.bad_tokens.add(bad)
    world.apns.other_topic_tokens.add(other_topic)
    await register_many(app, APNS, [*alive, unregistered, bad, other_topic])

    first = await deliver(app)

    assert (first.targeted_count, first.sent_count, first.failed_count) == (5, 2, 3)
    assert per_platform(first) == {APNS: (5, 2, 3)}
    assert dict(first.failure_reasons) == {
        "Unregistered": 1,
        "BadDeviceToken": 1,
        "DeviceTokenNotForTopic": 1,
    }

    later = await deliver(app)

    assert (later.targeted_count, later.sent_count, later.failed_count) == (2, 2, 0)
    assert dict(later.failure_reasons) == {}
    sends = Counter(request.token for request in apns_requests(world, alive))
    assert sends == {token: 2 for token in alive}
    for dead in (unregistered, bad, other_topic):
        assert len(apns_requests(world, [dead])) == 1, f"{dead} was sent to again"


async def test_fcm_dead_tokens_are_pruned_and_left_out_later(world: World) -> None:
    app = await world.app(apns=False)
    alive = [fcm_token() for _ in range(2)]
    unregistered, mismatched, invalid = fcm_token(), fcm_token(), fcm_token()
    world.fcm.unregistered.add(unregistered)
    world.fcm.mismatched.add(mismatched)
    world.fcm.invalid.add(invalid)
    await register_many(app, FCM, [*alive, unregistered, mismatched, invalid])
    sends_before = world.fcm.send_requests

    first = await deliver(app)

    assert (first.targeted_count, first.sent_count, first.failed_count) == (5, 2, 3)
    assert per_platform(first) == {FCM: (5, 2, 3)}
    assert dict(first.failure_reasons) == {
        "UNREGISTERED": 1,
        "SENDER_ID_MISMATCH": 1,
        "INVALID_ARGUMENT": 1,
    }
    assert world.fcm.send_requests - sends_before == 5

    later = await deliver(app)

    assert (later.targeted_count, later.sent_count, later.failed_count) == (2, 2, 0)
    assert dict(later.failure_reasons) == {}
    assert world.fcm.send_requests - sends_before == 7
    assert Counter(body["message"]["token"] for body in fcm_sent(world, alive)) == {
        token: 2 for token in alive
    }


@pytest.mark.parametrize(
    ("platform", "status_code", "reason"),
    [
        (APNS, 429, "TooManyRequests"),
        (APNS, 503, "ServiceUnavailable"),
        (FCM, 429, "QUOTA_EXCEEDED"),
        (FCM, 503, "UNAVAILABLE"),
    ],
    ids=["apns-429", "apns-503", "fcm-429", "fcm-503"],
)
async def test_throttling_and_outages_are_retried_after_retry_after(
    world: World, platform: int, status_code: int, reason: str
) -> None:
    app = await world.app()
    tokens = [hex_token() if platform == APNS else fcm_token() for _ in range(4)]
    await register_many(app, platform, tokens)
    fake = world.apns if platform == APNS else world.fcm
    # The first two answers are refusals asking for one second; without Retry-After
    # the first retry would come after 0.125-0.25 s of backoff.
    fake.fail_next(2, status_code, "1")

    started = time.monotonic()
    status = await deliver(app)
    elapsed = time.monotonic() - started

    assert (status.targeted_count, status.sent_count, status.failed_count) == (4, 4, 0)
    assert dict(status.failure_reasons) == {}
    assert elapsed >= 0.95, f"Retry-After: 1 not honoured ({elapsed:.2f} s)"
    if platform == APNS:
        answers = [(r.status, r.reason) for r in apns_requests(world, tokens) if r.status != 200]
        assert answers == [(status_code, reason)] * 2
        delivered = {r.token for r in apns_requests(world, tokens) if r.status == 200}
    else:
        delivered = {body["message"]["token"] for body in fcm_sent(world, tokens)}
    assert delivered == set(tokens)


async def test_retries_end_and_count_under_the_reason(world: World) -> None:
    """A provider that keeps refusing: bounded attempts, then failed under its reason."""
    app = await world.app(fcm=False)
    token = hex_token()
    await register_many(app, APNS, [token])
    world.apns.fail_next(100, 503, "0")
    try:
        status = await deliver(app)
    finally:
        world.apns.fail_next(0)
    attempts = apns_requests(world, [token])
    assert (status.sent_count, status.failed_count) == (0, 1)
    assert dict(status.failure_reasons) == {"ServiceUnavailable": 1}
    assert 2 <= len(attempts) <= 10
    assert {request.status for request in attempts} == {503}


async def test_goaway_and_a_dropped_connection_mid_fanout_lose_nothing(world: World) -> None:
    app = await world.app(fcm=False)
    tokens = [hex_token() for _ in range(3000)]
    await register_many(app, APNS, tokens)
    connections = world.apns.connections
    # Armed now, it fires inside the second chunk of 1,000, with its streams in flight.
    world.apns.goaway_after(1500)

    status = await deliver(app, notification=publish_pb2.Notification(title="GOAWAY"))

    assert (status.targeted_count, status.sent_count, status.failed_count) == (3000, 3000, 0)
    delivered = Counter(r.token for r in apns_requests(world, tokens) if r.status == 200)
    assert set(delivered) == set(tokens), f"lost {len(set(tokens) - set(delivered))}"
    assert world.apns.connections > connections, "the GOAWAY never fired"

    connections = world.apns.connections
    world.apns.drop_after(2200)

    status = await deliver(app, notification=publish_pb2.Notification(title="drop"))

    assert (status.targeted_count, status.sent_count, status.failed_count) == (3000, 3000, 0)
    dropped = [
        r.token
        for r in apns_requests(world, tokens)
        if r.status == 200 and json.loads(r.payload)["aps"]["alert"]["title"] == "drop"
    ]
    assert set(dropped) == set(tokens)
    assert world.apns.connections > connections, "the connection was never dropped"


# ------------------------------------------------ credentials changes ----


def p384_key() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def test_stored_credentials_a_provider_cannot_use_fail_only_their_platform(
    world: World,
) -> None:
    """Credentials stored before SetApnsCredentials and SetFcmCredentials checked what
    the providers need (stored here through AppService, past the checks): that
    platform's recipients fail as CredentialsUnusable, the other platform delivers,
    and a tracked registration fails its dry run instead of answering INTERNAL."""
    apns_broken = await world.app(apns=False)
    await world.running.apps.set_apns_credentials(
        apns_broken.app_id, ApnsCredentials(KEY_ID, TEAM_ID, TOPIC, p384_key())
    )
    fcm_broken = await world.app(fcm=False)
    account = world.fcm.service_account("pushhub-no-token-uri")
    del account["token_uri"]
    await world.running.apps.set_fcm_credentials(fcm_broken.app_id, FcmCredentials(account))

    for app, broken in ((apns_broken, APNS), (fcm_broken, FCM)):
        apple, google = hex_token(), fcm_token()
        await register_many(app, APNS, [apple])
        await register_many(app, FCM, [google])
        status = await deliver(app)
        working = FCM if broken == APNS else APNS
        assert per_platform(status) == {broken: (1, 0, 1), working: (1, 1, 0)}, status
        assert dict(status.failure_reasons) == {"CredentialsUnusable": 1}
        assert (
            apns_requests(world, [apple]) if broken == APNS else fcm_sent(world, [google])
        ) == []
        token = hex_token() if broken == APNS else fcm_token()
        tracked = await app.register(platform=broken, device_token=token, track=True)
        assert await final_state(app, tracked.request_id) == (FAILED, DRY_RUN_FAILED)


async def test_changing_credentials_mid_broadcast_loses_nothing(world: World) -> None:
    """The provider a broadcast is sending through stays open until its sends return."""
    app = await world.app(fcm=False)
    tokens = [hex_token() for _ in range(20)]
    await register_many(app, APNS, tokens)
    world.apns.held.add(tokens[0])
    try:
        message_id = await publish(app)
        deadline = time.monotonic() + 10
        while not world.apns.held_requests and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert world.apns.held_requests == 1
        sandbox = world.apns_request(app.app_id)
        sandbox.environment = admin_pb2.APNS_ENVIRONMENT_SANDBOX
        await world.stubs.admin.SetApnsCredentials(sandbox, metadata=app.server())
        # Anything that reads the app's providers now swaps them: a tracked registration.
        tracked = await app.register(device_token=hex_token(), track=True)
        assert await final_state(app, tracked.request_id) == (SUCCESS, NO_REASON)
    finally:
        world.apns.release_held()

    status = await finished(app, message_id)
    assert status.state == PUBLISHED, status
    assert (status.targeted_count, status.sent_count, status.failed_count) == (20, 20, 0)
    assert {request.token for request in world.apns.delivered} >= set(tokens)


async def test_a_credentials_change_keeps_the_apns_provider_token_of_the_same_key(
    world: World,
) -> None:
    """New FCM credentials leave the APNs provider alone, and new APNs credentials
    with the same key (another environment) keep its provider token: a new token
    within 20 minutes would be TooManyProviderTokenUpdates."""
    app = await world.app()
    apple = hex_token()
    await register_many(app, APNS, [apple])
    await deliver(app)
    await world.stubs.admin.SetFcmCredentials(world.fcm_request(app.app_id), metadata=app.server())
    await deliver(app)
    sandbox = world.apns_request(app.app_id)
    sandbox.environment = admin_pb2.APNS_ENVIRONMENT_SANDBOX
    await world.stubs.admin.SetApnsCredentials(sandbox, metadata=app.server())
    await deliver(app)

    sent = apns_requests(world, [apple])
    assert [request.status for request in sent] == [200, 200, 200]
    assert len({request.headers["authorization"] for request in sent}) == 1


async def test_deleting_an_app_closes_its_providers(world: World) -> None:
    """DeleteApp releases the app's providers: their connections close."""
    app = await world.app(fcm=False)
    await register_many(app, APNS, [hex_token()])
    await deliver(app)
    open_before = world.apns.open_connections

    request = admin_pb2.DeleteAppRequest(app_id=app.app_id)
    await world.stubs.admin.DeleteApp(request, metadata=app.server())

    deadline = time.monotonic() + 10
    while world.apns.open_connections != open_before - 1:
        assert time.monotonic() < deadline, "the deleted app's connection stayed open"
        await asyncio.sleep(0.01)


async def test_a_cancel_during_a_chunk_keeps_what_the_chunk_sent(world: World) -> None:
    """The notifications in flight went out: they are counted, and the token APNs
    reported unregistered is invalidated; nothing is sent after the chunk."""
    app = await world.app(fcm=False)
    alive, dead = [hex_token() for _ in range(3)], hex_token()
    world.apns.unregistered.add(dead)
    world.apns.held.add(alive[0])  # APNs answers it only once released
    await register_many(app, APNS, [*alive, dead])

    message_id = await publish(app)
    async with asyncio.timeout(10):
        while world.apns.held_requests == 0:
            await asyncio.sleep(0.01)
    cancelled = await app.cancel(message_id)
    world.apns.release_held()

    assert cancelled.state == CANCELLED
    async with asyncio.timeout(10):
        while (status := await app.status(message_id)).targeted_count < 4:
            await asyncio.sleep(0.02)
    assert (status.state, status.run_count) == (CANCELLED, 0)
    assert (status.sent_count, status.failed_count) == (3, 1)
    assert dict(status.failure_reasons) == {"Unregistered": 1}
    assert len(apns_requests(world, [*alive, dead])) == 4
    again = await deliver(app)
    assert (again.targeted_count, again.sent_count) == (3, 3)


# --------------------------------------------------------- token rules ----


async def test_provider_tokens_follow_the_refresh_rules(world: World) -> None:
    """APNs JWT reused under 50 minutes and renewed after; the FCM access token cached
    until shortly before it expires. Moves the shared clock forward 76 minutes."""
    app = await world.app()
    apple, google = hex_token(), fcm_token()
    await register_many(app, APNS, [apple])
    await register_many(app, FCM, [google])
    start = world.clock.now()
    exchanges = world.fcm.token_requests

    await deliver(app)
    assert world.fcm.token_requests == exchanges + 1
    world.clock.advance(timedelta(minutes=15))
    await deliver(app)
    world.clock.advance(timedelta(minutes=36))  # 51 minutes after the first token
    await deliver(app)
    world.clock.advance(timedelta(minutes=25))  # the FCM token (an hour) is now expired
    await deliver(app)

    first = int(start.timestamp())
    renewed = first + 51 * 60
    sent = apns_requests(world, [apple])
    assert [(r.status, r.iat) for r in sent] == [
        (200, first),
        (200, first),
        (200, renewed),
        (200, renewed),
    ]
    assert len({r.headers["authorization"] for r in sent}) == 2
    # One exchange for the first hour, a second once the first token neared expiry.
    assert world.fcm.token_requests == exchanges + 2
    assert len(fcm_sent(world, [google])) == 4


# ---------------------------------------------------- dry-run verification ----


async def test_tracked_apns_registration_is_verified_by_a_background_push(
    world: World, webhooks: Sink
) -> None:
    app = await world.app(fcm=False)
    token = hex_token()
    url = webhooks.url()
    world.apns.held.add(token)
    try:
        response = await app.register(
            device_token=token, track=True, callback_url=url, callback_headers={"X-Hook": "1"}
        )
        request_id = response.request_id
        assert request_id
        # The silent push is in flight (the fake holds its answer): still PENDING.
        deadline = time.monotonic() + 10
        while not world.apns.held_requests and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert await registration_states(app, [request_id]) == [(PENDING, NO_REASON)]
        assert webhooks.calls_to(url) == []
    finally:
        world.apns.release_held()

    assert await final_state(app, request_id) == (SUCCESS, NO_REASON)
    [push] = apns_requests(world, [token])
    assert push.status == 200
    assert push.headers["apns-push-type"] == "background"
    assert push.headers["apns-priority"] == "5"
    assert push.headers["apns-topic"] == TOPIC
    assert json.loads(push.payload)["aps"] == {"content-available": 1}
    assert "alert" not in json.loads(push.payload)["aps"]

    hook = await webhooks.wait_for_call(url)
    assert hook.json["status"] == "SUCCESS"
    assert hook.json["failure_reason"] in (None, "")
    assert hook.json["signature"] == signature(app.server_key, url)
    await asyncio.sleep(0.2)
    assert len(webhooks.calls_to(url)) == 1, "one webhook call, with the final status"


async def test_unregistered_apns_token_fails_the_dry_run(world: World, webhooks: Sink) -> None:
    app = await world.app(fcm=False)
    token = hex_token()
    world.apns.unregistered.add(token)
    url = webhooks.url()

    response = await app.register(app.device(), device_token=token, track=True, callback_url=url)

    assert await final_state(app, response.request_id) == (FAILED, DRY_RUN_FAILED)
    [push] = apns_requests(world, [token])
    assert (push.status, push.reason) == (410, "Unregistered")
    hook = await webhooks.wait_for_call(url)
    assert (hook.json["status"], hook.json["failure_reason"]) == (
        "FAILED",
        "DRY_RUN_SENDING_FAILED",
    )
    # Signed with the key that registered: the device key.
    assert hook.json["signature"] == signature(app.device_key, url)


async def test_tracked_fcm_registration_is_verified_with_validate_only(
    world: World, webhooks: Sink
) -> None:
    app = await world.app(apns=False)
    good, gone = fcm_token(), fcm_token()
    world.fcm.unregistered.add(gone)
    good_url, gone_url = webhooks.url(), webhooks.url()

    ok = await app.register(platform=FCM, device_token=good, track=True, callback_url=good_url)
    bad = await app.register(platform=FCM, device_token=gone, track=True, callback_url=gone_url)

    assert await final_state(app, ok.request_id) == (SUCCESS, NO_REASON)
    assert await final_state(app, bad.request_id) == (FAILED, DRY_RUN_FAILED)
    [check] = [body for body in world.fcm.validated if body["message"]["token"] == good]
    assert check["validate_only"] is True
    assert fcm_sent(world, [good, gone]) == [], "a dry run must not reach the device"
    good_hook = await webhooks.wait_for_call(good_url)
    assert good_hook.json["status"] == "SUCCESS"
    assert good_hook.json["signature"] == signature(app.server_key, good_url)
    gone_hook = await webhooks.wait_for_call(gone_url)
    assert (gone_hook.json["status"], gone_hook.json["failure_reason"]) == (
        "FAILED",
        "DRY_RUN_SENDING_FAILED",
    )
    assert gone_hook.json["signature"] == signature(app.server_key, gone_url)


async def test_platform_without_credentials_is_not_dry_run(world: World) -> None:
    app = await world.app(fcm=False)
    token = fcm_token()
    validated = len(world.fcm.validated)

    response = await app.register(platform=FCM, device_token=token, track=True)

    assert await registration_states(app, [response.request_id]) == [(SUCCESS, NO_REASON)]
    assert len(world.fcm.validated) == validated


# ---------------------------------------------------------------- secrets ----


async def test_secrets_never_appear_in_responses_or_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses: list[str] = []

    async def answer(call: Any) -> None:
        try:
            responses.append(str(await call))
        except grpc.aio.AioRpcError as error:
            responses.append(f"{error.code()} {error.details()} {rich_status(error)}")
            responses.append(str(error.trailing_metadata()))

    account = world.fcm.service_account("pushhub-secrets")
    app = await create_app(world.stubs, world.clock, prefix="secrets")
    await answer(
        world.stubs.admin.SetApnsCredentials(world.apns_request(app.app_id), metadata=app.server())
    )
    await answer(
        world.stubs.admin.SetFcmCredentials(
            world.fcm_request(app.app_id, account), metadata=app.server()
        )
    )
    # Refused credentials: the error must not echo what it refused.
    bad_apns = world.apns_request(app.app_id)
    bad_apns.key_id = "short"
    await answer(world.stubs.admin.SetApnsCredentials(bad_apns, metadata=app.server()))
    incomplete = {k: v for k, v in account.items() if k != "client_email"}
    await answer(
        world.stubs.admin.SetFcmCredentials(
            world.fcm_request(app.app_id, incomplete), metadata=app.server()
        )
    )
    await answer(world.stubs.admin.ListApps(admin_pb2.ListAppsRequest(), metadata=app.server()))
    await answer(
        world.stubs.admin.ListApps(
            admin_pb2.ListAppsRequest(page_size=1000), metadata=ADMIN_METADATA
        )
    )

    # Deliveries, some refused by the providers.
    dead_apple, dead_google = hex_token(), fcm_token()
    world.apns.unregistered.add(dead_apple)
    world.fcm.mismatched.add(dead_google)
    await register_many(app, APNS, [hex_token(), dead_apple])
    await register_many(app, FCM, [fcm_token(), dead_google])
    world.apns.fail_next(1, 503, "0")
    message_id = await publish(app)
    status = await finished(app, message_id)
    responses.append(str(status))
    assert status.sent_count == 2 and status.failed_count == 2

    # Credentials the providers refuse: a key Apple does not know, an account Google
    # does not know (the token exchange fails).
    strangers = await create_app(world.stubs, world.clock, prefix="strangers")
    other_key, _ = new_signing_key()
    wrong_apns = world.apns_request(strangers.app_id)
    wrong_apns.private_key_pem = other_key
    await answer(world.stubs.admin.SetApnsCredentials(wrong_apns, metadata=strangers.server()))
    unknown_account = FakeFcm(world.clock, world.fcm.tls).service_account("pushhub-unknown")
    unknown_account["token_uri"] = world.fcm.token_uri
    await answer(
        world.stubs.admin.SetFcmCredentials(
            world.fcm_request(strangers.app_id, unknown_account), metadata=strangers.server()
        )
    )
    await register_many(strangers, APNS, [hex_token()])
    await register_many(strangers, FCM, [fcm_token()])
    refused = await finished(strangers, await publish(strangers))
    responses.append(str(refused))
    assert refused.sent_count == 0 and refused.failed_count == 2, refused
    await answer(
        world.stubs.status.GetMessageStatus(
            st.GetMessageStatusRequest(message_id=message_id), metadata=strangers.server()
        )
    )

    logs = "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        if not record.name.startswith(FAKE_LOGGERS)
    )
    assert logs, "nothing was logged at all: is caplog capturing the server?"
    jwts = {
        request.headers["authorization"].removeprefix("bearer ")
        for request in world.apns.requests
        if "authorization" in request.headers
    }
    secrets = {
        "APNs .p8 body": _pem_body(world.apns_private_key),
        "other .p8 body": _pem_body(other_key),
        "service-account key": _pem_body(account["private_key"]),
        "unknown account key": _pem_body(unknown_account["private_key"]),
        "service-account key id": account["private_key_id"],
        **{f"APNs JWT {n}": jwt for n, jwt in enumerate(jwts)},
    }
    assert len(jwts) >= 2
    for where, text in (("responses", "\n".join(responses)), ("logs", logs)):
        for name, secret in secrets.items():
            assert secret not in text, f"{name} appears in the {where}"
        assert "PRIVATE KEY" not in text, f"a PEM appears in the {where}"
        assert "ya29." not in text, f"an access token appears in the {where}"
        assert not JWT_SHAPE.search(text), f"a JWT appears in the {where}"
    assert SECRET_KEY not in logs and ADMIN_TOKEN not in logs
    assert app.server_key not in logs


def _pem_body(pem: str) -> str:
    """A full line of a PEM's base64 body: 64 characters of the key itself."""
    lines = [line for line in pem.strip().splitlines() if not line.startswith("-----")]
    return max(lines, key=len)


async def test_unsealed_credentials_never_reach_the_logs(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without PUSHHUB_SECRET_KEY credentials are stored as they are: the database
    driver's DEBUG log of statement parameters must not print them. A second server,
    on a SQLite file of its own (aiosqlite is the driver that logs parameters)."""
    from pushhub_server.server import start_server

    caplog.set_level(logging.DEBUG)
    config = Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unsealed.db'}",
        listen="127.0.0.1:0",
        admin_token=ADMIN_TOKEN,
        sweep_interval=3600,
        apns_endpoint=world.apns.url,
        apns_ca_file=str(world.apns.tls.ca_file),
        fcm_endpoint=world.fcm.base_url,
        fcm_ca_file=str(world.fcm.tls.ca_file),
    )
    running = await start_server(config, clock=world.clock)
    account = world.fcm.service_account("pushhub-unsealed")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stubs = Stubs.on(channel)
            app = await create_app(stubs, world.clock, prefix="unsealed")
            await stubs.admin.SetApnsCredentials(
                world.apns_request(app.app_id), metadata=app.server()
            )
            await stubs.admin.SetFcmCredentials(
                world.fcm_request(app.app_id, account), metadata=app.server()
            )
            await register_many(app, APNS, [hex_token()])
            await register_many(app, FCM, [fcm_token()])
            status = await deliver(app)
            assert (status.sent_count, status.failed_count) == (2, 0)
    finally:
        await running.stop(1.0)

    logs = "\n".join(
        f"{record.name} {record.getMessage()}"
        for record in caplog.records
        if not record.name.startswith(FAKE_LOGGERS)
    )
    assert logs
    for secret in (_pem_body(world.apns_private_key), _pem_body(account["private_key"])):
        assert secret not in logs
        assert secret.replace("/", "\\/") not in logs
    assert "PRIVATE KEY" not in logs
