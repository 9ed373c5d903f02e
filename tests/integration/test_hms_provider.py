"""HmsProvider against the fake Push Kit (tests/fakes/hms.py) over real HTTP/2 (or 1.1) and TLS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from pushhub_server.core.clock import ManualClock
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.delivery.payloads.hms import HmsPayloads
from pushhub_server.delivery.providers.hms import HmsProvider
from pushhub_server.delivery.providers.oauth_tokens import REFRESH_MARGIN
from pushhub_server.delivery.retry_policy import RetryPolicy
from tests.fakes.hms import FakeHms
from tests.fakes.tls import TlsFiles, issue_tls_files

LIFETIME = 3600
CONTENT = NotificationContent(title="Hello", body="World", data={"order": "42"})
PAYLOAD = HmsPayloads(CONTENT).render()
PLATFORM = Platform.HMS
SENT = (DeliveryOutcome.SENT, None)

OpenProvider = Callable[..., HmsProvider]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return issue_tls_files(tmp_path_factory.mktemp("hms-tls"))


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock(datetime(2030, 1, 1, tzinfo=UTC))


@pytest_asyncio.fixture
async def hms(tls: TlsFiles, manual_clock: ManualClock) -> AsyncIterator[FakeHms]:
    fake = FakeHms(manual_clock, tls, access_token_lifetime=LIFETIME)
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def open_provider(
    hms: FakeHms, tls: TlsFiles, manual_clock: ManualClock
) -> AsyncIterator[OpenProvider]:
    """Builds providers on the fake (keyword overrides allowed) and closes them after."""
    opened: list[HmsProvider] = []

    def build(client: tuple[str, str] | None = None, **overrides: Any) -> HmsProvider:
        client_id, secret = client or hms.oauth_client()
        options: dict[str, Any] = {
            "endpoint": hms.base_url,
            "token_endpoint": hms.token_endpoint,
            "ca_file": str(tls.ca_file),
            "clock": manual_clock,
        }
        provider = HmsProvider(client_id, secret, **(options | overrides))
        opened.append(provider)
        return provider

    yield build
    for provider in opened:
        await provider.close()


@pytest.fixture
def provider(open_provider: OpenProvider) -> HmsProvider:
    return open_provider()


def delivery(token: str, payload: bytes = PAYLOAD) -> Delivery:
    return Delivery("msg-1", "app-1", f"reg-{token}", PLATFORM, token, payload)


def outcomes(results: list[DeliveryResult]) -> list[tuple[DeliveryOutcome, str | None]]:
    return [(result.outcome, result.reason) for result in results]


def tokens_per_request(hms: FakeHms) -> list[list[str]]:
    return [request["message"]["token"] for request in hms.requests]


# ------------------------------------------------------------------ sending


async def test_a_send_is_one_message_to_the_listed_tokens(
    provider: HmsProvider, hms: FakeHms
) -> None:
    results = await provider.send([delivery("device-a"), delivery("device-b")])

    assert outcomes(results) == [SENT, SENT]
    assert hms.requests == [
        {
            "validate_only": False,
            "message": {**json.loads(PAYLOAD), "token": ["device-a", "device-b"]},
        }
    ]


async def test_every_rendered_field_passes_push_kits_message_checks(
    provider: HmsProvider, hms: FakeHms
) -> None:
    content = NotificationContent(
        message="plain",
        title="T",
        body="B",
        badge=3,
        sound="ding",
        image_url="https://example.com/i.png",
        category="com.example.OPEN",
        content_available=True,
        data={"k": "v"},
        headers={"h": "1"},
        publisher_id="backend",
        ttl=timedelta(days=20),
        priority="high",
        collapse_key="3",
    )
    data_only = NotificationContent(data={"sync": "1"}, priority="normal", collapse_key="news")
    plain = NotificationContent(message="no title")

    results = await provider.send(
        [delivery("a", HmsPayloads(c).render()) for c in (content, data_only, plain)]
    )

    assert outcomes(results) == [SENT, SENT, SENT]
    assert hms.requests[0]["message"]["android"]["ttl"] == "1296000s"


async def test_a_message_push_kit_refuses_is_rejected_under_its_code(
    provider: HmsProvider, hms: FakeHms
) -> None:
    not_a_string = json.dumps({"data": {"k": "v"}}).encode()
    too_big = json.dumps({"data": "x" * 5000}).encode()

    results = await provider.send([delivery("a", not_a_string), delivery("b", too_big)])

    assert outcomes(results) == [
        (DeliveryOutcome.REJECTED, "HMS_80100003"),
        (DeliveryOutcome.REJECTED, "HMS_80300008"),
    ]
    assert hms.requests == []


async def test_an_empty_token_is_rejected_alone(provider: HmsProvider, hms: FakeHms) -> None:
    results = await provider.send([delivery("device-a"), delivery(""), delivery("device-b")])

    assert outcomes(results) == [SENT, (DeliveryOutcome.REJECTED, "EMPTY_DEVICE_TOKEN"), SENT]
    assert tokens_per_request(hms) == [["device-a", "device-b"]]


async def test_a_payload_that_is_no_message_object_is_rejected_alone(
    provider: HmsProvider, hms: FakeHms
) -> None:
    results = await provider.send([delivery("device-a", b'["not", "a", "message"]'), delivery("b")])

    assert outcomes(results) == [(DeliveryOutcome.REJECTED, "PAYLOAD_NOT_AN_OBJECT"), SENT]
    assert tokens_per_request(hms) == [["b"]]


async def test_push_kit_over_http_1_1(
    tls: TlsFiles, manual_clock: ManualClock, open_provider: OpenProvider
) -> None:
    http1 = FakeHms(manual_clock, tls, alpn=("http/1.1",))
    await http1.start()
    try:
        provider = open_provider(
            http1.oauth_client(), endpoint=http1.base_url, token_endpoint=http1.token_endpoint
        )

        results = await provider.send([delivery("device-a"), delivery("device-b")])

        assert outcomes(results) == [SENT, SENT]
        assert tokens_per_request(http1) == [["device-a", "device-b"]]
        assert set(http1.connections) == {"http/1.1"}
    finally:
        await http1.stop()


# ------------------------------------------------------------------ multicast


async def test_1500_identical_deliveries_are_two_requests(
    provider: HmsProvider, hms: FakeHms
) -> None:
    tokens = [f"device-{n:04d}" for n in range(1500)]

    results = await asyncio.wait_for(provider.send([delivery(t) for t in tokens]), 60)

    assert outcomes(results) == [SENT] * 1500
    assert [len(request) for request in tokens_per_request(hms)] == [1000, 500]
    assert hms.delivered() == tokens
    assert hms.send_requests == 2


async def test_per_recipient_bodies_go_in_requests_of_their_own(
    provider: HmsProvider, hms: FakeHms
) -> None:
    payloads = HmsPayloads(NotificationContent(title="Hi", message="Hello {{name}}"))
    names = {"a1": "Ann", "b1": "Bob", "a2": "Ann", "c1": "Cy"}

    results = await provider.send(
        [delivery(token, payloads.render({"name": name})) for token, name in names.items()]
    )

    assert outcomes(results) == [SENT] * 4
    bodies = {
        request["message"]["android"]["notification"]["body"]: request["message"]["token"]
        for request in hms.requests
    }
    assert bodies == {"Hello Ann": ["a1", "a2"], "Hello Bob": ["b1"], "Hello Cy": ["c1"]}


async def test_a_token_twice_under_one_payload_is_sent_once(
    provider: HmsProvider, hms: FakeHms
) -> None:
    hms.invalid.add("gone")

    results = await provider.send(
        [delivery("device-a"), delivery("gone"), delivery("device-a"), delivery("gone")]
    )

    illegal = (DeliveryOutcome.INVALID_TOKEN, "HMS_80100000")
    assert outcomes(results) == [SENT, illegal, SENT, illegal]
    assert tokens_per_request(hms) == [["device-a", "gone"]]


# ------------------------------------------------------------------ results


async def test_a_partial_success_invalidates_only_the_illegal_tokens(
    provider: HmsProvider, hms: FakeHms
) -> None:
    hms.invalid.update({"gone-1", "gone-2"})
    tokens = ["ok-1", "gone-1", "ok-2", "gone-2"]

    results = await provider.send([delivery(token) for token in tokens])

    illegal = (DeliveryOutcome.INVALID_TOKEN, "HMS_80100000")
    assert outcomes(results) == [SENT, illegal, SENT, illegal]
    assert hms.delivered() == ["ok-1", "ok-2"]


async def test_results_follow_delivery_order_across_multicasts(
    provider: HmsProvider, hms: FakeHms
) -> None:
    other = HmsPayloads(NotificationContent(title="Other")).render()
    hms.invalid.add("gone")

    results = await provider.send(
        [delivery("a"), delivery("gone", other), delivery("b"), delivery("c", other)]
    )

    assert outcomes(results) == [
        SENT,
        (DeliveryOutcome.INVALID_TOKEN, "HMS_80100000"),
        SENT,
        SENT,
    ]


async def test_when_every_token_is_invalid_every_delivery_is(
    provider: HmsProvider, hms: FakeHms
) -> None:
    hms.invalid.update({"gone-1", "gone-2"})

    results = await provider.send([delivery("gone-1"), delivery("gone-2")])

    assert outcomes(results) == [(DeliveryOutcome.INVALID_TOKEN, "HMS_80300007")] * 2


@pytest.mark.parametrize(
    ("status", "reason"), [(429, "HTTP_429"), (503, "HTTP_503"), (500, "HMS_81000001")]
)
async def test_transient_errors_are_retried_after_what_push_kit_asked(
    provider: HmsProvider, hms: FakeHms, status: int, reason: str
) -> None:
    hms.fail_next(1, status=status, retry_after="7")

    first = await provider.send([delivery("device-a"), delivery("device-b")])
    second = await provider.send([delivery("device-a")])

    assert first == [DeliveryResult(DeliveryOutcome.RETRY, reason, 7.0)] * 2
    assert outcomes(second) == [SENT]


async def test_a_transient_error_without_retry_after(provider: HmsProvider, hms: FakeHms) -> None:
    hms.fail_next(1, status=503, retry_after=None)

    results = await provider.send([delivery("device-a")])

    assert results == [DeliveryResult(DeliveryOutcome.RETRY, "HTTP_503", None)]


async def test_the_retry_policy_waits_out_retry_after_then_delivers(
    provider: HmsProvider, hms: FakeHms
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    hms.fail_next(1, status=429, retry_after="3")
    policy = RetryPolicy(sleep=sleep, jitter=lambda: 0.0)

    results = await policy.send(provider, [delivery("device-a"), delivery("device-b")])

    assert outcomes(results) == [SENT, SENT]
    assert waits == [3.0]
    assert hms.delivered() == ["device-a", "device-b"]


async def test_an_unreachable_push_kit_is_a_transport_retry(open_provider: OpenProvider) -> None:
    provider = open_provider(endpoint="https://127.0.0.1:1")

    results = await provider.send([delivery("device-a"), delivery("device-b")])

    assert outcomes(results) == [(DeliveryOutcome.RETRY, "TRANSPORT_ERROR")] * 2


# ------------------------------------------------------------------ OAuth 2.0


async def test_the_token_comes_from_the_client_credentials_and_is_cached(
    provider: HmsProvider, hms: FakeHms, manual_clock: ManualClock
) -> None:
    await provider.send([delivery("device-a")])
    manual_clock.advance(timedelta(seconds=LIFETIME) - REFRESH_MARGIN - timedelta(seconds=1))
    await provider.send([delivery("device-b")])
    assert hms.token_requests == 1

    manual_clock.advance(timedelta(seconds=2))  # now inside the refresh margin
    results = await provider.send([delivery("device-c")])

    assert outcomes(results) == [SENT]
    assert hms.token_requests == 2


async def test_concurrent_sends_share_one_token_exchange(
    provider: HmsProvider, hms: FakeHms
) -> None:
    results = await asyncio.gather(*(provider.send([delivery(f"d-{n}")]) for n in range(10)))

    assert [outcomes(r) for r in results] == [[SENT]] * 10
    assert hms.token_requests == 1


async def test_an_expired_token_is_refreshed_and_the_send_retried_once(
    provider: HmsProvider, hms: FakeHms
) -> None:
    await provider.send([delivery("device-a")])
    hms.expire_tokens()  # Push Kit ends it before the provider's cache would

    results = await provider.send([delivery("device-b"), delivery("device-c")])

    assert outcomes(results) == [SENT, SENT]
    assert hms.token_requests == 2
    assert hms.send_requests == 3  # device-a; the refused one; its resend
    assert hms.delivered() == ["device-a", "device-b", "device-c"]


async def test_a_second_expiry_is_rejected_not_looped(
    open_provider: OpenProvider, hms: FakeHms
) -> None:
    hms.access_token_lifetime = 0  # every token the fake issues is dead on arrival
    provider = open_provider()

    results = await provider.send([delivery("device-a")])

    assert outcomes(results) == [(DeliveryOutcome.REJECTED, "HMS_80200003")]
    assert hms.send_requests == 2
    assert hms.token_requests == 2


async def test_a_wrong_secret_rejects_the_batch_and_is_not_retried_at_once(
    open_provider: OpenProvider, hms: FakeHms, manual_clock: ManualClock
) -> None:
    client_id, _ = hms.oauth_client()
    provider = open_provider((client_id, "not-the-secret"))

    results = await provider.send([delivery("device-a"), delivery("device-b")])
    await provider.send([delivery("device-c")])

    rejected = (DeliveryOutcome.REJECTED, "OAUTH2_1101_12304")
    assert outcomes(results) == [rejected, rejected]
    assert hms.token_requests == 1  # the failure is held briefly, not retried per call
    assert hms.send_requests == 0
    manual_clock.advance(timedelta(seconds=6))
    await provider.send([delivery("device-c")])
    assert hms.token_requests == 2


async def test_a_revoked_token_is_refreshed_and_the_send_retried_once(
    provider: HmsProvider, hms: FakeHms
) -> None:
    await provider.send([delivery("device-a")])
    hms.revoke_tokens()  # Push Kit no longer knows it: 80200001, not 80200003

    results = await provider.send([delivery("device-b")])

    assert outcomes(results) == [SENT]
    assert hms.token_requests == 2
    assert hms.delivered() == ["device-a", "device-b"]


async def test_an_unreachable_token_endpoint_is_a_retry(open_provider: OpenProvider) -> None:
    provider = open_provider(token_endpoint="https://127.0.0.1:1/oauth2/v3/token")

    results = await provider.send([delivery("device-a")])

    assert outcomes(results) == [(DeliveryOutcome.RETRY, "OAUTH2_TOKEN_ENDPOINT_UNREACHABLE")]


# ------------------------------------------------------------------ validate_only


async def test_validate_only_checks_without_delivering(provider: HmsProvider, hms: FakeHms) -> None:
    hms.invalid.add("gone")

    results = await provider.send([delivery("device-a"), delivery("gone")], validate_only=True)
    alone = await provider.send([delivery("gone")], validate_only=True)

    assert outcomes(results) == [SENT, (DeliveryOutcome.INVALID_TOKEN, "HMS_80100000")]
    assert outcomes(alone) == [(DeliveryOutcome.INVALID_TOKEN, "HMS_80300007")]
    assert hms.requests == []
    assert hms.validated == [
        {
            "validate_only": True,
            "message": {**json.loads(PAYLOAD), "token": ["device-a", "gone"]},
        }
    ]
