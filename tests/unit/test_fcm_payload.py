"""FCM wire format: the HTTP v1 request body."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pushhub_server.core.errors import PushHubError
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.delivery.payloads.fcm import fcm_duration
from pushhub_server.delivery.payloads.renderer import (
    PayloadRenderer,
    check_publish_size,
    dry_run_payload,
    render_fcm,
)
from tests.unit.payload_samples import FCM_TOKEN, FULL, NOW, fcm

# ------------------------------------------------------------------ FCM


def test_fcm_maps_every_field() -> None:
    expiration = str(int(NOW.timestamp()) + 3600)
    assert fcm(FULL) == {
        "message": {
            "token": FCM_TOKEN,
            "notification": {
                "title": "Title",
                "body": "Body",
                "image": "https://img.example/x.png",
            },
            "data": {
                "order": "42",
                "region": "eu",
                "publisher_id": "backend-7",
                "message": "plain",
            },
            "android": {
                "priority": "HIGH",
                "ttl": "3600s",
                "collapse_key": "scores",
                "notification": {
                    "sound": "chime.caf",
                    "notification_count": 7,
                    "click_action": "INVITE",
                },
            },
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-expiration": expiration,
                    "apns-collapse-id": "scores",
                },
                "payload": {
                    "aps": {
                        "alert": {"title": "Title", "subtitle": "Sub", "body": "Body"},
                        "badge": 7,
                        "sound": "chime.caf",
                        "category": "INVITE",
                        "thread-id": "thread-1",
                        "content-available": 1,
                        "mutable-content": 1,
                    }
                },
            },
        }
    }


def test_fcm_minimal_message_shape() -> None:
    body = render_fcm(NotificationContent(message="Hello"), "tok", now=NOW)
    assert body == b'{"message":{"token":"tok","notification":{"body":"Hello"}}}'


def test_fcm_data_only_message_has_string_values_and_no_notification() -> None:
    message = fcm(NotificationContent(data={"a": "1"}, headers={"h": "x"}, publisher_id="p"))
    assert message == {
        "message": {"token": FCM_TOKEN, "data": {"a": "1", "h": "x", "publisher_id": "p"}}
    }
    assert all(isinstance(v, str) for v in message["message"]["data"].values())


@pytest.mark.parametrize(
    ("ttl", "priority", "android"),
    [
        (timedelta(seconds=90), "normal", {"priority": "NORMAL", "ttl": "90s"}),
        (timedelta(0), "high", {"priority": "HIGH", "ttl": "0s"}),
        (timedelta(milliseconds=1500), None, {"ttl": "1.5s"}),
        (None, None, None),
    ],
)
def test_fcm_android_ttl_and_priority(ttl, priority, android) -> None:
    message = fcm(NotificationContent(message="x", ttl=ttl, priority=priority))["message"]
    assert message.get("android") == android


def test_fcm_collapse_key_maps_to_android_and_apns() -> None:
    message = fcm(NotificationContent(message="x", collapse_key="score"))["message"]
    assert message["android"] == {"collapse_key": "score"}
    assert message["apns"] == {"headers": {"apns-collapse-id": "score"}}


def test_fcm_background_for_ios_devices() -> None:
    message = fcm(NotificationContent(content_available=True, data={"s": "1"}))["message"]
    assert message["apns"] == {
        "headers": {"apns-push-type": "background", "apns-priority": "5"},
        "payload": {"aps": {"content-available": 1}},
    }


def test_fcm_duration_format() -> None:
    assert fcm_duration(timedelta(hours=1)) == "3600s"
    assert fcm_duration(timedelta(seconds=3, microseconds=250000)) == "3.25s"
    assert fcm_duration(timedelta(microseconds=1)) == "0.000001s"


def test_fcm_token_is_spliced_per_recipient_and_escaped() -> None:
    renderer = PayloadRenderer(NotificationContent(message="m"), now=NOW)
    for token in ["a", "b" * 200, 'odd"token\\']:
        body = renderer.fcm(token)
        assert json.loads(body)["message"]["token"] == token


def test_fcm_json_deep_merges_into_message() -> None:
    content = NotificationContent(
        title="T",
        priority="high",
        data={"a": "1"},
        fcm_json={
            "android": {"direct_boot_ok": True, "priority": "NORMAL"},
            "notification": {"title": None, "body": "from override"},
            "data": {"b": "2"},
            "fcm_options": {"analytics_label": "L"},
        },
    )
    assert fcm(content)["message"] == {
        "token": FCM_TOKEN,
        "notification": {"body": "from override"},
        "data": {"a": "1", "b": "2"},
        "android": {"priority": "NORMAL", "direct_boot_ok": True},
        "apns": {"headers": {"apns-priority": "10"}},
        "fcm_options": {"analytics_label": "L"},
    }


def test_fcm_json_wrapped_in_message_is_unwrapped() -> None:
    content = NotificationContent(message="x", fcm_json={"message": {"data": {"k": "v"}}})
    assert fcm(content)["message"]["data"] == {"k": "v"}


@pytest.mark.parametrize(
    "override",
    [{"token": "other"}, {"topic": "news"}, {"condition": "'a' in topics"}, {"data": {"n": 1}}],
)
def test_fcm_json_that_breaks_the_message_is_rejected(override: dict) -> None:
    content = NotificationContent(message="x", fcm_json=override)
    with pytest.raises(PushHubError) as info:
        check_publish_size(content, now=NOW)
    assert info.value.reason == "INVALID_FCM_JSON"
    assert info.value.metadata["field"] == "fcm_json"


# ------------------------------------------------------------------ dry run


def test_the_dry_run_is_a_data_message_for_the_token() -> None:
    dry_run = dry_run_payload(Platform.FCM, FCM_TOKEN)

    assert json.loads(dry_run.body) == {
        "message": {"token": FCM_TOKEN, "data": {"pushhub": "verification"}}
    }
    assert dict(dry_run.headers) == {}
