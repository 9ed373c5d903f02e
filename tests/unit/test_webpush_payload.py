"""Web Push wire format: the RFC 8030 headers and the RFC 8291 encrypted body."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushhub_server.core.web_push import (
    WebPushKeys,
    decode_base64url,
    encode_base64url,
    subscription_keys,
)
from pushhub_server.delivery.payloads.webpush import PLAINTEXT_LIMIT, encrypt, webpush_headers


def browser_keys() -> tuple[ec.EllipticCurvePrivateKey, WebPushKeys]:
    """A key pair and auth secret as a browser makes them for a subscription."""
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return private, WebPushKeys(encode_base64url(point), encode_base64url(os.urandom(16)))


# ------------------------------------------------------------------ headers


def test_headers_follow_the_publish() -> None:
    assert dict(webpush_headers(timedelta(seconds=90.7), "high", "news")) == {
        "TTL": "90",
        "Urgency": "high",
        "Topic": "news",
    }
    assert dict(webpush_headers(timedelta(0), "normal", "")) == {"TTL": "0", "Urgency": "normal"}
    assert dict(webpush_headers(None, None, "")) == {"TTL": "2419200"}


def test_a_collapse_key_that_is_no_topic_is_hashed_to_one() -> None:
    long_key = "scores:" + "x" * 40
    topic = webpush_headers(None, None, long_key)["Topic"]

    assert len(topic) == 32
    assert decode_base64url(topic)
    assert webpush_headers(None, None, long_key)["Topic"] == topic
    assert webpush_headers(None, None, long_key + "y")["Topic"] != topic
    assert len(webpush_headers(None, None, "spaces are not base64url")["Topic"]) == 32
    assert webpush_headers(None, None, "a" * 32)["Topic"] == "a" * 32


# ------------------------------------------------------------------ encryption


def test_pywebpush_s_http_ece_decrypts_what_pushhub_encrypts() -> None:
    private, keys = browser_keys()
    plaintext = "Grüße, {}".encode() * 10

    body = encrypt(plaintext, subscription_keys(keys))

    decrypted = http_ece.decrypt(
        body, private_key=private, auth_secret=decode_base64url(keys.auth), version="aes128gcm"
    )
    assert decrypted == plaintext


def test_every_message_has_its_own_ephemeral_key_and_salt() -> None:
    _, keys = browser_keys()
    decoded = subscription_keys(keys)

    first, second = encrypt(b"same", decoded), encrypt(b"same", decoded)

    assert first[:16] != second[:16]  # salt
    assert first[21:86] != second[21:86]  # keyid: the ephemeral public key
    assert first[16:21] == b"\x00\x00\x10\x00\x41"  # rs 4096, idlen 65


def test_the_largest_payload_fills_a_4096_byte_body() -> None:
    _, keys = browser_keys()
    decoded = subscription_keys(keys)

    assert len(encrypt(b"x" * PLAINTEXT_LIMIT, decoded)) == 4096
    with pytest.raises(ValueError):
        encrypt(b"x" * (PLAINTEXT_LIMIT + 1), decoded)


# ------------------------------------------------------------------ payload


def test_the_renderer_gives_the_service_worker_json_and_the_messages_headers() -> None:
    from pushhub_server.core.models import Platform
    from pushhub_server.core.notifications import NotificationContent
    from pushhub_server.delivery.payloads import PayloadRenderer

    content = NotificationContent(
        message="Hi {{name}}",
        title="Hello",
        image_url="https://example.com/a.png",
        data={"order": "42"},
        headers={"campaign": "spring"},
        publisher_id="shop",
        collapse_key="news",
        priority="high",
        ttl=timedelta(minutes=5),
    )
    body, headers = PayloadRenderer(content).body_and_headers(
        Platform.WEB_PUSH, "https://fcm.googleapis.com/fcm/send/x", {"name": "Ann"}
    )
    assert json.loads(body) == {
        "title": "Hello",
        "body": "Hi Ann",
        "image": "https://example.com/a.png",
        "tag": "news",
        "data": {"order": "42", "campaign": "spring", "publisher_id": "shop"},
    }
    assert dict(headers) == {"TTL": "300", "Urgency": "high", "Topic": "news"}


def test_a_payload_over_one_record_fails_its_recipient() -> None:
    from pushhub_server.core.errors import PushHubError
    from pushhub_server.core.models import Platform
    from pushhub_server.core.notifications import NotificationContent
    from pushhub_server.delivery.payloads import PayloadRenderer

    renderer = PayloadRenderer(NotificationContent(message="x" * PLAINTEXT_LIMIT))
    with pytest.raises(PushHubError) as caught:
        renderer.body_and_headers(Platform.WEB_PUSH, "https://fcm.googleapis.com/fcm/send/x")
    assert caught.value.reason == "PAYLOAD_TOO_LARGE"
    assert caught.value.metadata["platform"] == "Web Push"
    # APNs and FCM still fit a message of that length.
    renderer.body_and_headers(Platform.FCM, "token")
