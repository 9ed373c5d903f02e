"""APNs wire format: the JSON body and the ``apns-*`` headers of one notification.

Body: ``{"aps": {"alert": {"title", "subtitle", "body"}, "badge", "sound",
"category", "thread-id", "content-available": 1, "mutable-content": 1}, ...}``,
empty fields left out. The plain ``message`` is the alert body when ``body`` is
empty; when both are set, ``message`` travels as the custom key ``"message"``.
``notification.data``, ``headers`` and ``publisher_id`` (key ``"publisher_id"``) are
top-level custom keys (content.custom_data). ``image_url`` becomes the custom key
``"image_url"`` (for a notification service extension). ``apns_json`` is merged on
top (RFC 7396 merge patch: objects merge recursively, ``null`` deletes).

Headers: ``apns-push-type`` (``background`` when ``aps`` has
``content-available`` and no alert, badge or sound, else ``alert``),
``apns-priority`` (``10`` high or unset, ``5`` normal, and always ``5`` for
background pushes, which Apple requires), ``apns-expiration`` (the run's start, or
resume, + ttl, in epoch seconds; ``0``, "deliver now or never", for a zero ttl;
left out without a ttl, so APNs stores the notification for an offline device, as
FCM does by default: with ``0`` an iPhone that is asleep at send time never gets
it), ``apns-collapse-id`` (``collapse_key``, at most 64 bytes). No ``apns-id``: it
is optional, Apple assigns a UUID to a request without one, and PushHub neither
stores nor reports it, while a per-recipient id would make every request's headers
unique (a header list to rebuild per request in libcurl, a literal instead of
table indexes in HPACK). A caller that needs its own id (the dry run, below) puts
``apns-id`` in its Delivery's headers, and the provider sends it. ``apns-topic``
comes from the app's credentials, so the provider adds it.

Templates: the rendered template is the body, ``apns_json`` merged on top; the
headers still come from ttl, priority and collapse_key.

Size: the whole body, as Apple counts it (size.py).

Dry run: APNs has no validate-only mode, so a registration is verified with a
silent background push (``{"aps": {"content-available": 1}}``), which iOS hands to
the app without showing anything, expiring at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pushhub_server.core.notifications import NotificationContent

from .content import custom_data
from .json_text import dumps, merge_patch

_VISIBLE = ("alert", "badge", "sound")

DRY_RUN_BODY = dumps({"aps": {"content-available": 1}}).encode()


def apns_payload(content: NotificationContent, message: str) -> dict[str, Any]:
    """The body as a dict (``apns_json`` merged), before serialization; ``message``
    stands for the content's plain message (the renderer passes a placeholder)."""
    alert: dict[str, str] = {}
    if content.title:
        alert["title"] = content.title
    if content.subtitle:
        alert["subtitle"] = content.subtitle
    if content.body or message:
        alert["body"] = content.body or message
    aps: dict[str, Any] = {}
    if alert:
        aps["alert"] = alert
    aps.update(aps_fields(content))
    payload: dict[str, Any] = {"aps": aps}
    if content.image_url:
        payload["image_url"] = content.image_url
    payload.update(custom_data(content, message))
    if content.apns_json:
        payload = merge_patch(payload, content.apns_json)
    return payload


def apns_template_payload(content: NotificationContent, value: dict[str, Any]) -> dict[str, Any]:
    """A rendered template as the body, ``apns_json`` merged on top."""
    return merge_patch(value, content.apns_json) if content.apns_json else value


def apns_headers(
    content: NotificationContent, payload: Mapping[str, Any], expiration: str | None
) -> dict[str, str]:
    """The headers of a body; ``expiration`` from apns_expiration."""
    background = is_background(payload)
    headers = {
        "apns-push-type": "background" if background else "alert",
        "apns-priority": "5" if background or content.priority == "normal" else "10",
    }
    if expiration is not None:
        headers["apns-expiration"] = expiration
    if content.collapse_key:
        headers["apns-collapse-id"] = content.collapse_key
    return headers


def apns_expiration(ttl: timedelta | None, now: datetime) -> str | None:
    """apns-expiration for a ttl counted from now; None leaves the header out."""
    if ttl is None:
        return None
    if ttl <= timedelta(0):
        return "0"
    return str(int((now + ttl).timestamp()))


def aps_fields(content: NotificationContent) -> dict[str, Any]:
    """The aps keys beside the alert, for APNs itself and FCM's apns block alike."""
    fields: dict[str, Any] = {}
    if content.badge is not None:
        fields["badge"] = content.badge
    if content.sound:
        fields["sound"] = content.sound
    if content.category:
        fields["category"] = content.category
    if content.thread_id:
        fields["thread-id"] = content.thread_id
    if content.content_available:
        fields["content-available"] = 1
    if content.mutable_content:
        fields["mutable-content"] = 1
    return fields


def is_background(payload: Mapping[str, Any]) -> bool:
    """APNs background push: content-available without alert, badge or sound."""
    aps = payload.get("aps")
    if not isinstance(aps, dict) or not aps.get("content-available"):
        return False
    return not any(key in aps for key in _VISIBLE)


def dry_run_headers() -> dict[str, str]:
    """The dry run's headers: a background push, priority 5, expiring at once, with an
    apns-id of its own that names it in Apple's answer."""
    return {
        "apns-push-type": "background",
        "apns-priority": "5",
        "apns-expiration": "0",
        "apns-id": str(uuid.uuid4()),
    }
