"""Huawei Push Kit wire format: one published message as HMS's ``message`` object.

The payload is the ``message`` object of ``POST /v1/{clientId}/messages:send``
*without its target*: providers/hms.py adds ``"token": [...]`` (up to 1,000
tokens) and the ``validate_only`` envelope. Every recipient whose payload is the
same therefore shares one request, so a broadcast without ``{{name}}`` or
templates renders one ``bytes`` object for everyone, once, and costs one request
per 1,000 devices.

Shape (HMS REST API, "Sending Messages", v1; empty fields left out)::

    {"data": "<JSON text>",
     "android": {"urgency": "HIGH"|"NORMAL", "ttl": "86400s", "collapse_key": 0..100,
                 "notification": {"title", "body", "image", "sound", "default_sound",
                                  "tag", "click_action": {"type": 3}}}}

- ``title``; ``body`` (or the plain ``message`` when ``body`` is empty);
  ``image_url`` → ``image``. Any of them makes a notification message; without
  them the message is a data ("transparent") message, which HMS hands to the app.
- ``click_action`` is required in a notification: ``{"type": 3}`` opens the app;
  a ``category`` opens the activity whose intent filter has that action
  (``{"type": 1, "action": category}``), as FCM's ``click_action`` does.
- ``sound`` → ``sound`` with ``default_sound: false`` (a file in the app's
  ``res/raw``); ``"default"`` keeps the system sound.
- ``priority`` → ``urgency``, for data messages only: Push Kit documents urgency
  as the delivery priority of data messages (HIGH, which may wake the app, needs
  a permission Huawei grants per app); notifications are left at its default.
- ``ttl`` → ``ttl`` in whole seconds, at most HMS's 15 days (PushHub accepts 28:
  HMS would keep a longer one 15 days anyway).
- ``collapse_key`` → ``notification.tag`` (a newer notification with the same tag
  replaces the shown one), and also ``android.collapse_key`` when it is an
  integer from -1 to 100, the only values HMS takes there (offline-cache groups).
- ``data`` is a *string*: the JSON object of ``notification.data``, ``headers``,
  ``publisher_id`` (and ``message`` when ``body`` is also set), as FCM's data.
- Not mapped: ``badge`` (HMS needs the app's launcher Activity class name for a
  badge, which PushHub does not hold), ``subtitle``, ``thread_id``,
  ``mutable_content`` (iOS only). ``apns_json``/``fcm_json`` do not apply.

Templates (Azure): the registration's template renders to the ``message`` object
(or ``{"message": {...}}``), laid over the android delivery options above; a
target it names (token, topic, condition) is dropped, and its ``data`` must be a
string.

Size: at most 4,096 bytes of UTF-8, counted without the tokens, as HMS counts it
(size.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from pushhub_server.core.errors import PushHubError
from pushhub_server.core.models import Template
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.templates import MessageTemplate, compile_message, template_error

from .content import TARGETS, check_content, custom_data, unwrap_message
from .json_text import dumps, merge_patch
from .size import payload_too_large
from .templates import TEMPLATE_CACHE_SIZE, remember, template_object

HMS_PAYLOAD_LIMIT = 4096
# A dry run's message (sent with validate_only): a data message no user would see.
DRY_RUN_BODY = dumps({"data": dumps({"pushhub_dry_run": "1"})}).encode()
HMS_MAX_TTL = timedelta(days=15)
# click_action types: 1 an activity by intent or action, 3 the app's launcher.
_CUSTOM_ACTION, _OPEN_APP = 1, 3
_COLLAPSE_GROUP = re.compile(r"-1|0|[1-9][0-9]?|100")


class HmsPayloads:
    """Renders one message's HMS payload for its recipients; build one per message run."""

    def __init__(
        self,
        content: NotificationContent,
        *,
        limit: int = HMS_PAYLOAD_LIMIT,
        template_cache_size: int = TEMPLATE_CACHE_SIZE,
    ) -> None:
        self.content = content
        self.limit = limit
        self._message: MessageTemplate = compile_message(content.message)
        # What a recipient's rendering reads: registration metadata only for
        # {{name}} in message, its templates only with template_name.
        self.uses_metadata: bool = self._message.has_placeholders
        self.uses_templates: bool = bool(content.template_name)
        self._field = "notification" if content.has_notification_fields else "message"
        # The content rules every payload depends on, checked once (publish checks
        # them too; a stored message that no longer passes fails each recipient).
        self._content_error = _content_error(content)
        self._standard: bytes | PushHubError | None = None
        self._templates: dict[str, bytes | PushHubError] = {}
        self._template_cache_size = template_cache_size

    def render(
        self,
        metadata: Mapping[str, str] | None = None,
        templates: Mapping[str, Template | str] | None = None,
    ) -> bytes:
        """The payload for one recipient: the same object for every recipient whose
        payload is the same (see the module docstring).

        Raises PushHubError (PAYLOAD_TOO_LARGE, TEMPLATE_RENDER_FAILED, ...) when this
        recipient's payload cannot be sent.
        """
        if self._content_error is not None:
            raise self._content_error.with_traceback(None)
        if templates and self.uses_templates:
            template = templates.get(self.content.template_name)
            if template is not None:
                return _ok(self._template(getattr(template, "body", template)))
        if self.uses_metadata:
            return self._serialize(self.message_object(self._message.render(metadata)), self._field)
        if self._standard is None:
            self._standard = self._prepare(
                lambda: self._serialize(self.message_object(), self._field)
            )
        return _ok(self._standard)

    # ------------------------------------------------------------ standard

    def message_object(self, message: str | None = None) -> dict[str, Any]:
        """The HMS ``message`` object, without a target, before serialization."""
        content = self.content
        message = content.message if message is None else message
        result: dict[str, Any] = {}
        data = custom_data(content, message)
        if data:
            result["data"] = dumps(data)
        android = self._android_options()
        notification = self._notification(message)
        if notification:
            android["notification"] = notification
        if android:
            result["android"] = android
        return self._with_urgency(result)

    def _notification(self, message: str) -> dict[str, Any]:
        content = self.content
        notification: dict[str, Any] = {}
        if content.title:
            notification["title"] = content.title
        if content.body or message:
            notification["body"] = content.body or message
        if content.image_url:
            notification["image"] = content.image_url
        if not notification:
            return {}  # a data message: nothing to show
        if content.sound and content.sound != "default":
            notification["sound"] = content.sound
            notification["default_sound"] = False
        if content.collapse_key:
            notification["tag"] = content.collapse_key
        notification["click_action"] = (
            {"type": _CUSTOM_ACTION, "action": content.category}
            if content.category
            else {"type": _OPEN_APP}
        )
        return notification

    def _android_options(self) -> dict[str, Any]:
        """The delivery options, the same for standard and template payloads."""
        content = self.content
        android: dict[str, Any] = {}
        if content.ttl is not None:
            android["ttl"] = hms_ttl(content.ttl)
        if _COLLAPSE_GROUP.fullmatch(content.collapse_key):
            android["collapse_key"] = int(content.collapse_key)
        return android

    def _with_urgency(self, message: dict[str, Any]) -> dict[str, Any]:
        """``android.urgency`` from the priority, on a data message without one."""
        priority = self.content.priority
        android = message.get("android")
        shown = "notification" in message or (
            isinstance(android, dict) and "notification" in android
        )
        if priority and not shown:
            android = message["android"] = dict(android) if isinstance(android, dict) else {}
            android.setdefault("urgency", "HIGH" if priority == "high" else "NORMAL")
        return message

    # ------------------------------------------------------------ templates

    def _template(self, body: str) -> bytes | PushHubError:
        prepared = self._templates.get(body)
        if prepared is None:
            prepared = remember(
                self._templates,
                body,
                self._prepare(lambda: self._render_template(body)),
                self._template_cache_size,
            )
        return prepared

    def _render_template(self, body: str) -> bytes:
        value = template_object(self.content, body)
        android = self._android_options()
        base = {"android": android} if android else {}
        message = merge_patch(base, unwrap_message(value))
        for target in TARGETS:
            message.pop(target, None)
        if "data" in message and not isinstance(message["data"], str):
            raise template_error(
                f"template {self.content.template_name!r}: HMS message.data must be a string",
                "template_name",
            )
        return self._serialize(self._with_urgency(message), "template_name")

    # ------------------------------------------------------------ both

    def _serialize(self, message: Mapping[str, Any], field_name: str) -> bytes:
        payload = dumps(message).encode()
        if len(payload) > self.limit:
            raise payload_too_large(field_name, "HMS", len(payload), self.limit)
        return payload

    @staticmethod
    def _prepare(build: Callable[[], bytes]) -> bytes | PushHubError:
        """build()'s payload, or the error every recipient of it gets."""
        try:
            return build()
        except PushHubError as error:
            return error


def hms_ttl(ttl: timedelta) -> str:
    """``android.ttl``: whole seconds, ``"86400s"``, capped at HMS's 15 days."""
    return f"{int(min(max(ttl, timedelta(0)), HMS_MAX_TTL).total_seconds())}s"


def _content_error(content: NotificationContent) -> PushHubError | None:
    try:
        check_content(content)
    except PushHubError as error:
        return error
    return None


def _ok(prepared: bytes | PushHubError) -> bytes:
    if isinstance(prepared, PushHubError):
        # Drop the previous traceback so it does not grow with each recipient.
        raise prepared.with_traceback(None)
    return prepared
