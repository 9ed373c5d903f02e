"""ApnsProvider against the fake APNs: real HTTP/2, TLS verified with a test CA, real JWTs."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import jwt
import pytest
import pytest_asyncio

from pushhub_server.core.clock import ManualClock
from pushhub_server.core.credentials import ApnsCredentials, ApnsEnvironment
from pushhub_server.core.errors import PushHubError
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.delivery.payloads import PayloadRenderer, dry_run_payload
from pushhub_server.delivery.providers.apns import (
    PRODUCTION_URL,
    SANDBOX_URL,
    ApnsProvider,
    base_url_for,
)
from pushhub_server.delivery.providers.http2 import Http2Client, Http2Request
from tests.fakes.apns import FakeApns, new_signing_key
from tests.fakes.tls import TlsFiles, issue_tls_files

KEY_ID = "KEY1234567"
TEAM_ID = "TEAM123456"
TOPIC = "com.example.app"
START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

SENT = DeliveryResult(DeliveryOutcome.SENT)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return issue_tls_files(tmp_path_factory.mktemp("apns-tls"))


@pytest.fixture(scope="module")
def signing_key() -> tuple[str, str]:
    return new_signing_key()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def apple_clock() -> ManualClock:
    """Apple's clock, separate from ours, so tests can make them disagree."""
    return ManualClock(START)


@pytest_asyncio.fixture
async def fake(
    tls: TlsFiles, signing_key: tuple[str, str], apple_clock: ManualClock
) -> AsyncIterator[FakeApns]:
    server = FakeApns(
        tls,
        apple_clock,
        topic=TOPIC,
        team_id=TEAM_ID,
        key_id=KEY_ID,
        public_key_pem=signing_key[1],
    )
    await server.start()
    yield server
    await server.stop()


def credentials(private_key_pem: str, topic: str = TOPIC) -> ApnsCredentials:
    return ApnsCredentials(KEY_ID, TEAM_ID, topic, private_key_pem, ApnsEnvironment.SANDBOX)


@pytest_asyncio.fixture
async def provider(
    fake: FakeApns, tls: TlsFiles, signing_key: tuple[str, str], clock: ManualClock
) -> AsyncIterator[ApnsProvider]:
    apns = ApnsProvider(
        credentials(signing_key[0]), clock, base_url=fake.url, ca_file=str(tls.ca_file)
    )
    yield apns
    await apns.close()


def token(n: int) -> str:
    return f"{n:064x}"


_RENDERER = PayloadRenderer(
    NotificationContent(title="Hello", body="World", collapse_key="news", ttl=timedelta(hours=1)),
    now=START,
)


def delivery(n: int, payload: bytes | None = None) -> Delivery:
    rendered = _RENDERER.apns()
    return Delivery(
        "msg-1",
        "app-1",
        f"reg-{n}",
        Platform.APNS,
        token(n),
        rendered.body if payload is None else payload,
        dict(rendered.headers),
    )


async def test_sends_each_delivery_with_apple_headers(
    provider: ApnsProvider, fake: FakeApns
) -> None:
    deliveries = [delivery(n) for n in range(3)]

    assert await provider.send(deliveries) == [SENT] * 3

    received = {request.token: request for request in fake.delivered}
    assert set(received) == {token(n) for n in range(3)}
    for sent in deliveries:
        request = received[sent.device_token]
        assert request.payload == sent.payload
        assert request.headers["apns-topic"] == TOPIC
        for name in ("apns-push-type", "apns-priority", "apns-expiration"):
            assert request.headers[name] == sent.headers[name]
        assert request.headers["apns-collapse-id"] == "news"
        assert request.headers["authorization"].startswith("bearer ")
        # Optional: Apple assigns one (delivery/payloads/apns.py says why none is sent).
        assert "apns-id" not in request.headers


async def test_deliveries_sharing_one_headers_mapping_keep_their_own_token_and_body(
    provider: ApnsProvider, fake: FakeApns
) -> None:
    # A broadcast's deliveries share one headers dict, so their requests share one
    # header list; each request still has its own path and payload.
    shared = {"apns-push-type": "alert", "apns-priority": "5", "apns-expiration": "0"}
    deliveries = [
        Delivery("msg-1", "app-1", f"reg-{n}", Platform.APNS, token(n), b'{"n":%d}' % n, shared)
        for n in range(50)
    ]

    assert await provider.send(deliveries) == [SENT] * 50
    assert await provider.send(deliveries[:10]) == [SENT] * 10

    received = [(request.token, request.payload) for request in fake.delivered]
    expected = [(d.device_token, d.payload) for d in deliveries + deliveries[:10]]
    assert sorted(received) == sorted(expected)
    assert {request.headers["apns-priority"] for request in fake.delivered} == {"5"}


async def test_an_apns_id_the_caller_supplies_is_sent(
    provider: ApnsProvider, fake: FakeApns
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    deliveries = [delivery(n) for n in range(3)]
    for sent, apns_id in zip(deliveries, ids, strict=True):
        sent.headers["apns-id"] = apns_id

    assert await provider.send(deliveries) == [SENT] * 3

    received = {request.token: request.headers["apns-id"] for request in fake.delivered}
    assert received == {d.device_token: apns_id for d, apns_id in zip(deliveries, ids, strict=True)}


async def test_one_connection_carries_many_concurrent_streams(
    provider: ApnsProvider, fake: FakeApns
) -> None:
    results = await provider.send([delivery(n) for n in range(500)])

    assert results == [SENT] * 500
    assert fake.connections == 1
    assert fake.peak_streams > 1


async def test_connections_share_a_send_and_keep_its_order(
    fake: FakeApns, tls: TlsFiles, signing_key: tuple[str, str], clock: ManualClock
) -> None:
    apns = ApnsProvider(
        credentials(signing_key[0]),
        clock,
        base_url=fake.url,
        ca_file=str(tls.ca_file),
        connections=3,
    )
    fake.unregistered.update(token(n) for n in range(0, 500, 7))
    try:
        results = await apns.send([delivery(n) for n in range(500)])
        one = await apns.send([delivery(0)])
    finally:
        await apns.close()

    gone = DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "Unregistered")
    assert results == [gone if n % 7 == 0 else SENT for n in range(500)]
    assert one == [gone]
    assert fake.connections == 3


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ("unregistered", DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "Unregistered")),
        ("bad_tokens", DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "BadDeviceToken")),
        (
            "other_topic_tokens",
            DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "DeviceTokenNotForTopic"),
        ),
    ],
)
async def test_dead_tokens_are_invalid(
    provider: ApnsProvider, fake: FakeApns, registry: str, expected: DeliveryResult
) -> None:
    getattr(fake, registry).add(token(1))

    assert await provider.send([delivery(0), delivery(1)]) == [SENT, expected]


async def test_unregistered_answer_carries_apple_timestamp(
    fake: FakeApns, tls: TlsFiles, signing_key: tuple[str, str], apple_clock: ManualClock
) -> None:
    fake.unregistered.add(token(7))
    authorization = f"authorization: bearer {_raw_jwt(signing_key[0], apple_clock)}"
    client = Http2Client(ca_file=str(tls.ca_file))
    try:
        [response] = await client.post_many(
            [_raw_request(fake, token(7), b'{"aps":{}}', [authorization])]
        )
    finally:
        await client.close()

    assert response.status == 410
    body = json.loads(response.body)
    assert body == {"reason": "Unregistered", "timestamp": int(START.timestamp() * 1000)}


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("apns-push-type", "shout", "InvalidPushType"),
        ("apns-priority", "7", "BadPriority"),
        ("apns-expiration", "tomorrow", "BadExpirationDate"),
        ("apns-id", "not-a-uuid", "BadMessageId"),
    ],
)
async def test_other_refusals_are_rejected_with_apples_reason(
    provider: ApnsProvider, header: str, value: str, reason: str
) -> None:
    bad = delivery(0)
    bad.headers[header] = value

    assert await provider.send([bad]) == [DeliveryResult(DeliveryOutcome.REJECTED, reason)]


async def test_topic_not_allowed_for_the_key_is_rejected(
    fake: FakeApns, tls: TlsFiles, signing_key: tuple[str, str], clock: ManualClock
) -> None:
    apns = ApnsProvider(
        credentials(signing_key[0], topic="com.example.other"),
        clock,
        base_url=fake.url,
        ca_file=str(tls.ca_file),
    )
    try:
        [result] = await apns.send([delivery(0)])
    finally:
        await apns.close()

    assert result == DeliveryResult(DeliveryOutcome.REJECTED, "TopicDisallowed")


async def test_token_signed_by_another_key_is_rejected(
    fake: FakeApns, tls: TlsFiles, clock: ManualClock
) -> None:
    other_key, _ = new_signing_key()
    apns = ApnsProvider(credentials(other_key), clock, base_url=fake.url, ca_file=str(tls.ca_file))
    try:
        [result] = await apns.send([delivery(0)])
    finally:
        await apns.close()

    assert result == DeliveryResult(DeliveryOutcome.REJECTED, "InvalidProviderToken")
    assert fake.delivered == []


@pytest.mark.parametrize(
    ("status", "retry_after", "reason", "expected_after"),
    [
        (429, "7", "TooManyRequests", 7.0),
        (503, "120", "ServiceUnavailable", 120.0),
        (500, None, "InternalServerError", None),
    ],
)
async def test_throttling_and_server_errors_are_retried_with_retry_after(
    provider: ApnsProvider,
    fake: FakeApns,
    status: int,
    retry_after: str | None,
    reason: str,
    expected_after: float | None,
) -> None:
    fake.fail_next(2, status, retry_after)

    results = await provider.send([delivery(0), delivery(1)])

    expected = DeliveryResult(DeliveryOutcome.RETRY, reason, expected_after)
    assert results == [expected, expected]
    assert await provider.send([delivery(0), delivery(1)]) == [SENT, SENT]


async def test_retry_after_as_an_http_date_counts_from_the_system_clock(
    provider: ApnsProvider, fake: FakeApns
) -> None:
    # libcurl parses Retry-After (http2.py), against the system clock: a real peer's
    # HTTP date is wall-clock time, whatever clock the provider was given.
    until = datetime.fromtimestamp(int(time.time()) + 30, UTC)
    fake.fail_next(1, 503, format_datetime(until, usegmt=True))

    [result] = await provider.send([delivery(0)])

    assert (result.outcome, result.reason) == (DeliveryOutcome.RETRY, "ServiceUnavailable")
    assert result.retry_after is not None and 28.0 <= result.retry_after <= 30.0


async def test_payload_over_4096_bytes_is_rejected_without_sending(
    provider: ApnsProvider, fake: FakeApns
) -> None:
    at_limit = b'{"aps":{},"pad":"' + b"x" * (4096 - 19) + b'"}'
    over = b'{"aps":{},"pad":"' + b"x" * (4096 - 18) + b'"}'
    assert (len(at_limit), len(over)) == (4096, 4097)

    results = await provider.send([delivery(0, at_limit), delivery(1, over)])

    assert results == [SENT, DeliveryResult(DeliveryOutcome.REJECTED, "PayloadTooLarge")]
    assert [request.token for request in fake.requests] == [token(0)]


async def test_validate_only_sends_only_silent_background_pushes(
    provider: ApnsProvider, fake: FakeApns
) -> None:
    dry_run = dry_run_payload(Platform.APNS, token(1))
    silent = Delivery("m", "a", "r", Platform.APNS, token(1), dry_run.body, dry_run.headers)
    # Says background, but would show an alert.
    lying = Delivery("m", "a", "r", Platform.APNS, token(3), delivery(3).payload, dry_run.headers)

    results = await provider.send([silent, delivery(2), lying], validate_only=True)

    refused = DeliveryResult(DeliveryOutcome.REJECTED, "BackgroundPushRequired")
    assert results == [SENT, refused, refused]
    [request] = fake.requests
    assert request.token == token(1)
    assert request.headers["apns-push-type"] == "background"
    assert request.headers["apns-priority"] == "5"
    assert request.headers["apns-expiration"] == "0"


async def test_fake_answers_oversized_payload_with_413(
    fake: FakeApns, tls: TlsFiles, signing_key: tuple[str, str], apple_clock: ManualClock
) -> None:
    authorization = f"authorization: bearer {_raw_jwt(signing_key[0], apple_clock)}"
    client = Http2Client(ca_file=str(tls.ca_file))
    try:
        [response] = await client.post_many(
            [_raw_request(fake, token(1), b"{" + b" " * 4096 + b"}", [authorization])]
        )
    finally:
        await client.close()

    assert response.status == 413
    assert json.loads(response.body) == {"reason": "PayloadTooLarge"}


async def test_non_hex_device_token_is_invalid_without_sending(
    provider: ApnsProvider, fake: FakeApns
) -> None:
    bad = Delivery("m", "a", "r", Platform.APNS, "../../admin", b'{"aps":{}}', {})

    assert await provider.send([bad]) == [
        DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "BadDeviceToken")
    ]
    assert fake.requests == []


async def test_goaway_mid_batch_loses_nothing(provider: ApnsProvider, fake: FakeApns) -> None:
    await provider.send([delivery(0)])  # connected, so the GOAWAY lands mid-traffic
    fake.goaway_after(700)

    results = await provider.send([delivery(n) for n in range(1, 2001)])

    assert results == [SENT] * 2000
    _assert_each_delivered(fake, range(1, 2001))
    assert fake.connections >= 2


async def test_dropped_connection_mid_batch_loses_nothing(
    provider: ApnsProvider, fake: FakeApns
) -> None:
    await provider.send([delivery(0)])
    fake.drop_after(500)

    results = await provider.send([delivery(n) for n in range(1, 2001)])

    assert results == [SENT] * 2000
    _assert_each_delivered(fake, range(1, 2001))
    assert fake.connections >= 2


async def test_unreachable_apns_is_retryable(
    tls: TlsFiles, signing_key: tuple[str, str], clock: ManualClock, fake: FakeApns
) -> None:
    url = fake.url
    await fake.stop()
    apns = ApnsProvider(credentials(signing_key[0]), clock, base_url=url, ca_file=str(tls.ca_file))
    try:
        [result] = await apns.send([delivery(0)])
    finally:
        await apns.close()

    assert result == DeliveryResult(DeliveryOutcome.RETRY, "TransportError")


async def test_server_certificate_from_another_ca_is_refused(
    fake: FakeApns, signing_key: tuple[str, str], clock: ManualClock, tmp_path: Path
) -> None:
    stranger = issue_tls_files(tmp_path / "other-ca")
    apns = ApnsProvider(
        credentials(signing_key[0]), clock, base_url=fake.url, ca_file=str(stranger.ca_file)
    )
    try:
        [result] = await apns.send([delivery(0)])
    finally:
        await apns.close()

    assert result == DeliveryResult(DeliveryOutcome.RETRY, "TransportError")
    assert fake.requests == []


# ------------------------------------------------------------ provider tokens


async def test_provider_token_is_reused_within_50_minutes_then_renewed(
    provider: ApnsProvider, fake: FakeApns, clock: ManualClock, apple_clock: ManualClock
) -> None:
    for minutes in (0, 19, 30, 49):
        clock.set(START + timedelta(minutes=minutes))
        apple_clock.set(clock.now())
        assert await provider.send([delivery(minutes)]) == [SENT]
    clock.set(START + timedelta(minutes=50))
    apple_clock.set(clock.now())
    assert await provider.send([delivery(50)]) == [SENT]

    iats = [request.iat for request in fake.requests]
    assert iats == [int(START.timestamp())] * 4 + [int(START.timestamp()) + 50 * 60]


async def test_expired_provider_token_is_renewed_and_resent_when_old_enough(
    provider: ApnsProvider, fake: FakeApns, clock: ManualClock, apple_clock: ManualClock
) -> None:
    assert await provider.send([delivery(0)]) == [SENT]
    # Our token is 25 minutes old; Apple's clock runs 36 minutes ahead and calls it expired.
    clock.advance(timedelta(minutes=25))
    apple_clock.advance(timedelta(minutes=61))

    assert await provider.send([delivery(1), delivery(2)]) == [SENT, SENT]

    first_iat = int(START.timestamp())
    renewed_iat = first_iat + 25 * 60
    assert [(r.token, r.reason, r.iat) for r in fake.requests] == [
        (token(0), None, first_iat),
        (token(1), "ExpiredProviderToken", first_iat),
        (token(2), "ExpiredProviderToken", first_iat),
        (token(1), None, renewed_iat),
        (token(2), None, renewed_iat),
    ]


async def test_expired_provider_token_is_kept_within_20_minutes(
    provider: ApnsProvider, fake: FakeApns, apple_clock: ManualClock
) -> None:
    apple_clock.advance(timedelta(minutes=61))

    results = await provider.send([delivery(0)])

    assert results == [DeliveryResult(DeliveryOutcome.REJECTED, "ExpiredProviderToken")]
    assert len(fake.requests) == 1


async def test_too_many_provider_token_updates_is_retryable(
    provider: ApnsProvider,
    fake: FakeApns,
    tls: TlsFiles,
    signing_key: tuple[str, str],
    clock: ManualClock,
    apple_clock: ManualClock,
) -> None:
    assert await provider.send([delivery(0)]) == [SENT]
    # A second sender with the same key mints its own token five minutes later.
    clock.advance(timedelta(minutes=5))
    apple_clock.advance(timedelta(minutes=5))
    other = ApnsProvider(
        credentials(signing_key[0]), clock, base_url=fake.url, ca_file=str(tls.ca_file)
    )
    try:
        [result] = await other.send([delivery(1)])
    finally:
        await other.close()

    assert result == DeliveryResult(DeliveryOutcome.RETRY, "TooManyProviderTokenUpdates")


def test_environment_chooses_apples_host() -> None:
    assert base_url_for(ApnsEnvironment.PRODUCTION) == PRODUCTION_URL
    assert base_url_for(ApnsEnvironment.SANDBOX) == SANDBOX_URL


def test_key_that_is_not_p256_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # The very check SetApnsCredentials applies (core.credentials.apns_signing_key).
    with pytest.raises(PushHubError, match="P-256"):
        ApnsProvider(credentials(p384.decode()), ManualClock(START))


# ------------------------------------------------------------------- helpers


def _assert_each_delivered(fake: FakeApns, numbers: range) -> None:
    """Every notification arrived; a few may have arrived twice (resent after a drop)."""
    counts = Counter(request.token for request in fake.delivered)
    assert set(counts) >= {token(n) for n in numbers}
    assert sum(counts.values()) - len(counts) <= 1000


def _raw_jwt(private_key_pem: str, apple_clock: ManualClock) -> str:
    """A token as the provider signs it, for requests that bypass the provider."""
    return jwt.encode(
        {"iss": TEAM_ID, "iat": int(apple_clock.now().timestamp())},
        private_key_pem,
        algorithm="ES256",
        headers={"kid": KEY_ID},
    )


def _raw_request(fake: FakeApns, device: str, payload: bytes, extra: list[str]) -> Http2Request:
    headers = [f"apns-topic: {TOPIC}", "apns-push-type: alert", *extra]
    return Http2Request(f"{fake.url}/3/device/{device}", headers, payload)


async def test_a_silent_peer_times_out_and_is_not_resent() -> None:
    # Accepts the TCP connection and never answers: only libcurl's timer ends the
    # transfer, so this checks that the client thread keeps libcurl's timeouts.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = Http2Client(timeout=0.5, connect_timeout=0.5)
        started = time.monotonic()
        try:
            [response] = await client.post_many(
                [Http2Request(f"https://127.0.0.1:{port}/3/device/{token(0)}", [], b"{}")]
            )
        finally:
            await client.close()

    assert response.timed_out and response.status == 0
    assert 0.4 <= time.monotonic() - started < 5


async def test_a_request_libcurl_refuses_fails_the_batch_instead_of_hanging() -> None:
    """A worker that stops half-way through a batch still answers every request."""
    client = Http2Client(timeout=0.5, connect_timeout=0.5)
    try:
        with pytest.raises(RuntimeError, match="closed"):
            # A NUL in the URL makes pycurl refuse the option, on the worker thread.
            await asyncio.wait_for(
                client.post_many([Http2Request("https://127.0.0.1:9/\0", [], b"{}")]), 10
            )
    finally:
        await client.close()
