"""WebPushProvider against web-push-testing, an independent push service (npm).

It verifies the VAPID token with node's jsonwebtoken and decrypts with node's
http_ece: what it reads back is what a browser would. Its host (localhost, a
loopback name) is reached only because the operator's list names it, over
plain HTTP/1.1, as PUSHHUB_WEB_PUSH_ALLOWED_HOSTS allows for listed hosts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from pushhub_server.core.clock import SystemClock
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.core.web_push import WebPushCredentials, WebPushKeys, web_push_credentials
from pushhub_server.core.web_push_endpoints import EndpointPolicy
from pushhub_server.delivery.payloads.webpush import webpush_headers
from pushhub_server.delivery.providers.webpush import WebPushProvider
from tests.fakes.web_push_testing import Subscription, WebPushTesting

PAYLOAD = {"title": "Hello", "body": "From PushHub", "data": {"kind": "demo"}}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def service() -> AsyncIterator[WebPushTesting]:
    running = await WebPushTesting.start()
    yield running
    await running.stop()


@pytest.fixture(scope="module")
def credentials() -> WebPushCredentials:
    return web_push_credentials("", "mailto:ops@example.com")


@pytest_asyncio.fixture
async def provider(
    service: WebPushTesting, credentials: WebPushCredentials
) -> AsyncIterator[WebPushProvider]:
    policy = EndpointPolicy.from_env(f"localhost:{service.port}")
    opened = WebPushProvider(credentials, SystemClock(), policy=policy)
    yield opened
    await opened.close()


def delivery(subscription: Subscription, payload: bytes) -> Delivery:
    return Delivery(
        "msg-1",
        "app-1",
        "reg-1",
        Platform.WEB_PUSH,
        subscription.endpoint,
        payload,
        webpush_headers(None, "normal", "demo"),
        WebPushKeys(subscription.p256dh, subscription.auth),
    )


async def test_the_service_decrypts_what_pushhub_sent(
    service: WebPushTesting, provider: WebPushProvider, credentials: WebPushCredentials
) -> None:
    subscription = await service.subscribe(credentials.public_key)
    payload = json.dumps(PAYLOAD).encode()

    results = await provider.send([delivery(subscription, payload), delivery(subscription, b"{}")])

    assert results == [DeliveryResult(DeliveryOutcome.SENT)] * 2
    received = await service.notifications(subscription)
    assert sorted(received) == sorted([payload.decode(), "{}"])


async def test_an_expired_subscription_is_an_invalid_token(
    service: WebPushTesting, provider: WebPushProvider, credentials: WebPushCredentials
) -> None:
    subscription = await service.subscribe(credentials.public_key)
    first = await provider.send([delivery(subscription, b'{"n":1}')])
    await service.expire(subscription)

    second = await provider.send([delivery(subscription, b'{"n":2}')])

    assert first == [DeliveryResult(DeliveryOutcome.SENT)]
    assert second == [DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "Gone")]
    assert await service.notifications(subscription) == ['{"n":1}']


async def test_a_subscription_for_another_vapid_key_is_refused(
    service: WebPushTesting, provider: WebPushProvider
) -> None:
    other_app = web_push_credentials("", "https://other.example.com")
    subscription = await service.subscribe(other_app.public_key)

    [result] = await provider.send([delivery(subscription, b"{}")])

    assert result == DeliveryResult(DeliveryOutcome.REJECTED, "BadRequest")
    assert await service.notifications(subscription) == []


async def test_a_loopback_endpoint_is_refused_when_not_listed(
    service: WebPushTesting, credentials: WebPushCredentials
) -> None:
    subscription = await service.subscribe(credentials.public_key)
    unlisted = WebPushProvider(credentials, SystemClock())
    try:
        [result] = await unlisted.send([delivery(subscription, b"{}")])
    finally:
        await unlisted.close()

    assert result == DeliveryResult(DeliveryOutcome.REJECTED, "EndpointNotAllowed")
    assert await service.notifications(subscription) == []
