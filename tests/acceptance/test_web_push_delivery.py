"""Web Push delivery end to end: the gRPC server posts to the fake push service.

The fake (tests/fakes/webpush.py) speaks HTTP/2 over TLS as ``localhost``, checks
VAPID against the subscription's applicationServerKey and decrypts with
http_ece, so a SENT here is a message a browser could read. Its host is listed in
PUSHHUB_WEB_PUSH_ALLOWED_HOSTS, as an operator lists a relay. The server's
resolver is the test's: ``localhost`` and a name on the push services' list
(``evil.push.services.mozilla.com``) both resolve to 127.0.0.1, and only the
listed one may be reached.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import duration_pb2

from pushhub.v1 import admin_pb2, common_pb2, publish_pb2
from pushhub.v1 import registration_pb2 as reg
from pushhub.v1 import status_pb2 as st
from pushhub_server.config import Config
from pushhub_server.core.clock import ManualClock
from tests.conftest import ADMIN_TOKEN
from tests.fakes.tls import TlsFiles, issue_tls_files
from tests.fakes.webpush import FakeWebPush, Subscription
from tests.own_database import own_database as own_database_for

from .harness import AppHandle, Stubs, create_app, expect_error, platform_counts

WEB_PUSH = common_pb2.PLATFORM_WEB_PUSH
PUBLISHED = common_pb2.MESSAGE_STATE_PUBLISHED
TERMINAL = {PUBLISHED, common_pb2.MESSAGE_STATE_FAILED, common_pb2.MESSAGE_STATE_CANCELLED}
SUBJECT = "mailto:ops@example.com"
# On the push services' allow-list (*.push.services.mozilla.com), resolved by the test.
INSIDE_NAME = "evil.push.services.mozilla.com"


@dataclass
class World:
    clock: ManualClock
    stubs: Stubs
    service: FakeWebPush
    # host -> the addresses the server's resolver answers
    dns: dict[str, list[str]]

    async def app(self) -> tuple[AppHandle, str]:
        """A new app with generated VAPID credentials, and its applicationServerKey."""
        app = await create_app(self.stubs, self.clock, prefix="webpush")
        answer = await self.stubs.admin.SetWebPushCredentials(
            admin_pb2.SetWebPushCredentialsRequest(app_id=app.app_id, subject=SUBJECT),
            metadata=app.server(),
        )
        assert answer.app.web_push_configured
        return app, answer.app.web_push_public_key

    async def subscribed(self, app: AppHandle, key: str) -> tuple[Subscription, str]:
        """A browser subscribes with the app's key and registers: (subscription, id)."""
        subscription = self.service.subscribe(key)
        return subscription, await register(app, subscription.endpoint, subscription)


async def register(app: AppHandle, endpoint: str, subscription: Subscription) -> str:
    keys = reg.WebPushKeys(p256dh=subscription.p256dh, auth=subscription.auth)
    answer = await app.register(
        platform=WEB_PUSH, device_token=endpoint, web_push_keys=keys, auth=app.device()
    )
    return answer.registration.registration_id


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return issue_tls_files(tmp_path_factory.mktemp("webpush-delivery-tls"), ("localhost",))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def own_database(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    directory = tmp_path_factory.mktemp("webpush-delivery-db")
    async with own_database_for(database_url, directory, "pushhub_webpush") as url:
        yield url


def resolver_of(dns: dict[str, list[str]]) -> Callable[[str, int], Any]:
    async def resolve(host: str, port: int) -> list[str]:
        return dns.get(host, [])

    return resolve


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="session",
    params=[2, 0],
    ids=["encrypting on 2 threads", "encrypting on the event loop"],
)
async def world(
    tls: TlsFiles, own_database: str, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    """Every test runs against a server with each PUSHHUB_WEB_PUSH_ENCRYPTION_THREADS."""
    from pushhub_server.server import start_server

    clock = ManualClock()
    service = FakeWebPush(clock, tls)
    await service.start()
    dns = {"localhost": ["127.0.0.1"], INSIDE_NAME: ["127.0.0.1"]}
    config = Config(
        database_url=own_database,
        listen="127.0.0.1:0",
        admin_token=ADMIN_TOKEN,
        secret_key="webpush-delivery-secret",
        sweep_interval=3600,
        web_push_ca_file=str(tls.ca_file),
        web_push_allowed_hosts=f"localhost:{service.port}",
        web_push_encryption_threads=request.param,
    )
    running = await start_server(config, clock=clock, resolver=resolver_of(dns))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            await channel.channel_ready()
            yield World(clock, Stubs.on(channel), service, dns)
    finally:
        await running.stop(1.0)
        await service.stop()


async def finished(app: AppHandle, message_id: str, timeout: float = 30.0) -> st.MessageStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = await app.status(message_id)
        if status.state in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"message {message_id} still {status}")
        await asyncio.sleep(0.02)


async def deliver(app: AppHandle, **fields: Any) -> st.MessageStatus:
    fields.setdefault("broadcast", True)
    fields.setdefault("notification", publish_pb2.Notification(title="Hello", body="World"))
    response = await app.publish(**fields)
    status = await finished(app, response.message_id)
    assert status.state == PUBLISHED, status
    return status


async def live(app: AppHandle, registration_id: str) -> bool:
    return registration_id in {r.registration_id for r in await app.list_all()}


# ------------------------------------------------------------- delivery ----


async def test_a_publish_reaches_the_browser_encrypted_and_signed(world: World) -> None:
    app, key = await world.app()
    subscription, _ = await world.subscribed(app, key)
    before = len(world.service.received)

    status = await deliver(
        app,
        notification=publish_pb2.Notification(
            title="Hello", body="World", image_url="https://example.com/a.png", data={"k": "v"}
        ),
        headers={"campaign": "spring"},
        priority=publish_pb2.PRIORITY_HIGH,
        collapse_key="news",
        ttl=duration_pb2.Duration(seconds=3600),
    )

    assert platform_counts(status)[WEB_PUSH] == (1, 1, 0)
    [received] = world.service.received[before:]
    assert received.subscription_id == subscription.id
    assert json.loads(received.plaintext) == {
        "title": "Hello",
        "body": "World",
        "image": "https://example.com/a.png",
        "tag": "news",
        "data": {"k": "v", "campaign": "spring"},
    }
    headers = received.headers
    assert (headers["ttl"], headers["urgency"], headers["topic"]) == ("3600", "high", "news")
    assert headers["content-encoding"] == "aes128gcm"
    assert received.vapid_claims["aud"] == world.service.origin
    assert received.vapid_claims["sub"] == SUBJECT
    assert world.service.connections["h2"] >= 1


async def test_a_broadcast_to_many_subscriptions_shares_one_connection(world: World) -> None:
    app, key = await world.app()
    subscriptions = [(await world.subscribed(app, key))[0] for _ in range(40)]
    connections = sum(world.service.connections.values())
    before = len(world.service.received)

    status = await deliver(app)

    assert platform_counts(status)[WEB_PUSH] == (40, 40, 0)
    received = world.service.received[before:]
    assert sorted(r.subscription_id for r in received) == sorted(s.id for s in subscriptions)
    # One multiplexed HTTP/2 connection per origin, kept from earlier tests or new.
    assert sum(world.service.connections.values()) - connections <= 1


# --------------------------------------------------------------- errors ----


async def test_gone_and_unknown_subscriptions_are_invalidated(world: World) -> None:
    app, key = await world.app()
    expired, expired_id = await world.subscribed(app, key)
    world.service.expire(expired)
    # An endpoint the service never issued answers 404.
    unknown_id = await register(
        app, f"{world.service.origin}/push/never-issued", world.service.subscribe(key)
    )
    kept, kept_id = await world.subscribed(app, key)

    status = await deliver(app)

    assert platform_counts(status)[WEB_PUSH] == (3, 1, 2)
    assert dict(status.failure_reasons) == {"Gone": 1, "NotFound": 1}
    assert not await live(app, expired_id) and not await live(app, unknown_id)
    assert await live(app, kept_id)
    # The next publish leaves them out.
    again = await deliver(app)
    assert platform_counts(again)[WEB_PUSH] == (1, 1, 0)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(413, "PayloadRejected"), (400, "BadRequest"), (403, "Forbidden")],
)
async def test_refusals_are_counted_under_their_reasons_and_keep_the_registration(
    world: World, status: int, reason: str
) -> None:
    app, key = await world.app()
    _, registration_id = await world.subscribed(app, key)
    world.service.fail_next(1, status)

    answer = await deliver(app)

    assert platform_counts(answer)[WEB_PUSH] == (1, 0, 1)
    assert dict(answer.failure_reasons) == {reason: 1}
    assert await live(app, registration_id)


async def test_throttling_is_retried_after_retry_after(world: World) -> None:
    app, key = await world.app()
    subscription, _ = await world.subscribed(app, key)
    before = len(world.service.received)
    world.service.fail_next(1, 429, retry_after="1")

    started = time.monotonic()
    status = await deliver(app)
    elapsed = time.monotonic() - started

    assert platform_counts(status)[WEB_PUSH] == (1, 1, 0)
    assert [r.subscription_id for r in world.service.received[before:]] == [subscription.id]
    assert elapsed >= 0.95, f"Retry-After: 1 not honoured ({elapsed:.2f} s)"


async def test_server_errors_are_retried(world: World) -> None:
    app, key = await world.app()
    await world.subscribed(app, key)
    world.service.fail_next(2, 503)

    status = await deliver(app)

    assert platform_counts(status)[WEB_PUSH] == (1, 1, 0)
    assert dict(status.failure_reasons) == {}


async def test_a_service_down_for_every_attempt_is_counted_not_invalidated(world: World) -> None:
    app, key = await world.app()
    _, registration_id = await world.subscribed(app, key)
    world.service.fail_next(4, 502)  # RetryPolicy's four attempts, each refused

    status = await deliver(app)

    assert platform_counts(status)[WEB_PUSH] == (1, 0, 1)
    assert dict(status.failure_reasons) == {"HTTP502": 1}
    assert await live(app, registration_id)


# ----------------------------------------------------- the operator's network ----


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"],
    ids=["loopback", "private", "metadata", "ipv6-loopback"],
)
async def test_a_push_service_name_resolving_inside_is_refused_at_send_time(
    world: World, address: str
) -> None:
    """The endpoint passes every rule at registration (https, a push service's
    name); its name resolves into the operator's network, so nothing is posted."""
    app, key = await world.app()
    world.dns[INSIDE_NAME] = [address]
    subscription = world.service.subscribe(key)
    registration_id = await register(
        app, f"https://{INSIDE_NAME}/push/{subscription.id}", subscription
    )
    requests = world.service.requests

    status = await deliver(app)

    assert platform_counts(status)[WEB_PUSH] == (1, 0, 1)
    assert dict(status.failure_reasons) == {"EndpointAddressRefused": 1}
    assert world.service.requests == requests  # nothing reached the service
    # Not the subscription's fault: it stays, in case the name's answer changes.
    assert await live(app, registration_id)


async def test_a_name_that_does_not_resolve_is_counted(world: World) -> None:
    app, key = await world.app()
    subscription = world.service.subscribe(key)
    await register(app, f"https://nowhere.push.apple.com/push/{subscription.id}", subscription)

    status = await deliver(app)

    assert dict(status.failure_reasons) == {"EndpointUnresolved": 1}


async def test_the_listed_host_is_reachable_on_its_port_only(world: World) -> None:
    app, key = await world.app()
    subscription = world.service.subscribe(key)
    other_port = world.service.port + 1
    await expect_error(
        register(app, f"https://localhost:{other_port}/push/{subscription.id}", subscription),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_WEB_PUSH_ENDPOINT",
        field="device_token",
    )


# -------------------------------------------------------------- dry run ----


async def test_a_tracked_registration_is_verified_without_posting(world: World) -> None:
    app, key = await world.app()
    subscription = world.service.subscribe(key)
    requests = world.service.requests
    answer = await app.register(
        platform=WEB_PUSH,
        device_token=subscription.endpoint,
        web_push_keys=reg.WebPushKeys(p256dh=subscription.p256dh, auth=subscription.auth),
        track=True,
    )
    state = await final_state(app, answer.request_id)
    assert state == (st.REGISTRATION_STATE_SUCCESS, st.REGISTRATION_FAILURE_REASON_UNSPECIFIED)
    assert world.service.requests == requests


async def test_a_tracked_registration_resolving_inside_fails_its_dry_run(world: World) -> None:
    app, key = await world.app()
    world.dns[INSIDE_NAME] = ["192.168.0.10"]
    subscription = world.service.subscribe(key)
    answer = await app.register(
        platform=WEB_PUSH,
        device_token=f"https://{INSIDE_NAME}/push/{subscription.id}",
        web_push_keys=reg.WebPushKeys(p256dh=subscription.p256dh, auth=subscription.auth),
        track=True,
    )
    state = await final_state(app, answer.request_id)
    assert state == (
        st.REGISTRATION_STATE_FAILED,
        st.REGISTRATION_FAILURE_REASON_DRY_RUN_SENDING_FAILED,
    )


async def final_state(app: AppHandle, request_id: str, timeout: float = 15.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        answer = await app.stubs.status.GetRegistrationStatus(
            st.GetRegistrationStatusRequest(request_ids=[request_id]), metadata=app.server()
        )
        [status] = answer.statuses
        if status.state != st.REGISTRATION_STATE_PENDING:
            return status.state, status.failure_reason
        if time.monotonic() > deadline:
            raise AssertionError(f"registration request {request_id} still PENDING")
        await asyncio.sleep(0.02)
