"""Web Push through the real gRPC server: credentials, registration rules, the simulator.

Delivery to a push service is test_web_push_delivery.py's (the fake over HTTP/2
and TLS) and tests/e2e/test_web_push_testing_e2e.py's (the npm web-push-testing).
The session server lists no Web Push host: only the push services' own hosts
(FCM, Mozilla, Apple, Windows) are accepted as endpoints here.
"""

from __future__ import annotations

import base64
import secrets

import grpc
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushhub.v1 import admin_pb2, common_pb2, publish_pb2
from pushhub.v1 import registration_pb2 as reg
from pushhub_server.delivery.providers.simulator import INVALID, REJECTED
from pushhub_server.store import Database
from pushhub_server.store.schema import apps as apps_table

from .harness import (
    ADMIN_METADATA,
    APNS,
    FCM,
    AppHandle,
    StoreProbe,
    Stubs,
    expect_error,
    injected_token,
    platform_counts,
    settle,
)

WEB_PUSH = common_pb2.PLATFORM_WEB_PUSH
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
SUBJECT = "mailto:ops@example.com"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def browser_keys() -> reg.WebPushKeys:
    """What a browser's PushSubscription.toJSON() gives as keys."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return reg.WebPushKeys(p256dh=b64url(point), auth=b64url(secrets.token_bytes(16)))


def fcm_endpoint(subscription_id: str | None = None) -> str:
    return f"https://fcm.googleapis.com/fcm/send/{subscription_id or secrets.token_urlsafe(24)}"


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_key_of(key: ec.EllipticCurvePrivateKey) -> str:
    return b64url(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


async def set_web_push(
    stubs: Stubs, app: AppHandle, key: str = "", subject: str = SUBJECT
) -> admin_pb2.App:
    answer = await stubs.admin.SetWebPushCredentials(
        admin_pb2.SetWebPushCredentialsRequest(
            app_id=app.app_id, vapid_private_key=key, subject=subject
        ),
        metadata=app.server(),
    )
    return answer.app


# ---------------------------------------------------------- credentials ----


async def test_an_empty_key_is_generated_and_its_public_half_answered(
    app: AppHandle, stubs: Stubs
) -> None:
    answered = await set_web_push(stubs, app)
    assert answered.web_push_configured
    point = b64url_decode(answered.web_push_public_key)
    assert len(point) == 65 and point[0] == 4  # an uncompressed P-256 point
    assert "=" not in answered.web_push_public_key
    # The key stays until replaced: ListApps shows the same applicationServerKey.
    listed = await stubs.admin.ListApps(admin_pb2.ListAppsRequest(), metadata=app.server())
    assert [a.web_push_public_key for a in listed.apps] == [answered.web_push_public_key]
    # Another call without a key generates a new one.
    again = await set_web_push(stubs, app)
    assert again.web_push_public_key != answered.web_push_public_key


async def test_a_given_key_pem_or_raw_base64url_is_kept(app: AppHandle, stubs: Stubs) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    expected = public_key_of(key)
    assert (await set_web_push(stubs, app, pem(key))).web_push_public_key == expected
    raw = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    https = "https://example.com/contact"
    assert (await set_web_push(stubs, app, raw, https)).web_push_public_key == expected


@pytest.mark.parametrize(
    ("key", "subject", "field", "reason"),
    [
        ("not a key", SUBJECT, "vapid_private_key", "INVALID_CREDENTIALS"),
        (pem(rsa.generate_private_key(65537, 2048)), SUBJECT, "vapid_private_key", None),
        (pem(ec.generate_private_key(ec.SECP384R1())), SUBJECT, "vapid_private_key", None),
        (b64url(b"\x00" * 32), SUBJECT, "vapid_private_key", None),  # zero is no scalar
        (b64url(b"\x01" * 31), SUBJECT, "vapid_private_key", None),
        ("x" * 9000, SUBJECT, "vapid_private_key", None),
        ("", "", "subject", "FIELD_REQUIRED"),
        ("", "http://example.com", "subject", None),
        ("", "mailto:nobody", "subject", None),
        ("", "ops@example.com", "subject", None),
        ("", "https://exa mple.com", "subject", None),
    ],
    ids=[
        "not-a-key",
        "rsa",
        "p384",
        "zero-scalar",
        "short-scalar",
        "too-long",
        "no-subject",
        "http-subject",
        "mailto-without-address",
        "bare-address",
        "space",
    ],
)
async def test_bad_keys_and_subjects_are_refused_and_nothing_is_stored(
    app: AppHandle, stubs: Stubs, key: str, subject: str, field: str, reason: str | None
) -> None:
    info = await expect_error(
        set_web_push(stubs, app, key, subject),
        INVALID_ARGUMENT,
        reason or "INVALID_CREDENTIALS",
        field=field,
    )
    assert "PRIVATE" not in str(info)
    listed = await stubs.admin.ListApps(admin_pb2.ListAppsRequest(), metadata=app.server())
    assert not listed.apps[0].web_push_configured and not listed.apps[0].web_push_public_key


async def test_only_the_app_itself_or_the_operator_sets_its_credentials(
    app: AppHandle, other_app: AppHandle, stubs: Stubs
) -> None:
    request = admin_pb2.SetWebPushCredentialsRequest(app_id=app.app_id, subject=SUBJECT)
    for metadata in (other_app.server(), app.device()):
        await expect_error(
            stubs.admin.SetWebPushCredentials(request, metadata=metadata),
            grpc.StatusCode.PERMISSION_DENIED,
            "ADMIN_NOT_ALLOWED",
        )
    answer = await stubs.admin.SetWebPushCredentials(request, metadata=ADMIN_METADATA)
    assert answer.app.web_push_configured


async def test_the_vapid_key_is_sealed_at_rest(
    app: AppHandle, stubs: Stubs, empty_database: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = (await set_web_push(stubs, app, pem(key))).web_push_public_key
    db = Database.from_url(empty_database)
    try:
        async with db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        apps_table.c.web_push_credentials, apps_table.c.web_push_public_key
                    ).where(apps_table.c.id == app.app_id)
                )
            ).one()
    finally:
        await db.dispose()
    sealed, stored_public = row
    assert sealed.startswith("fernet:")
    assert "PRIVATE" not in sealed and SUBJECT not in sealed
    assert stored_public == public  # not secret: it is every subscriber's applicationServerKey


# --------------------------------------------------------- registration ----


async def test_a_subscription_registers_and_reads_back_with_its_keys(app: AppHandle) -> None:
    keys = browser_keys()
    endpoint = fcm_endpoint()
    answer = await app.register(
        platform=WEB_PUSH, device_token=endpoint, web_push_keys=keys, auth=app.device()
    )
    stored = answer.registration
    assert stored.platform == WEB_PUSH and stored.device_token == endpoint
    assert stored.web_push_keys == keys
    [listed] = await app.list_all(platform=WEB_PUSH)
    assert listed.web_push_keys == keys

    # A browser that subscribes again keeps the endpoint and may change its keys.
    renewed = browser_keys()
    again = await app.register(platform=WEB_PUSH, device_token=endpoint, web_push_keys=renewed)
    assert again.registration.registration_id == stored.registration_id
    assert again.registration.web_push_keys == renewed


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk",
        "https://web.push.apple.com/QGuQyavXutnMH3F1",
        "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB",
    ],
    ids=["mozilla", "apple", "windows"],
)
async def test_every_push_service_on_the_default_list_is_accepted(
    app: AppHandle, endpoint: str
) -> None:
    answer = await app.register(
        platform=WEB_PUSH, device_token=endpoint, web_push_keys=browser_keys()
    )
    assert answer.registration.device_token == endpoint


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("http://fcm.googleapis.com/fcm/send/abc", "INVALID_WEB_PUSH_ENDPOINT"),
        ("https://203.0.113.7/push/abc", "INVALID_WEB_PUSH_ENDPOINT"),
        ("https://[::1]/push/abc", "INVALID_WEB_PUSH_ENDPOINT"),
        ("https://2130706433/push/abc", "INVALID_WEB_PUSH_ENDPOINT"),
        ("https://localhost/push/abc", "INVALID_WEB_PUSH_ENDPOINT"),
        ("https://metadata.google.internal/computeMetadata/v1/", "INVALID_WEB_PUSH_ENDPOINT"),
        ("https://evil.example/fcm.googleapis.com", "INVALID_WEB_PUSH_ENDPOINT"),
        ("https://fcm.googleapis.com.evil.example/x", "INVALID_WEB_PUSH_ENDPOINT"),
        ("https://fcm.googleapis.com:8443/fcm/send/abc", "INVALID_WEB_PUSH_ENDPOINT"),
        ("https://user@fcm.googleapis.com/fcm/send/abc", "INVALID_WEB_PUSH_ENDPOINT"),
        ("https://fcm.googleapis.com/fcm/send/abc#x", "INVALID_WEB_PUSH_ENDPOINT"),
        ("file:///etc/passwd", "INVALID_DEVICE_TOKEN"),
        ("fcm:token", "INVALID_DEVICE_TOKEN"),
        ("https://fcm.googleapis.com/fcm/send/a b", "INVALID_DEVICE_TOKEN"),
        ("https://fcm.googleapis.com/" + "a" * 4097, "VALUE_TOO_LONG"),
    ],
    ids=[
        "http",
        "ipv4-literal",
        "ipv6-literal",
        "decimal-ip",
        "localhost",
        "metadata",
        "unknown-host",
        "lookalike-host",
        "other-port",
        "user-info",
        "fragment",
        "file",
        "not-a-url",
        "space",
        "too-long",
    ],
)
async def test_an_endpoint_outside_the_rules_is_refused(
    app: AppHandle, endpoint: str, reason: str
) -> None:
    await expect_error(
        app.register(platform=WEB_PUSH, device_token=endpoint, web_push_keys=browser_keys()),
        INVALID_ARGUMENT,
        reason,
        field="device_token",
    )
    assert await app.list_all() == []


async def test_web_push_keys_are_required_for_web_push_and_refused_for_the_others(
    app: AppHandle,
) -> None:
    await expect_error(
        app.register(platform=WEB_PUSH, device_token=fcm_endpoint()),
        INVALID_ARGUMENT,
        "FIELD_REQUIRED",
        field="web_push_keys",
    )
    for platform, token in ((APNS, "ab" * 32), (FCM, "fcm:abc")):
        await expect_error(
            app.register(platform=platform, device_token=token, web_push_keys=browser_keys()),
            INVALID_ARGUMENT,
            "WEB_PUSH_KEYS_NOT_ALLOWED",
            field="web_push_keys",
        )
    assert await app.list_all() == []


def _off_curve() -> str:
    return b64url(b"\x04" + b"\x01" * 64)


@pytest.mark.parametrize(
    ("p256dh", "auth", "field"),
    [
        ("", b64url(b"a" * 16), "web_push_keys.p256dh"),
        (_off_curve(), b64url(b"a" * 16), "web_push_keys.p256dh"),
        (b64url(b"\x04" + b"\x01" * 10), b64url(b"a" * 16), "web_push_keys.p256dh"),
        ("not base64!", b64url(b"a" * 16), "web_push_keys.p256dh"),
        (None, "", "web_push_keys.auth"),
        (None, b64url(b"a" * 15), "web_push_keys.auth"),
    ],
    ids=["no-p256dh", "off-curve", "short-point", "not-base64url", "no-auth", "short-auth"],
)
async def test_keys_that_could_never_be_encrypted_to_are_refused(
    app: AppHandle, p256dh: str | None, auth: str, field: str
) -> None:
    keys = reg.WebPushKeys(p256dh=browser_keys().p256dh if p256dh is None else p256dh, auth=auth)
    await expect_error(
        app.register(platform=WEB_PUSH, device_token=fcm_endpoint(), web_push_keys=keys),
        INVALID_ARGUMENT,
        "INVALID_WEB_PUSH_KEYS",
        field=field,
    )


async def test_a_bad_item_of_a_bulk_import_fails_alone(app: AppHandle) -> None:
    items = [
        reg.RegisterDeviceRequest(
            platform=WEB_PUSH, device_token=fcm_endpoint(), web_push_keys=browser_keys()
        ),
        reg.RegisterDeviceRequest(platform=WEB_PUSH, device_token="https://localhost/x"),
    ]

    async def requests():
        yield reg.RegisterDevicesRequest(registrations=items)

    call = app.stubs.registrations.RegisterDevices(requests(), metadata=app.server())
    [response] = [answer async for answer in call]
    good, bad = response.results
    assert good.HasField("response") and bad.HasField("error")
    assert bad.error.code == INVALID_ARGUMENT.value[0]


async def test_unregister_by_endpoint(app: AppHandle) -> None:
    endpoint = fcm_endpoint()
    await app.register(platform=WEB_PUSH, device_token=endpoint, web_push_keys=browser_keys())
    removed = await app.stubs.registrations.UnregisterDevice(
        reg.UnregisterDeviceRequest(platform=WEB_PUSH, device_token=endpoint),
        metadata=app.device(),
    )
    assert removed.removed_count == 1 and await app.list_all() == []


# ------------------------------------------------------------ simulator ----


async def test_the_simulator_delivers_web_push_and_injects_failures(
    server, app: AppHandle, store: StoreProbe
) -> None:
    """Without credentials, Web Push goes to the simulator; the injection prefixes
    apply to the endpoint's last path segment."""
    delivered = await app.register(
        platform=WEB_PUSH, device_token=fcm_endpoint(), web_push_keys=browser_keys()
    )
    invalid_token = injected_token(INVALID, WEB_PUSH)
    rejected_token = injected_token(REJECTED, WEB_PUSH)
    invalid = await app.register(
        platform=WEB_PUSH, device_token=invalid_token, web_push_keys=browser_keys()
    )
    await app.register(platform=WEB_PUSH, device_token=rejected_token, web_push_keys=browser_keys())

    note = publish_pb2.Notification(
        title="Hello", body="World", image_url="https://example.com/i.png", data={"order": "42"}
    )
    response = await app.publish(notification=note, collapse_key="news", broadcast=True)
    status = await settle(server, app, response.message_id)

    assert platform_counts(status)[WEB_PUSH] == (3, 1, 2)
    assert dict(status.failure_reasons) == {"Unregistered": 1, "PayloadRejected": 1}
    payloads = await store.payloads(app, response.message_id)
    assert payloads == {
        delivered.registration.registration_id: {
            "title": "Hello",
            "body": "World",
            "image": "https://example.com/i.png",
            "tag": "news",
            "data": {"order": "42"},
        }
    }
    # The invalid subscription is gone from then on.
    remaining = {r.registration_id for r in await app.list_all()}
    assert invalid.registration.registration_id not in remaining and len(remaining) == 2


async def test_a_template_is_the_payload_a_service_worker_reads(
    server, app: AppHandle, store: StoreProbe
) -> None:
    template = reg.Template(body='{"title": "$(greeting)", "data": {"url": "/inbox"}}')
    registered = await app.register(
        platform=WEB_PUSH,
        device_token=fcm_endpoint(),
        web_push_keys=browser_keys(),
        templates={"greeting": template},
    )
    response = await app.publish(
        broadcast=True, template_name="greeting", template_properties={"greeting": "Hi"}
    )
    await settle(server, app, response.message_id)
    payloads = await store.payloads(app, response.message_id)
    assert payloads[registered.registration.registration_id] == {
        "title": "Hi",
        "data": {"url": "/inbox"},
    }


async def test_a_payload_over_one_record_is_refused_when_web_push_is_named(
    app: AppHandle,
) -> None:
    await expect_error(
        app.publish(message="x" * 4000, platforms=[WEB_PUSH], broadcast=True),
        INVALID_ARGUMENT,
        "PAYLOAD_TOO_LARGE",
        field="message",
        metadata={"platform": "Web Push", "limit": "3993"},
    )
