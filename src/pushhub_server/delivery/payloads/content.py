"""What every platform's payload reads alike from a message's content."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pushhub_server.core.notifications import (
    NotificationContent,
    check_collapse_key,
    check_custom_keys,
)

# Where a Google-style ``message`` object says whom to send to: the audience decides
# that, so neither an override nor a template may set them.
TARGETS = ("token", "topic", "condition")


def check_content(content: NotificationContent) -> None:
    """The content rules every payload depends on. Publish checks them too; a stored
    message that no longer passes them fails each of its recipients."""
    check_custom_keys("notification.data", content.data)
    check_custom_keys("headers", content.headers)
    check_collapse_key(content.collapse_key)


def custom_data(content: NotificationContent, message: str) -> dict[str, str]:
    """The app's own keys: ``notification.data``, then ``headers``, then
    ``publisher_id`` (later ones win on a clash), and ``message`` when ``body`` is
    also set (``body`` is then what is shown)."""
    custom = dict(content.data)
    custom.update(content.headers)
    if content.publisher_id:
        custom["publisher_id"] = content.publisher_id
    if content.body and message and "message" not in custom:
        custom["message"] = message
    return custom


def unwrap_message(value: Mapping[str, Any]) -> dict[str, Any]:
    """``{"message": {...}}`` → its inner object; anything else is already a message.

    FCM and Push Kit both send a ``message`` object: an ``fcm_json`` override or a
    template may give it bare or wrapped."""
    inner = value.get("message")
    if len(value) == 1 and isinstance(inner, dict):
        return dict(inner)
    return dict(value)
