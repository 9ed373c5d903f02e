"""WebPushProvider against the fake push service (tests/fakes/webpush.py): HTTP/2 over TLS.

The fake decrypts with http_ece and verifies VAPID with the subscription's key,
so a SENT here means a browser could read the message.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import pytest_asyncio

from pushhub_server.core.clock import ManualClock
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.core.web_push import WebPushCredentials, WebPushKeys, web_push_credentials
from pushhub_server.core.web_push_endpoints import EndpointPolicy
from pushhub_server.delivery.address_guard import AddressGuard
from pushhub_server.delivery.payloads.webpush import webpush_headers
from pushhub_server.delivery.providers.webpush import WebPushProvider
from pushhub_server.delivery.retry_policy import RetryPolicy
from tests.fakes.tls import TlsFiles, issue_tls_files
from tests.fakes.webpush import FakeWebPush, Subscription

PAYLOAD = json.dumps({"title": "Hello", "body": "World", "data": {"order": "42"}}).encode()
SENT = (DeliveryOutcome.SENT, None)

OpenProvider = Callable[..., WebPushProvider]


async def to_loopback(host: str, port: int) -> list[str]:
    """A resolver answering 127.0.0.1 for every name (the fake listens there)."""
    return ["127.0.0.1"]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    hosts = ("localhost", "relay.pushhub.test", "updates.push.services.mozilla.com")
    return issue_tls_files(tmp_path_factory.mktemp("webpush-tls"), hosts)


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture(scope="module")
def credentials() -> WebPushCredentials:
    return web_push_credentials("", "mailto:ops@example.com")


@pytest_asyncio.fixture
async def service(tls: TlsFiles, manual_clock: ManualClock) -> AsyncIterator[FakeWebPush]:
    fake = FakeWebPush(manual_clock, tls)
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def open_provider(
    service: FakeWebPush, tls: TlsFiles, manual_clock: ManualClock, credentials: WebPushCredentials
) -> AsyncIterator[OpenProvider]:
    """Providers whose allow-list names the fake (override with keyword arguments)."""
    opened: list[WebPushProvider] = []

    def build(**overrides: Any) -> WebPushProvider:
        options: dict[str, Any] = {
            "policy": EndpointPolicy.from_env(f"localhost:{service.port}"),
            "ca_file": str(tls.ca_file),
        }
        provider = WebPushProvider(
            overrides.pop("credentials", credentials), manual_clock, **(options | overrides)
        )
        opened.append(provider)
        return provider

    yield build
    for provider in opened:
        await provider.close()


@pytest.fixture
def provider(open_provider: OpenProvider) -> WebPushProvider:
    return open_provider()


def delivery(
    subscription: Subscription,
    payload: bytes = PAYLOAD,
    headers: Any = None,
    endpoint: str | None = None,
) -> Delivery:
    return Delivery(
        "msg-1",
        "app-1",
        f"reg-{subscription.id}",
        Platform.WEB_PUSH,
        endpoint or subscription.endpoint,
        payload,
        webpush_headers(None, None, "") if headers is None else headers,
        WebPushKeys(subscription.p256dh, subscription.auth),
    )


def outcomes(results: list[DeliveryResult]) -> list[tuple[DeliveryOutcome, str | None]]:
    return [(result.outcome, result.reason) for result in results]


# ------------------------------------------------------------------ sending


async def test_a_browser_can_decrypt_what_is_sent(
    provider: WebPushProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    subscription = service.subscribe(credentials.public_key)

    results = await provider.send([delivery(subscription)])

    assert outcomes(results) == [SENT]
    [received] = service.received
    assert received.plaintext == PAYLOAD
    assert received.headers["content-encoding"] == "aes128gcm"
    assert received.headers["content-type"] == "application/octet-stream"


async def test_each_recipient_gets_its_own_encryption(
    provider: WebPushProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    subscriptions = [service.subscribe(credentials.public_key) for _ in range(3)]

    results = await provider.send([delivery(s) for s in subscriptions])

    assert outcomes(results) == [SENT] * 3
    assert sorted(r.subscription_id for r in service.received) == sorted(
        s.id for s in subscriptions
    )
    assert {r.plaintext for r in service.received} == {PAYLOAD}


@pytest.mark.parametrize("threads", [0, 2], ids=["on the event loop", "on 2 threads"])
async def test_a_large_batch_is_decryptable_and_answered_in_order(
    open_provider: OpenProvider,
    service: FakeWebPush,
    credentials: WebPushCredentials,
    threads: int,
) -> None:
    """More recipients than one encryption slice, with unusable keys among them:
    every other one is delivered, each result lands in its own slot."""
    provider = open_provider(encryption_threads=threads)
    subscriptions = [service.subscribe(credentials.public_key) for _ in range(150)]
    off_curve = WebPushKeys("BA" + "A" * 85, subscriptions[0].auth)
    batch = [delivery(s) for s in subscriptions]
    for index in (70, 149):
        batch[index] = dataclasses.replace(batch[index], web_push_keys=off_curve)

    results = await provider.send(batch)

    bad = (DeliveryOutcome.INVALID_TOKEN, "BadSubscriptionKeys")
    assert outcomes(results) == [bad if i in (70, 149) else SENT for i in range(150)]
    assert sorted(r.subscription_id for r in service.received) == sorted(
        s.id for i, s in enumerate(subscriptions) if i not in (70, 149)
    )
    assert {r.plaintext for r in service.received} == {PAYLOAD}


async def test_the_vapid_token_names_the_origin_and_expires_within_a_day(
    provider: WebPushProvider,
    service: FakeWebPush,
    credentials: WebPushCredentials,
    manual_clock: ManualClock,
) -> None:
    await provider.send([delivery(service.subscribe(credentials.public_key))])

    [received] = service.received
    claims = received.vapid_claims
    assert claims["aud"] == service.origin
    assert claims["sub"] == "mailto:ops@example.com"
    now = manual_clock.now().timestamp()
    assert now + timedelta(hours=6).total_seconds() <= claims["exp"] <= now + 86400


async def test_the_vapid_token_is_reused_then_renewed_after_six_hours(
    provider: WebPushProvider,
    service: FakeWebPush,
    credentials: WebPushCredentials,
    manual_clock: ManualClock,
) -> None:
    subscription = service.subscribe(credentials.public_key)
    await provider.send([delivery(subscription)])
    manual_clock.advance(timedelta(hours=5, minutes=59))
    await provider.send([delivery(subscription)])
    manual_clock.advance(timedelta(minutes=2))
    await provider.send([delivery(subscription)])

    tokens = [r.headers["authorization"] for r in service.received]
    assert tokens[0] == tokens[1]
    assert tokens[2] != tokens[1]
    assert outcomes(await provider.send([delivery(subscription)])) == [SENT]


async def test_ttl_urgency_and_topic_come_from_the_publish(
    provider: WebPushProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    subscription = service.subscribe(credentials.public_key)
    headers = webpush_headers(timedelta(minutes=10), "high", "scores:match-1234")

    assert outcomes(await provider.send([delivery(subscription, headers=headers)])) == [SENT]

    [received] = service.received
    assert received.headers["ttl"] == "600"
    assert received.headers["urgency"] == "high"
    assert received.headers["topic"] == headers["Topic"]
    assert len(received.headers["topic"]) == 32


async def test_without_a_ttl_the_message_waits_four_weeks(
    provider: WebPushProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    subscription = service.subscribe(credentials.public_key)

    await provider.send([delivery(subscription, headers={})])

    [received] = service.received
    assert received.headers["ttl"] == str(28 * 86400)
    assert "urgency" not in received.headers
    assert "topic" not in received.headers


async def test_a_batch_is_multiplexed_on_one_http2_connection(
    provider: WebPushProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    subscriptions = [service.subscribe(credentials.public_key) for _ in range(200)]

    results = await provider.send([delivery(s) for s in subscriptions])

    assert outcomes(results) == [SENT] * 200
    assert service.connections == {"h2": 1}


async def test_a_service_without_http2_is_reached_over_http1(
    tls: TlsFiles, manual_clock: ManualClock, credentials: WebPushCredentials
) -> None:
    service = FakeWebPush(manual_clock, tls, alpn=("http/1.1",))
    await service.start()
    policy = EndpointPolicy.from_env(f"localhost:{service.port}")
    provider = WebPushProvider(credentials, manual_clock, policy=policy, ca_file=str(tls.ca_file))
    try:
        subscriptions = [service.subscribe(credentials.public_key) for _ in range(3)]
        results = await provider.send([delivery(s) for s in subscriptions])
    finally:
        await provider.close()
        await service.stop()

    assert outcomes(results) == [SENT] * 3
    assert service.connections == {"http/1.1": 3}
    assert {r.plaintext for r in service.received} == {PAYLOAD}


# ------------------------------------------------------------------ results


async def test_gone_and_unknown_subscriptions_are_invalid_tokens(
    provider: WebPushProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    live, gone = (service.subscribe(credentials.public_key) for _ in range(2))
    service.expire(gone)
    unknown = delivery(live, endpoint=f"https://localhost:{service.port}/push/nobody")

    results = await provider.send([delivery(live), delivery(gone), unknown])

    assert outcomes(results) == [
        SENT,
        (DeliveryOutcome.INVALID_TOKEN, "Gone"),
        (DeliveryOutcome.INVALID_TOKEN, "NotFound"),
    ]


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "TooManyRequests"), (500, "HTTP500"), (503, "HTTP503")],
)
async def test_busy_services_are_retried_after_their_retry_after(
    provider: WebPushProvider,
    service: FakeWebPush,
    credentials: WebPushCredentials,
    status: int,
    reason: str,
) -> None:
    subscription = service.subscribe(credentials.public_key)
    service.fail_next(1, status, retry_after="7")

    [result] = await provider.send([delivery(subscription)])

    assert result == DeliveryResult(DeliveryOutcome.RETRY, reason, 7.0)


async def test_the_retry_policy_delivers_once_the_service_recovers(
    provider: WebPushProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    subscription = service.subscribe(credentials.public_key)
    service.fail_next(2, 503, retry_after="2")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    results = await RetryPolicy(sleep=sleep).send(provider, [delivery(subscription)])

    assert outcomes(results) == [SENT]
    assert waits[0] >= 2 and waits[1] >= 2
    assert [r.plaintext for r in service.received] == [PAYLOAD]


@pytest.mark.parametrize(
    ("status", "reason"), [(400, "BadRequest"), (403, "Forbidden"), (413, "PayloadRejected")]
)
async def test_refusals_are_rejected_under_their_reason(
    provider: WebPushProvider,
    service: FakeWebPush,
    credentials: WebPushCredentials,
    status: int,
    reason: str,
) -> None:
    subscription = service.subscribe(credentials.public_key)
    service.fail_next(1, status)

    [result] = await provider.send([delivery(subscription)])

    assert result == DeliveryResult(DeliveryOutcome.REJECTED, reason)


async def test_a_subscription_made_for_another_vapid_key_is_forbidden(
    provider: WebPushProvider, service: FakeWebPush
) -> None:
    other_app = web_push_credentials("", "https://other.example.com")
    subscription = service.subscribe(other_app.public_key)

    [result] = await provider.send([delivery(subscription)])

    assert result == DeliveryResult(DeliveryOutcome.REJECTED, "Forbidden")
    assert service.received == []


async def test_a_payload_over_one_record_is_refused_before_sending(
    provider: WebPushProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    subscription = service.subscribe(credentials.public_key)
    largest = b"x" * 3993

    results = await provider.send(
        [delivery(subscription, payload=largest), delivery(subscription, payload=largest + b"x")]
    )

    assert outcomes(results) == [SENT, (DeliveryOutcome.REJECTED, "PayloadTooLarge")]
    assert [len(r.plaintext) for r in service.received] == [3993]


async def test_unusable_keys_invalidate_only_their_registration(
    provider: WebPushProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    good, bad = (service.subscribe(credentials.public_key) for _ in range(2))
    off_curve = "BA" + "A" * 85  # 65 bytes starting 0x04, not a point on P-256
    broken = Delivery(
        "msg-1", "app-1", "reg-bad", Platform.WEB_PUSH, bad.endpoint, PAYLOAD, {},
        WebPushKeys(off_curve, bad.auth),
    )  # fmt: skip
    keyless = Delivery("msg-1", "app-1", "reg-none", Platform.WEB_PUSH, bad.endpoint, PAYLOAD, {})

    results = await provider.send([delivery(good), broken, keyless])

    assert outcomes(results) == [
        SENT,
        (DeliveryOutcome.INVALID_TOKEN, "BadSubscriptionKeys"),
        (DeliveryOutcome.INVALID_TOKEN, "BadSubscriptionKeys"),
    ]
    assert [r.subscription_id for r in service.received] == [good.id]


async def test_validate_only_checks_everything_but_posts_nothing(
    provider: WebPushProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    good, bad = (service.subscribe(credentials.public_key) for _ in range(2))
    off_curve = "BA" + "A" * 85
    broken = Delivery(
        "msg-1", "app-1", "reg-bad", Platform.WEB_PUSH, bad.endpoint, PAYLOAD, {},
        WebPushKeys(off_curve, bad.auth),
    )  # fmt: skip
    elsewhere = delivery(good, endpoint="https://push.example.org/not-a-push-service")

    results = await provider.send(
        [delivery(good), broken, delivery(good, payload=b"x" * 3994), elsewhere],
        validate_only=True,
    )

    assert outcomes(results) == [
        SENT,
        (DeliveryOutcome.INVALID_TOKEN, "BadSubscriptionKeys"),
        (DeliveryOutcome.REJECTED, "PayloadTooLarge"),
        (DeliveryOutcome.REJECTED, "EndpointNotAllowed"),
    ]
    assert service.requests == 0, "a dry run reaches no push service"


async def test_a_closed_port_is_a_transport_error_to_retry(
    open_provider: OpenProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    subscription = service.subscribe(credentials.public_key)
    await service.stop()

    [result] = await open_provider(timeout=5.0).send([delivery(subscription)])

    assert result.outcome is DeliveryOutcome.RETRY
    assert result.reason == "TransportError"


# ------------------------------------------------------------------ where it may connect


async def test_an_endpoint_off_the_allow_list_is_never_contacted(
    open_provider: OpenProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    subscription = service.subscribe(credentials.public_key)
    provider = open_provider(policy=EndpointPolicy())  # nothing listed

    [result] = await provider.send([delivery(subscription)])

    assert result == DeliveryResult(DeliveryOutcome.REJECTED, "EndpointNotAllowed")
    assert service.requests == 0


async def test_a_push_service_name_resolving_to_loopback_is_refused(
    open_provider: OpenProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    # A push service's host whose DNS answer points into the operator's network.
    provider = open_provider(policy=EndpointPolicy(), resolve=AddressGuard(to_loopback))
    subscription = service.subscribe(credentials.public_key)
    endpoint = f"https://updates.push.services.mozilla.com/wpush/v2/{subscription.id}"

    [result] = await provider.send([delivery(subscription, endpoint=endpoint)])

    assert result == DeliveryResult(DeliveryOutcome.REJECTED, "EndpointAddressRefused")
    assert service.requests == 0


async def test_a_listed_host_is_reached_at_the_address_the_guard_checked(
    open_provider: OpenProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    # relay.pushhub.test has no DNS record: the request reaches the fake only
    # because it is pinned to the address the guard returned.
    provider = open_provider(
        policy=EndpointPolicy.from_env(f"relay.pushhub.test:{service.port}"),
        resolve=AddressGuard(to_loopback),
    )
    subscription = service.subscribe(credentials.public_key, host="relay.pushhub.test")

    [result] = await provider.send([delivery(subscription)])

    assert result == DeliveryResult(DeliveryOutcome.SENT)
    [received] = service.received
    token = received.headers["authorization"].split("t=")[1].split(",")[0]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == (
        f"https://relay.pushhub.test:{service.port}"
    )


async def test_a_listed_ip_literal_is_reached_directly(
    open_provider: OpenProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    provider = open_provider(policy=EndpointPolicy.from_env(f"127.0.0.1:{service.port}"))
    subscription = service.subscribe(credentials.public_key, host="127.0.0.1")

    assert outcomes(await provider.send([delivery(subscription)])) == [SENT]


async def test_proxy_variables_cannot_take_a_pinned_request_elsewhere(
    provider: WebPushProvider,
    service: FakeWebPush,
    credentials: WebPushCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy would resolve the name itself; here it is a closed port besides.
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    subscription = service.subscribe(credentials.public_key)

    assert outcomes(await provider.send([delivery(subscription)])) == [SENT]


async def no_such_name(host: str, port: int) -> list[str]:
    """A resolver answering NXDOMAIN for every name."""
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def test_an_unresolvable_host_is_rejected_without_a_request(
    open_provider: OpenProvider, service: FakeWebPush, credentials: WebPushCredentials
) -> None:
    provider = open_provider(
        policy=EndpointPolicy.from_env("nowhere.invalid:443"), resolve=AddressGuard(no_such_name)
    )
    subscription = service.subscribe(credentials.public_key)
    endpoint = f"https://nowhere.invalid/push/{subscription.id}"

    [result] = await provider.send([delivery(subscription, endpoint=endpoint)])

    assert result == DeliveryResult(DeliveryOutcome.REJECTED, "EndpointUnresolved")
    assert service.requests == 0
