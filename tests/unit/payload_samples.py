"""Messages and helpers the payload tests share."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pushhub_server.core.notifications import NotificationContent
from pushhub_server.delivery.payloads.renderer import render_apns, render_fcm

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
FCM_TOKEN = "fcm-token:APA91b" + "x" * 140


def apns(content: NotificationContent, metadata: dict | None = None) -> dict:
    return json.loads(render_apns(content, metadata, now=NOW).body)


def apns_headers(content: NotificationContent) -> dict:
    return dict(render_apns(content, now=NOW).headers)


def fcm(content: NotificationContent, token: str = FCM_TOKEN, metadata: dict | None = None):
    return json.loads(render_fcm(content, token, metadata, now=NOW))


FULL = NotificationContent(
    message="plain",
    title="Title",
    body="Body",
    subtitle="Sub",
    badge=7,
    sound="chime.caf",
    image_url="https://img.example/x.png",
    category="INVITE",
    thread_id="thread-1",
    content_available=True,
    mutable_content=True,
    data={"order": "42"},
    headers={"region": "eu"},
    publisher_id="backend-7",
    ttl=timedelta(hours=1),
    priority="high",
    collapse_key="scores",
)
