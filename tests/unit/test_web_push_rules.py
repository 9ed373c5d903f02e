"""Web Push rules: subscription keys, VAPID credentials, endpoints."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushhub_server.core.errors import PushHubError
from pushhub_server.core.web_push import (
    WebPushKeys,
    decode_base64url,
    subscription_keys,
    web_push_credentials,
)
from pushhub_server.core.web_push_endpoints import EndpointPolicy, parse_allowed_hosts


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def browser_keys() -> tuple[ec.EllipticCurvePrivateKey, WebPushKeys]:
    """A key pair and auth secret as a browser makes them for a subscription."""
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return private, WebPushKeys(b64url(point), b64url(os.urandom(16)))


def refusal(call: object, *args: object) -> PushHubError:
    with pytest.raises(PushHubError) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.code.value == "INVALID_ARGUMENT"
    return caught.value


# ------------------------------------------------------------------ subscription keys


def test_browser_keys_decode() -> None:
    _, keys = browser_keys()

    decoded = subscription_keys(keys)

    assert len(decoded.p256dh) == 65 and decoded.p256dh[0] == 4
    assert len(decoded.auth) == 16


def test_padded_base64url_is_accepted_and_other_alphabets_are_not() -> None:
    assert decode_base64url("AQI=") == decode_base64url("AQI") == b"\x01\x02"
    with pytest.raises(ValueError):
        decode_base64url("A+/=")
    with pytest.raises(ValueError):
        decode_base64url("AQ I")


@pytest.mark.parametrize(
    ("p256dh", "auth", "field"),
    [
        ("", "AAAAAAAAAAAAAAAAAAAAAA", "web_push_keys.p256dh"),
        ("not base64!", "AAAAAAAAAAAAAAAAAAAAAA", "web_push_keys.p256dh"),
        (b64url(b"\x04" + b"\x01" * 63), "AAAAAAAAAAAAAAAAAAAAAA", "web_push_keys.p256dh"),
        ("BA" + "A" * 85, "AAAAAAAAAAAAAAAAAAAAAA", "web_push_keys.p256dh"),  # off the curve
        (None, "", "web_push_keys.auth"),
        (None, b64url(b"\x00" * 15), "web_push_keys.auth"),
    ],
)
def test_unusable_keys_are_refused_naming_the_field(
    p256dh: str | None, auth: str, field: str
) -> None:
    _, good = browser_keys()

    error = refusal(subscription_keys, WebPushKeys(good.p256dh if p256dh is None else p256dh, auth))

    assert error.reason == "INVALID_WEB_PUSH_KEYS"
    assert error.metadata["field"] == field


def test_a_compressed_point_is_refused() -> None:
    private, _ = browser_keys()
    compressed = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )

    error = refusal(subscription_keys, WebPushKeys(b64url(compressed), b64url(os.urandom(16))))

    assert error.metadata["field"] == "web_push_keys.p256dh"


# ------------------------------------------------------------------ VAPID credentials


def public_key_of(private: ec.EllipticCurvePrivateKey) -> str:
    point = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def test_an_empty_key_is_generated_and_its_public_key_is_an_application_server_key() -> None:
    credentials = web_push_credentials("", "mailto:ops@example.com")

    loaded = serialization.load_pem_private_key(credentials.private_key_pem.encode(), None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert credentials.public_key == public_key_of(loaded)
    assert len(decode_base64url(credentials.public_key)) == 65


def test_a_pem_key_and_its_raw_scalar_give_the_same_public_key() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    scalar = b64url(private.private_numbers().private_value.to_bytes(32, "big"))

    from_pem = web_push_credentials(pem, "https://example.com/contact")
    from_raw = web_push_credentials(scalar, "https://example.com/contact")

    assert from_pem.public_key == from_raw.public_key == public_key_of(private)
    assert "PRIVATE KEY" not in repr(from_pem)


@pytest.mark.parametrize(
    "key",
    [
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
        b64url(b"\x01" * 31),
        b64url(b"\x00" * 32),  # zero is no private key
        b64url(b"\xff" * 32),  # above the curve's order
        "not base64url at all!",
    ],
)
def test_unreadable_vapid_keys_are_refused(key: str) -> None:
    error = refusal(web_push_credentials, key, "mailto:ops@example.com")

    assert error.metadata["field"] == "vapid_private_key"
    assert "\x01" not in error.message


def test_keys_on_other_curves_are_refused() -> None:
    for private in (ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 2048)):
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

        error = refusal(web_push_credentials, pem, "mailto:ops@example.com")

        assert error.message == "vapid_private_key must be an EC P-256 private key"


@pytest.mark.parametrize(
    "subject",
    ["", "ops@example.com", "mailto:", "http://example.com", "https://", "mailto:a b@c.d"],
)
def test_a_subject_must_be_a_mailto_or_https_uri(subject: str) -> None:
    error = refusal(web_push_credentials, "", subject)

    assert error.metadata["field"] == "subject"


# ------------------------------------------------------------------ endpoints


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bH",
        "https://fcm.googleapis.com/wp/abc",
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk",
        "https://web.push.apple.com/QGuQyavXutnMH",
        "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAD",
        "https://FCM.googleapis.com:443/fcm/send/x",
    ],
)
def test_the_push_services_endpoints_are_accepted(endpoint: str) -> None:
    checked = EndpointPolicy().check(endpoint)

    assert checked.port == 443 and not checked.listed
    assert checked.origin == f"https://{checked.host}"


def test_the_url_sent_to_is_rebuilt_from_the_checked_parts() -> None:
    checked = EndpointPolicy().check("https://FCM.googleapis.com:443/fcm/send/x@y?a=1")

    assert checked.url == "https://fcm.googleapis.com/fcm/send/x@y?a=1"
    assert EndpointPolicy().check("https://web.push.apple.com?x").url == (
        "https://web.push.apple.com/?x"
    )


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("http://fcm.googleapis.com/fcm/send/x", "https"),
        ("https://fcm.googleapis.com:8443/fcm/send/x", "known push service"),
        ("https://example.com/push", "known push service"),
        ("https://fcm.googleapis.com.evil.example/x", "known push service"),
        ("https://push.apple.com/x", "known push service"),
        ("https://127.0.0.1/x", "IP address"),
        ("https://[::1]/x", "IP address"),
        ("https://169.254.169.254/latest/meta-data", "IP address"),
        ("https://2130706433/x", "malformed host"),
        ("https://0x7f.1/x", "malformed host"),
        ("https://localhost/x", "known push service"),
        ("https://user@fcm.googleapis.com/x", "user info"),
        ("https://fcm.googleapis.com/x#frag", "user info or a fragment"),
        ("file:///etc/passwd", "https"),
        ("gopher://fcm.googleapis.com/", "https"),
        ("https://fcm.googleapis.com/x y", "visible ASCII"),
        ("https://fcm.googleapis.com:99999/x", "not a URL"),
        ("https:///nohost", "no host"),
    ],
)
def test_other_endpoints_are_refused(endpoint: str, why: str) -> None:
    error = refusal(EndpointPolicy().check, endpoint)

    assert error.reason == "INVALID_WEB_PUSH_ENDPOINT"
    assert error.metadata["field"] == "device_token"
    assert why in error.message


def test_an_endpoint_over_4096_characters_is_too_long() -> None:
    endpoint = "https://fcm.googleapis.com/fcm/send/" + "x" * 4061

    error = refusal(EndpointPolicy().check, endpoint)

    assert error.reason == "VALUE_TOO_LONG"


def test_a_listed_host_lifts_the_rules_for_that_host_and_port_only() -> None:
    policy = EndpointPolicy.from_env(" localhost:8090 , relay.internal,127.0.0.1:9000,[::1]:81")

    assert policy.check("http://localhost:8090/notify/abc").listed
    assert policy.check("https://relay.internal/push").listed
    assert policy.check("http://relay.internal/push").listed
    assert policy.check("http://127.0.0.1:9000/x").origin == "http://127.0.0.1:9000"
    assert policy.check("http://[::1]:81/x").origin == "http://[::1]:81"
    for other in (
        "http://localhost:8091/notify/abc",
        "https://relay.internal:8443/push",
        "http://127.0.0.1:9001/x",
        "http://sub.relay.internal/push",
    ):
        refusal(policy.check, other)


@pytest.mark.parametrize("text", ["host:port", "a/b", "user@host", "host:0", ":80"])
def test_a_malformed_allowed_hosts_entry_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ValueError, match="PUSHHUB_WEB_PUSH_ALLOWED_HOSTS"):
        parse_allowed_hosts(text)
