"""APNs wire format: the body and the apns-* headers."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pushhub_server.core.errors import PushHubError
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.delivery.payloads.apns import is_background
from pushhub_server.delivery.payloads.renderer import PayloadRenderer, dry_run_payload, render_apns
from tests.unit.payload_samples import FULL, NOW, apns, apns_headers

# ------------------------------------------------------------------ APNs body


def test_apns_maps_every_field() -> None:
    assert apns(FULL) == {
        "aps": {
            "alert": {"title": "Title", "subtitle": "Sub", "body": "Body"},
            "badge": 7,
            "sound": "chime.caf",
            "category": "INVITE",
            "thread-id": "thread-1",
            "content-available": 1,
            "mutable-content": 1,
        },
        "image_url": "https://img.example/x.png",
        "order": "42",
        "region": "eu",
        "publisher_id": "backend-7",
        "message": "plain",
    }


def test_apns_plain_message_becomes_the_alert_body_and_empty_fields_are_omitted() -> None:
    body = render_apns(NotificationContent(message="Hello"), now=NOW).body
    assert body == b'{"aps":{"alert":{"body":"Hello"}}}'


def test_apns_body_wins_over_message_which_then_travels_as_a_custom_key() -> None:
    assert apns(NotificationContent(message="m", body="b")) == {
        "aps": {"alert": {"body": "b"}},
        "message": "m",
    }


def test_apns_badge_zero_is_sent_to_clear_the_badge() -> None:
    assert apns(NotificationContent(badge=0)) == {"aps": {"badge": 0}}


def test_apns_custom_keys_precedence_data_then_headers_then_publisher_id() -> None:
    content = NotificationContent(
        message="m",
        data={"k": "data", "publisher_id": "data"},
        headers={"k": "header"},
        publisher_id="pub",
    )
    assert apns(content) == {
        "aps": {"alert": {"body": "m"}},
        "k": "header",
        "publisher_id": "pub",
    }


def test_apns_body_is_compact_and_keeps_unicode() -> None:
    body = render_apns(NotificationContent(title="Grüße ✓"), now=NOW).body
    assert body == '{"aps":{"alert":{"title":"Grüße ✓"}}}'.encode()


def test_apns_body_is_precomputed_once_per_message() -> None:
    renderer = PayloadRenderer(NotificationContent(message="same for all"), now=NOW)
    first = renderer.render(Platform.APNS, "token-a")
    second = renderer.render(Platform.APNS, "token-b")
    assert first.body is second.body
    # Shared too: the provider formats a broadcast's header lines once (providers/apns.py).
    assert first.headers is second.headers


# ------------------------------------------------------------------ APNs headers


def test_apns_headers_for_an_alert() -> None:
    headers = apns_headers(
        NotificationContent(message="hi", ttl=timedelta(hours=1), priority="high")
    )
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-expiration"] == str(int(NOW.timestamp()) + 3600)
    assert "apns-collapse-id" not in headers
    # Optional; Apple assigns one (the module docstring says why none is sent).
    assert "apns-id" not in headers


@pytest.mark.parametrize(("priority", "expected"), [("high", "10"), ("normal", "5"), (None, "10")])
def test_apns_priority(priority: str | None, expected: str) -> None:
    assert apns_headers(NotificationContent(message="x", priority=priority))["apns-priority"] == (
        expected
    )


@pytest.mark.parametrize("priority", ["high", "normal", None])
def test_apns_background_push_uses_priority_5(priority: str | None) -> None:
    content = NotificationContent(content_available=True, data={"sync": "1"}, priority=priority)
    headers = apns_headers(content)
    assert headers["apns-push-type"] == "background"
    assert headers["apns-priority"] == "5"
    assert apns(content) == {"aps": {"content-available": 1}, "sync": "1"}


@pytest.mark.parametrize(
    "content",
    [
        NotificationContent(content_available=True, message="visible"),
        NotificationContent(content_available=True, badge=1),
        NotificationContent(content_available=True, sound="default"),
    ],
)
def test_content_available_with_alert_badge_or_sound_is_an_alert(
    content: NotificationContent,
) -> None:
    headers = apns_headers(content)
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"


def test_apns_expiration_is_left_out_without_ttl_so_apns_stores_it() -> None:
    # With 0, APNs would not store it: a device asleep at send time would never get it.
    assert "apns-expiration" not in apns_headers(NotificationContent(message="x"))


def test_apns_expiration_is_zero_for_a_zero_ttl() -> None:
    content = NotificationContent(message="x", ttl=timedelta(0))
    assert apns_headers(content)["apns-expiration"] == "0"


def test_apns_expiration_counts_from_send_time() -> None:
    content = NotificationContent(message="x", ttl=timedelta(days=2, seconds=5))
    later = NOW + timedelta(minutes=10)
    headers = render_apns(content, now=later).headers
    assert headers["apns-expiration"] == str(int(later.timestamp()) + 2 * 86400 + 5)


def test_apns_collapse_id_up_to_64_bytes() -> None:
    key = "k" * 64
    assert (
        apns_headers(NotificationContent(message="x", collapse_key=key))["apns-collapse-id"] == key
    )


@pytest.mark.parametrize("key", ["k" * 65, "é" * 33])
def test_apns_collapse_id_over_64_bytes_is_rejected(key: str) -> None:
    with pytest.raises(PushHubError) as info:
        render_apns(NotificationContent(message="x", collapse_key=key), now=NOW)
    assert info.value.reason == "VALUE_TOO_LONG"
    assert info.value.metadata["field"] == "collapse_key"
    assert info.value.metadata["limit"] == "64"


# ------------------------------------------------------------------ apns_json


def test_apns_json_deep_merges_on_top() -> None:
    content = NotificationContent(
        title="T",
        body="B",
        sound="default",
        data={"keep": "1", "drop": "2"},
        apns_json={
            "aps": {"alert": {"title": "Override", "loc-key": "K"}, "sound": None},
            "drop": None,
            "extra": {"nested": [1, 2]},
        },
    )
    assert apns(content) == {
        "aps": {"alert": {"title": "Override", "body": "B", "loc-key": "K"}},
        "keep": "1",
        "extra": {"nested": [1, 2]},
    }


def test_push_type_follows_the_merged_payload() -> None:
    content = NotificationContent(
        message="x", content_available=True, apns_json={"aps": {"alert": None}}
    )
    headers = apns_headers(content)
    assert headers["apns-push-type"] == "background"
    assert headers["apns-priority"] == "5"


# ------------------------------------------------------------------ dry run


def test_the_dry_run_is_a_silent_background_push_that_expires_at_once() -> None:
    first, second = (dry_run_payload(Platform.APNS, "ab" * 32) for _ in range(2))

    body = json.loads(first.body)
    assert body == {"aps": {"content-available": 1}}
    assert is_background(body)
    headers = dict(first.headers)
    assert headers.pop("apns-id") != second.headers["apns-id"]
    assert headers == {"apns-push-type": "background", "apns-priority": "5", "apns-expiration": "0"}
