"""FCM wire format: the HTTP v1 request body (``POST /v1/projects/<id>/messages:send``).

::

    {"message": {"token": ..., "notification": {"title", "body", "image"},
                 "data": {str: str},
                 "android": {"priority": "HIGH"|"NORMAL", "ttl": "3600s",
                             "collapse_key": ..., "notification": {"sound",
                             "notification_count", "click_action"}},
                 "apns": {"headers": {...}, "payload": {"aps": {...}}}}}

``data`` holds ``notification.data``, ``headers``, ``publisher_id`` (and
``message`` when ``body`` is also set; content.custom_data). The ``apns`` block is
there for iOS devices reached through FCM: it carries the iOS-only fields and the
priority/expiration/collapse headers (apns.py's rules), and is left out when there
are none. ``fcm_json`` is merged into ``"message"`` (an ``fcm_json`` of the form
``{"message": {...}}`` is unwrapped first); it may not set ``token``, ``topic`` or
``condition``, and ``data`` must stay string → string.

Templates: the rendered object (or its ``"message"`` member) becomes the message,
laid over the android and apns delivery options, with the token forced in; then
``fcm_json`` merges on top. ``notification``, ``data``, ``headers`` and
``publisher_id`` are not added to template payloads.

Size: the request body without the device token, so the limit depends only on the
content, and the check at publish time is exact for every recipient whose
``message`` has no ``{{name}}`` (size.py).

Dry run: the provider sends a small data message with FCM's ``validate_only``, which
FCM checks, token included, without delivering.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pushhub_server.core.errors import invalid_field
from pushhub_server.core.notifications import NotificationContent

from .apns import aps_fields
from .content import TARGETS, custom_data, unwrap_message
from .json_text import dumps, merge_patch

INVALID_FCM_JSON = "INVALID_FCM_JSON"


def fcm_message(
    content: NotificationContent, token: str, message: str, expiration: str | None
) -> dict[str, Any]:
    """The ``message`` object (``fcm_json`` merged), before serialization. ``message``
    stands for the plain message, ``token`` for the device token (the renderer passes
    placeholders); ``expiration`` is apns.apns_expiration's."""
    result: dict[str, Any] = {"token": token}
    notification: dict[str, str] = {}
    if content.title:
        notification["title"] = content.title
    if content.body or message:
        notification["body"] = content.body or message
    if content.image_url:
        notification["image"] = content.image_url
    if notification:
        result["notification"] = notification
    data = custom_data(content, message)
    if data:
        result["data"] = data
    android = _android_options(content)
    android_notification: dict[str, Any] = {}
    if content.sound:
        android_notification["sound"] = content.sound
    if content.badge is not None:
        android_notification["notification_count"] = content.badge
    if content.category:
        android_notification["click_action"] = content.category
    if android_notification:
        android["notification"] = android_notification
    if android:
        result["android"] = android
    apns = _apns_block(content, message, expiration)
    if apns:
        result["apns"] = apns
    if content.fcm_json:
        result = _merge_fcm_json(content, result)
    return result


def fcm_template_message(
    content: NotificationContent, value: Mapping[str, Any], token: str, expiration: str | None
) -> dict[str, Any]:
    """A rendered template as the ``message`` object, over the delivery options."""
    base: dict[str, Any] = {"token": token}
    android = _android_options(content)
    if android:
        base["android"] = android
    headers = _apns_block_headers(content, False, expiration)
    if headers:
        base["apns"] = {"headers": headers}
    message = merge_patch(base, unwrap_message(value))
    for key in TARGETS:
        message.pop(key, None)
    message = {"token": token, **message}
    _check_data("template_name", "TEMPLATE_RENDER_FAILED", message)
    if content.fcm_json:
        message = _merge_fcm_json(content, message)
    return message


def fcm_duration(ttl: timedelta) -> str:
    """A protobuf Duration in JSON form: ``"3600s"``, ``"1.5s"``."""
    micros = max(ttl // timedelta(microseconds=1), 0)
    seconds, fraction = divmod(micros, 1_000_000)
    if not fraction:
        return f"{seconds}s"
    return f"{seconds}.{fraction:06d}".rstrip("0") + "s"


def dry_run_body(device_token: str) -> bytes:
    """The dry run's request body: a data message nobody would see even if delivered."""
    return dumps({"message": {"token": device_token, "data": {"pushhub": "verification"}}}).encode()


def _android_options(content: NotificationContent) -> dict[str, Any]:
    android: dict[str, Any] = {}
    if content.priority:
        android["priority"] = "HIGH" if content.priority == "high" else "NORMAL"
    if content.ttl is not None:
        android["ttl"] = fcm_duration(content.ttl)
    if content.collapse_key:
        android["collapse_key"] = content.collapse_key
    return android


def _apns_block(
    content: NotificationContent, message: str, expiration: str | None
) -> dict[str, Any]:
    """The ``apns`` block: iOS-only fields and delivery headers."""
    aps: dict[str, Any] = {}
    if content.subtitle:
        # A complete alert, so nothing depends on how FCM merges it with notification.
        alert = {"title": content.title, "subtitle": content.subtitle}
        if content.body or message:
            alert["body"] = content.body or message or ""
        aps["alert"] = {k: v for k, v in alert.items() if v}
    aps.update(aps_fields(content))
    visible = (
        content.title
        or content.subtitle
        or content.body
        or message
        or content.badge is not None
        or content.sound
    )
    headers = _apns_block_headers(content, content.content_available and not visible, expiration)
    apns: dict[str, Any] = {}
    if headers:
        apns["headers"] = headers
    if aps:
        apns["payload"] = {"aps": aps}
    return apns


def _apns_block_headers(
    content: NotificationContent, background: bool, expiration: str | None
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if background:
        headers["apns-push-type"] = "background"
        headers["apns-priority"] = "5"
    elif content.priority:
        headers["apns-priority"] = "10" if content.priority == "high" else "5"
    if expiration is not None:
        headers["apns-expiration"] = expiration
    if content.collapse_key:
        headers["apns-collapse-id"] = content.collapse_key
    return headers


def _merge_fcm_json(content: NotificationContent, message: dict[str, Any]) -> dict[str, Any]:
    patch = unwrap_message(content.fcm_json or {})
    for key in TARGETS:
        if key in patch:
            raise invalid_field(
                "fcm_json",
                INVALID_FCM_JSON,
                f"fcm_json may not set message.{key}; the audience decides the target",
            )
    merged = merge_patch(message, patch)
    _check_data("fcm_json", INVALID_FCM_JSON, merged)
    return merged


def _check_data(field_name: str, reason: str, message: Mapping[str, Any]) -> None:
    data = message.get("data")
    if data is None:
        return
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise invalid_field(
            field_name, reason, f"{field_name}: FCM message.data must map strings to strings"
        )
