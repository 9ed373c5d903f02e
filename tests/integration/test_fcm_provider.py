"""FcmProvider against the fake FCM (tests/fakes/fcm.py) over real HTTP/2 and TLS."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import pytest_asyncio

from pushhub_server.core.clock import ManualClock
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.delivery.payloads.renderer import render_fcm
from pushhub_server.delivery.providers.fcm import FcmProvider
from pushhub_server.delivery.providers.google_auth import ServiceAccount, ServiceAccountTokens
from pushhub_server.delivery.providers.oauth_tokens import REFRESH_MARGIN
from pushhub_server.delivery.retry_policy import RetryPolicy
from tests.fakes.fcm import FakeFcm
from tests.fakes.tls import TlsFiles, issue_tls_files

LIFETIME = 3599
CONTENT = NotificationContent(title="Hello", body="World", data={"order": "42"})

OpenProvider = Callable[..., FcmProvider]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return issue_tls_files(tmp_path_factory.mktemp("fcm-tls"))


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock(datetime(2030, 1, 1, tzinfo=UTC))


@pytest_asyncio.fixture
async def fcm(tls: TlsFiles, manual_clock: ManualClock) -> AsyncIterator[FakeFcm]:
    fake = FakeFcm(manual_clock, tls, access_token_lifetime=LIFETIME)
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def open_provider(
    fcm: FakeFcm, tls: TlsFiles, manual_clock: ManualClock
) -> AsyncIterator[OpenProvider]:
    """Builds providers on the fake (keyword overrides allowed) and closes them after."""
    opened: list[FcmProvider] = []

    def build(account: dict[str, str] | None = None, **overrides: Any) -> FcmProvider:
        options: dict[str, Any] = {
            "endpoint": fcm.base_url,
            "ca_file": str(tls.ca_file),
            "clock": manual_clock,
        }
        provider = FcmProvider(account or fcm.service_account(), **(options | overrides))
        opened.append(provider)
        return provider

    yield build
    for provider in opened:
        await provider.close()


@pytest.fixture
def provider(open_provider: OpenProvider) -> FcmProvider:
    return open_provider()


def delivery(token: str, content: NotificationContent = CONTENT) -> Delivery:
    return Delivery(
        "msg-1", "app-1", f"reg-{token}", Platform.FCM, token, render_fcm(content, token)
    )


def outcomes(results: list[DeliveryResult]) -> list[tuple[DeliveryOutcome, str | None]]:
    return [(result.outcome, result.reason) for result in results]


SENT = (DeliveryOutcome.SENT, None)


# ------------------------------------------------------------------ OAuth2 token


async def test_a_send_carries_the_rendered_message_to_fcm(
    provider: FcmProvider, fcm: FakeFcm
) -> None:
    results = await provider.send([delivery("device-a")])

    assert outcomes(results) == [SENT]
    assert fcm.messages == [json.loads(render_fcm(CONTENT, "device-a"))]
    assert fcm.token_requests == 1


async def test_the_assertion_is_an_rs256_jwt_for_the_fcm_scope(
    open_provider: OpenProvider, fcm: FakeFcm, manual_clock: ManualClock
) -> None:
    account = fcm.service_account()
    await open_provider(account).send([delivery("device-a")])

    issued_at = int(manual_clock.now().timestamp())
    assert fcm.assertions == [
        {
            "header": {"alg": "RS256", "typ": "JWT", "kid": account["private_key_id"]},
            "iss": account["client_email"],
            "scope": "https://www.googleapis.com/auth/firebase.messaging",
            "aud": account["token_uri"],
            "iat": issued_at,
            "exp": issued_at + 3600,
        }
    ]


async def test_the_token_is_cached_until_shortly_before_it_expires(
    provider: FcmProvider, fcm: FakeFcm, manual_clock: ManualClock
) -> None:
    await provider.send([delivery("device-a")])
    manual_clock.advance(timedelta(seconds=LIFETIME) - REFRESH_MARGIN - timedelta(seconds=1))
    await provider.send([delivery("device-b")])
    assert fcm.token_requests == 1

    manual_clock.advance(timedelta(seconds=2))  # now inside the refresh margin
    results = await provider.send([delivery("device-c")])

    assert outcomes(results) == [SENT]
    assert fcm.token_requests == 2


async def test_concurrent_callers_share_one_token_exchange(
    fcm: FakeFcm, tls: TlsFiles, manual_clock: ManualClock
) -> None:
    account = ServiceAccount.from_info(fcm.service_account())
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    tokens = ServiceAccountTokens(account, manual_clock, context)

    values = await asyncio.gather(*(tokens.token() for _ in range(20)))

    assert len(set(values)) == 1
    assert fcm.token_requests == 1


async def test_refused_credentials_reject_the_batch_and_are_not_retried_at_once(
    open_provider: OpenProvider, fcm: FakeFcm, manual_clock: ManualClock
) -> None:
    account = fcm.service_account()
    # The key no longer matches the public half Google holds for this key id.
    account["private_key"] = fcm.service_account()["private_key"]
    provider = open_provider(account)

    results = await provider.send([delivery("device-a"), delivery("device-b")])
    await provider.send([delivery("device-c")])

    rejected = (DeliveryOutcome.REJECTED, "OAUTH2_INVALID_GRANT")
    assert outcomes(results) == [rejected, rejected]
    assert fcm.token_requests == 1  # the failure is held briefly, not retried per call
    assert fcm.send_requests == 0
    manual_clock.advance(timedelta(seconds=6))
    await provider.send([delivery("device-c")])
    assert fcm.token_requests == 2


# ------------------------------------------------------------------ classification


async def test_each_token_error_is_classified_in_order(provider: FcmProvider, fcm: FakeFcm) -> None:
    fcm.unregistered.add("gone")
    fcm.invalid.add("garbled")
    fcm.mismatched.add("other-app")
    tokens = ["ok-1", "gone", "garbled", "other-app", "ok-2"]

    results = await provider.send([delivery(token) for token in tokens])

    assert outcomes(results) == [
        SENT,
        (DeliveryOutcome.INVALID_TOKEN, "UNREGISTERED"),
        (DeliveryOutcome.INVALID_TOKEN, "INVALID_ARGUMENT"),
        (DeliveryOutcome.INVALID_TOKEN, "SENDER_ID_MISMATCH"),
        SENT,
    ]
    assert [body["message"]["token"] for body in fcm.messages] == ["ok-1", "ok-2"]


async def test_a_malformed_message_is_rejected_under_fcms_error_code(
    provider: FcmProvider, fcm: FakeFcm
) -> None:
    bad = {"message": {"token": "device-a", "data": {"count": 3}}}
    broken = Delivery("m", "a", "r", Platform.FCM, "device-a", json.dumps(bad).encode())

    results = await provider.send([broken])

    assert outcomes(results) == [(DeliveryOutcome.REJECTED, "INVALID_ARGUMENT")]
    assert fcm.messages == []


async def test_every_rendered_field_passes_fcms_message_checks(
    provider: FcmProvider, fcm: FakeFcm
) -> None:
    content = NotificationContent(
        message="plain",
        title="T",
        body="B",
        subtitle="S",
        badge=3,
        sound="ding",
        image_url="https://example.com/i.png",
        category="reply",
        content_available=True,
        data={"k": "v"},
        headers={"h": "1"},
        publisher_id="backend",
        ttl=timedelta(minutes=90),
        priority="high",
        collapse_key="news",
    )

    results = await provider.send([delivery("device-a", content)])

    assert outcomes(results) == [SENT]
    assert fcm.messages[0]["message"]["android"]["ttl"] == "5400s"


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "QUOTA_EXCEEDED"), (503, "UNAVAILABLE"), (500, "INTERNAL")],
)
async def test_transient_errors_are_retried_after_what_fcm_asked(
    provider: FcmProvider, fcm: FakeFcm, status: int, reason: str
) -> None:
    fcm.fail_next(1, status=status, retry_after="7")

    first = await provider.send([delivery("device-a")])
    second = await provider.send([delivery("device-a")])

    assert first == [DeliveryResult(DeliveryOutcome.RETRY, reason, 7.0)]
    assert outcomes(second) == [SENT]


async def test_retry_after_as_an_http_date_and_absent(provider: FcmProvider, fcm: FakeFcm) -> None:
    # libcurl parses Retry-After (http2.py), against the system clock: a real peer's
    # HTTP date is wall-clock time, whatever clock the provider was given.
    until = datetime.fromtimestamp(int(time.time()) + 30, UTC)
    fcm.fail_next(1, status=503, retry_after=format_datetime(until, usegmt=True))
    fcm.fail_next(1, status=500, retry_after=None)

    [dated] = await provider.send([delivery("device-a")])
    bare = await provider.send([delivery("device-a")])

    assert (dated.outcome, dated.reason) == (DeliveryOutcome.RETRY, "UNAVAILABLE")
    assert dated.retry_after is not None and 28.0 <= dated.retry_after <= 30.0
    # The handle that carried the dated answer does not keep its Retry-After.
    assert bare == [DeliveryResult(DeliveryOutcome.RETRY, "INTERNAL", None)]


async def test_the_retry_policy_waits_out_retry_after_then_delivers(
    provider: FcmProvider, fcm: FakeFcm
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    fcm.fail_next(2, status=429, retry_after="3")
    policy = RetryPolicy(sleep=sleep, jitter=lambda: 0.0)

    results = await policy.send(provider, [delivery("device-a"), delivery("device-b")])

    assert outcomes(results) == [SENT, SENT]
    assert waits == [3.0]
    assert len(fcm.messages) == 2


async def test_an_unreachable_fcm_is_a_transport_retry(open_provider: OpenProvider) -> None:
    provider = open_provider(endpoint="https://127.0.0.1:1")

    results = await provider.send([delivery("device-a")])

    assert outcomes(results) == [(DeliveryOutcome.RETRY, "TRANSPORT_ERROR")]


# ------------------------------------------------------------------ 401


async def test_a_revoked_token_is_refreshed_once_for_all_refused_sends(
    provider: FcmProvider, fcm: FakeFcm
) -> None:
    await provider.send([delivery("device-a")])
    fcm.revoke_access_tokens()

    results = await provider.send([delivery(f"device-{n}") for n in range(5)])

    assert outcomes(results) == [SENT] * 5
    assert fcm.token_requests == 2
    assert len(fcm.messages) == 6


async def test_a_second_401_is_rejected_not_looped(
    open_provider: OpenProvider, fcm: FakeFcm
) -> None:
    fcm.access_token_lifetime = 0  # every token the fake issues is dead on arrival
    provider = open_provider()

    results = await provider.send([delivery("device-a")])

    assert outcomes(results) == [(DeliveryOutcome.REJECTED, "UNAUTHENTICATED")]
    assert fcm.send_requests == 2


# ------------------------------------------------------------------ validate_only


async def test_validate_only_checks_without_delivering(provider: FcmProvider, fcm: FakeFcm) -> None:
    fcm.unregistered.add("gone")

    valid, gone = await provider.send([delivery("device-a"), delivery("gone")], validate_only=True)

    assert outcomes([valid, gone]) == [SENT, (DeliveryOutcome.INVALID_TOKEN, "UNREGISTERED")]
    assert fcm.messages == []
    assert fcm.validated == [{"validate_only": True, **json.loads(render_fcm(CONTENT, "device-a"))}]


# ------------------------------------------------------------------ configuration and volume


async def test_a_batch_of_5000_is_delivered_over_multiplexed_http2(
    provider: FcmProvider, fcm: FakeFcm
) -> None:
    tokens = [f"device-{n:05d}" for n in range(5000)]

    results = await asyncio.wait_for(provider.send([delivery(t) for t in tokens]), 60)

    assert outcomes(results) == [SENT] * 5000
    assert sorted(body["message"]["token"] for body in fcm.messages) == tokens
    assert fcm.token_requests == 1
    assert fcm.connections["h2"] == 1  # every stream on one connection
