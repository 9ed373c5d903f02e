"""Platform payloads: one published message rendered for APNs and FCM, per recipient.

Cost model (a fan-out reaches 1,000,000 recipients at 50,000/s): everything that
does not depend on the recipient is built once per message and platform, and
serialized once, with sentinels where recipient values go. The serialized JSON is
split at those sentinels into byte pieces, so a recipient costs one join:

- APNs without ``{{name}}``: the body is the same ``bytes`` object for everyone,
  and so is the headers dict.
- FCM: the device token is spliced between two pieces.
- ``{{name}}`` in ``message``: the filled, JSON-escaped text is spliced in.
- Azure templates: the template body is rendered once per distinct body (the
  properties belong to the message, not the recipient) and cached, so registrations
  sharing a template share its pieces.

Shapes
------
APNs body: ``{"aps": {"alert": {"title", "subtitle", "body"}, "badge", "sound",
"category", "thread-id", "content-available": 1, "mutable-content": 1}, ...}``,
empty fields left out. The plain ``message`` is the alert body when ``body`` is
empty; when both are set, ``message`` travels as the custom key ``"message"``.
``notification.data``, ``headers`` and ``publisher_id`` (key ``"publisher_id"``) are
top-level custom keys (later ones win on a clash). ``image_url`` becomes the custom
key ``"image_url"`` (for a notification service extension). ``apns_json`` is merged
on top (RFC 7396 merge patch: objects merge recursively, ``null`` deletes).

APNs headers: ``apns-push-type`` (``background`` when ``aps`` has
``content-available`` and no alert, badge or sound, else ``alert``),
``apns-priority`` (``10`` high or unset, ``5`` normal, and always ``5`` for
background pushes, which Apple requires), ``apns-expiration`` (the run's start, or
resume, + ttl, in
epoch seconds; ``0``, "deliver now or never", for a zero ttl; left out without
a ttl, so APNs stores the notification for an offline device, as FCM does by
default: with ``0`` an iPhone that is asleep at send time never gets it),
``apns-collapse-id``
(``collapse_key``, at most 64 bytes). No ``apns-id``: it is optional, Apple
assigns a UUID to a request without one, and PushHub neither stores nor reports
it, while a per-recipient id would make every request's headers unique (a header
list to rebuild per request in libcurl, a literal instead of table indexes in
HPACK). A caller that needs its own id (the dry-run verification) puts
``apns-id`` in its Delivery's headers, and the provider sends it. ``apns-topic``
comes from the app's credentials, so the provider adds it.

FCM v1 body (``POST /v1/projects/<id>/messages:send``)::

    {"message": {"token": ..., "notification": {"title", "body", "image"},
                 "data": {str: str},
                 "android": {"priority": "HIGH"|"NORMAL", "ttl": "3600s",
                             "collapse_key": ..., "notification": {"sound",
                             "notification_count", "click_action"}},
                 "apns": {"headers": {...}, "payload": {"aps": {...}}}}}

``data`` holds ``notification.data``, ``headers``, ``publisher_id`` (and
``message`` as above). The ``apns`` block is there for iOS devices reached through
FCM: it carries the iOS-only fields and the priority/expiration/collapse headers,
and is left out when there are none. ``fcm_json`` is merged into ``"message"``
(an ``fcm_json`` of the form ``{"message": {...}}`` is unwrapped first); it may not
set ``token``, ``topic`` or ``condition``, and ``data`` must stay string → string.

Templates (Azure): when the publish names ``template_name`` and the registration
holds a template of that name, the rendered template *is* the payload. For APNs the
delivery headers still come from ttl/priority/collapse_key; for FCM the rendered
object (or its ``"message"`` member) becomes the message, laid over the android and
apns delivery options, with the token forced in. Then ``apns_json``/``fcm_json``
merge on top. ``notification``, ``data``, ``headers`` and ``publisher_id`` are not
added to template payloads. A registration without that template gets the standard
rendering.

Size: bodies are serialized compactly (``separators=(",", ":")``,
``ensure_ascii=False``) and must be at most 4,096 bytes of UTF-8. For APNs that is
the whole body, as Apple counts it. For FCM it is the request body without the
device token, so the limit depends only on the content, and the check at publish
time (``check_publish_size``) is exact for every recipient whose ``message`` has no
``{{name}}``. Over the limit: ``PushHubError`` INVALID_ARGUMENT, reason
``PAYLOAD_TOO_LARGE``, metadata ``field``, ``limit``, ``platform`` and ``size``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from types import MappingProxyType
from typing import Any

from pushhub_server.core.errors import PushHubError, invalid_field
from pushhub_server.core.json_documents import parse_json
from pushhub_server.core.models import Platform, Template
from pushhub_server.core.notifications import (
    NotificationContent,
    check_collapse_key,
    check_custom_keys,
)
from pushhub_server.core.templates import (
    MessageTemplate,
    compile_message,
    compile_template,
    template_error,
)

PAYLOAD_LIMIT = 4096
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
INVALID_FCM_JSON = "INVALID_FCM_JSON"
TEMPLATE_CACHE_SIZE = 1024

# NaN and infinities are not JSON: a payload holding one fails instead of being sent.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# FCM requests carry no per-payload headers.
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

# Recipient slots in the serialized JSON. Random per process, so no content can
# contain them by accident; plain ASCII, so JSON serializes them verbatim.
_TOKEN_SENTINEL = f"@@pushhub-token-{secrets.token_hex(8)}@@"
_MESSAGE_SENTINEL = f"@@pushhub-message-{secrets.token_hex(8)}@@"
_SLOT_SPLIT = re.compile(f"({re.escape(_TOKEN_SENTINEL)}|{re.escape(_MESSAGE_SENTINEL)})")
_TOKEN, _MESSAGE = 0, 1

_FCM_TARGETS = ("token", "topic", "condition")
_APNS_VISIBLE = ("alert", "badge", "sound")


def dumps(value: Any) -> str:
    """Compact JSON text, as every payload is sent."""
    return _ENCODER.encode(value)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch; returns a new value and leaves both inputs untouched."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def payload_too_large(field_name: str, platform: Platform, size: int, limit: int) -> PushHubError:
    name = _platform_name(platform)
    error = invalid_field(
        field_name,
        PAYLOAD_TOO_LARGE,
        f"the rendered {name} payload is {size} bytes, over the limit of {limit} bytes",
        limit=limit,
    )
    error.metadata["platform"] = name
    error.metadata["size"] = str(size)
    return error


def _platform_name(platform: Platform) -> str:
    return "APNs" if platform is Platform.APNS else "FCM"


@dataclass(frozen=True, slots=True)
class RenderedPayload:
    """One request's body, and its headers (APNs only; empty for FCM)."""

    body: bytes
    headers: Mapping[str, str]


class _Prepared:
    """A platform payload split at its recipient slots, or the error every recipient gets."""

    __slots__ = (
        "platform",
        "pieces",
        "slots",
        "message_slots",
        "fixed_size",
        "body",
        "headers",
        "_token_only",
    )

    def __init__(
        self,
        platform: Platform,
        text: str,
        headers: Mapping[str, str],
        field_name: str,
        limit: int,
    ) -> None:
        split = _SLOT_SPLIT.split(text)
        self.platform = platform
        self.pieces = tuple(piece.encode() for piece in split[0::2])
        self.slots = tuple(_TOKEN if s == _TOKEN_SENTINEL else _MESSAGE for s in split[1::2])
        self.message_slots = self.slots.count(_MESSAGE)
        # Bytes every recipient pays; the token is not counted (see module docstring).
        self.fixed_size = sum(len(piece) for piece in self.pieces)
        self.body = self.pieces[0] if not self.slots else None
        # Read-only: every recipient of this payload shares the one mapping.
        self.headers = MappingProxyType(dict(headers))
        self._token_only = self.slots == (_TOKEN,)
        if self.fixed_size > limit:
            raise payload_too_large(field_name, platform, self.fixed_size, limit)

    def join(self, token: bytes, message: bytes) -> bytes:
        pieces = self.pieces
        if self._token_only:
            return pieces[0] + token + pieces[1]
        parts = [pieces[0]]
        for slot, piece in zip(self.slots, pieces[1:], strict=True):
            parts.append(token if slot == _TOKEN else message)
            parts.append(piece)
        return b"".join(parts)


class _Failed:
    """Preparation failed: every recipient of this payload gets the same error.

    Usually a PushHubError, under its reason. Anything else is kept too, so a
    payload that trips an unexpected error is not prepared again for each of
    its recipients; the dispatcher counts those as unrenderable.
    """

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def raise_(self) -> None:
        # Drop the previous traceback so it does not grow with each recipient.
        raise self.error.with_traceback(None)


class PayloadRenderer:
    """Renders one message for its recipients. Build one per message run.

    ``now`` is when the run starts (or resumes): ``apns-expiration`` counts ttl from it.
    """

    def __init__(
        self,
        content: NotificationContent,
        *,
        now: datetime | None = None,
        limit: int = PAYLOAD_LIMIT,
        template_cache_size: int = TEMPLATE_CACHE_SIZE,
    ) -> None:
        self.content = content
        self.limit = limit
        self._now = now or datetime.now(UTC)
        self._message: MessageTemplate = compile_message(content.message)
        # What a recipient's rendering reads besides its token: registration metadata
        # only for {{name}} in message, its templates only when template_name is set.
        self.uses_metadata: bool = self._message.has_placeholders
        self.uses_templates: bool = bool(content.template_name)
        self._message_value = _MESSAGE_SENTINEL if self.uses_metadata else content.message
        self._field = "notification" if content.has_notification_fields else "message"
        self._expiration = _apns_expiration(content.ttl, self._now)
        self._standard: dict[Platform, _Prepared | _Failed] = {}
        self._templates: dict[tuple[Platform, str], _Prepared | _Failed] = {}
        self._template_cache_size = template_cache_size

    # ------------------------------------------------------------ per recipient

    def render(
        self,
        platform: Platform,
        device_token: str = "",
        metadata: Mapping[str, str] | None = None,
        templates: Mapping[str, Template | str] | None = None,
    ) -> RenderedPayload:
        """The request body (and APNs headers) for one recipient.

        Raises PushHubError (PAYLOAD_TOO_LARGE, TEMPLATE_RENDER_FAILED, ...) when this
        recipient's payload cannot be sent; the dispatcher counts it under its reason.
        """
        body, headers = self.body_and_headers(platform, device_token, metadata, templates)
        return RenderedPayload(body, headers)

    def body_and_headers(
        self,
        platform: Platform,
        device_token: str = "",
        metadata: Mapping[str, str] | None = None,
        templates: Mapping[str, Template | str] | None = None,
    ) -> tuple[bytes, Mapping[str, str]]:
        """render() for the fan-out's hot loop: the body, and the headers mapping (empty
        for FCM). Raises as render() does.

        The headers mapping is shared by every recipient of the same payload, and
        read-only; providers recognise it by identity (providers.apns).

        ``metadata`` matters only when ``uses_metadata``, and ``templates`` only when
        ``uses_templates``: callers holding them undecoded may pass None otherwise.
        """
        prepared = None
        if templates and self.uses_templates:
            template = templates.get(self.content.template_name)
            if template is not None:
                prepared = self._template(platform, getattr(template, "body", template))
        if prepared is None:
            prepared = self._standard.get(platform) or self._prepare_standard(platform)
        if type(prepared) is _Failed:
            prepared.raise_()
        assert isinstance(prepared, _Prepared)

        body = prepared.body
        if body is None:
            message = b""
            if prepared.message_slots:
                message = encode_basestring(self._message.render(metadata))[1:-1].encode()
                size = prepared.fixed_size + prepared.message_slots * len(message)
                if size > self.limit:
                    # Only the standard payload has message slots; templates use properties.
                    raise payload_too_large(self._field, platform, size, self.limit)
            token = encode_basestring(device_token)[1:-1].encode() if device_token else b""
            body = prepared.join(token, message)
        return body, prepared.headers

    def apns(
        self,
        metadata: Mapping[str, str] | None = None,
        templates: Mapping[str, Template | str] | None = None,
    ) -> RenderedPayload:
        """APNs body and headers (the token goes in the request path, not the body)."""
        return self.render(Platform.APNS, "", metadata, templates)

    def fcm(
        self,
        device_token: str,
        metadata: Mapping[str, str] | None = None,
        templates: Mapping[str, Template | str] | None = None,
    ) -> bytes:
        """The FCM v1 ``messages:send`` request body."""
        return self.render(Platform.FCM, device_token, metadata, templates).body

    # ------------------------------------------------------- standard payloads

    def _prepare_standard(self, platform: Platform) -> _Prepared | _Failed:
        try:
            check_custom_keys("notification.data", self.content.data)
            check_custom_keys("headers", self.content.headers)
            check_collapse_key(self.content.collapse_key)
            if platform is Platform.APNS:
                payload = self.apns_object(self._message_value)
                prepared: _Prepared | _Failed = _Prepared(
                    platform, dumps(payload), self._apns_headers(payload), self._field, self.limit
                )
            else:
                message = self.fcm_message(_TOKEN_SENTINEL, self._message_value)
                prepared = _Prepared(
                    platform, dumps({"message": message}), _NO_HEADERS, self._field, self.limit
                )
        except Exception as error:  # noqa: BLE001 - kept for every recipient (see _Failed)
            prepared = _Failed(error)
        self._standard[platform] = prepared
        return prepared

    def _custom_data(self, message: str) -> dict[str, str]:
        content = self.content
        custom = dict(content.data)
        custom.update(content.headers)
        if content.publisher_id:
            custom["publisher_id"] = content.publisher_id
        if content.body and message and "message" not in custom:
            custom["message"] = message
        return custom

    def apns_object(self, message: str | None = None) -> dict[str, Any]:
        """The APNs body as a dict (``apns_json`` merged), before serialization."""
        content = self.content
        message = content.message if message is None else message
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
        aps.update(_aps_fields(content))
        payload: dict[str, Any] = {"aps": aps}
        if content.image_url:
            payload["image_url"] = content.image_url
        payload.update(self._custom_data(message))
        if content.apns_json:
            payload = merge_patch(payload, content.apns_json)
        return payload

    def _apns_headers(self, payload: Mapping[str, Any]) -> dict[str, str]:
        background = is_background(payload)
        priority = self.content.priority
        headers = {
            "apns-push-type": "background" if background else "alert",
            "apns-priority": "5" if background or priority == "normal" else "10",
        }
        if self._expiration is not None:
            headers["apns-expiration"] = self._expiration
        if self.content.collapse_key:
            headers["apns-collapse-id"] = self.content.collapse_key
        return headers

    def fcm_message(self, token: str, message: str | None = None) -> dict[str, Any]:
        """The FCM v1 ``message`` object (``fcm_json`` merged), before serialization."""
        content = self.content
        message = content.message if message is None else message
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
        data = self._custom_data(message)
        if data:
            result["data"] = data
        android = self._fcm_android()
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
        apns = self._fcm_apns(message)
        if apns:
            result["apns"] = apns
        if content.fcm_json:
            result = self._merge_fcm_json(result)
        return result

    def _fcm_android(self) -> dict[str, Any]:
        content = self.content
        android: dict[str, Any] = {}
        if content.priority:
            android["priority"] = "HIGH" if content.priority == "high" else "NORMAL"
        if content.ttl is not None:
            android["ttl"] = fcm_duration(content.ttl)
        if content.collapse_key:
            android["collapse_key"] = content.collapse_key
        return android

    def _fcm_apns(self, message: str | None) -> dict[str, Any]:
        """The ``apns`` block of an FCM message: iOS-only fields and delivery headers."""
        content = self.content
        aps: dict[str, Any] = {}
        if content.subtitle:
            # A complete alert, so nothing depends on how FCM merges it with notification.
            alert = {"title": content.title, "subtitle": content.subtitle}
            if content.body or message:
                alert["body"] = content.body or message or ""
            aps["alert"] = {k: v for k, v in alert.items() if v}
        aps.update(_aps_fields(content))
        visible = (
            content.title
            or content.subtitle
            or content.body
            or message
            or content.badge is not None
            or content.sound
        )
        headers = self._fcm_apns_headers(content.content_available and not visible)
        apns: dict[str, Any] = {}
        if headers:
            apns["headers"] = headers
        if aps:
            apns["payload"] = {"aps": aps}
        return apns

    def _fcm_apns_headers(self, background: bool) -> dict[str, str]:
        content = self.content
        headers: dict[str, str] = {}
        if background:
            headers["apns-push-type"] = "background"
            headers["apns-priority"] = "5"
        elif content.priority:
            headers["apns-priority"] = "10" if content.priority == "high" else "5"
        if self._expiration is not None:
            headers["apns-expiration"] = self._expiration
        if content.collapse_key:
            headers["apns-collapse-id"] = content.collapse_key
        return headers

    def _merge_fcm_json(self, message: dict[str, Any]) -> dict[str, Any]:
        patch = unwrap_fcm_json(self.content.fcm_json or {})
        for key in _FCM_TARGETS:
            if key in patch:
                raise invalid_field(
                    "fcm_json",
                    INVALID_FCM_JSON,
                    f"fcm_json may not set message.{key}; the audience decides the target",
                )
        merged = merge_patch(message, patch)
        _check_fcm_data("fcm_json", INVALID_FCM_JSON, merged)
        return merged

    # ------------------------------------------------------------- templates

    def _template(self, platform: Platform, body: str) -> _Prepared | _Failed:
        key = (platform, body)
        prepared = self._templates.get(key)
        if prepared is None:
            prepared = self._prepare_template(platform, body)
            if len(self._templates) >= self._template_cache_size:
                del self._templates[next(iter(self._templates))]
            self._templates[key] = prepared
        return prepared

    def _prepare_template(self, platform: Platform, body: str) -> _Prepared | _Failed:
        content = self.content
        name = content.template_name
        try:
            text = compile_template(body).render(content.template_properties)
            try:
                # The rule every stored document obeys (bounded nesting, finite numbers,
                # no lone surrogates): a template stored before a rule existed, or a
                # property rendering "#(n)" as 1e400, fails here, for that recipient alone.
                value = parse_json(text)
            except ValueError as exc:
                raise template_error(
                    f"template {name!r} does not render to valid JSON: {exc}", "template_name"
                ) from None
            if not isinstance(value, dict):
                raise template_error(
                    f"template {name!r} must render to a JSON object", "template_name"
                )
            if platform is Platform.APNS:
                payload = merge_patch(value, content.apns_json) if content.apns_json else value
                return _Prepared(
                    platform,
                    dumps(payload),
                    self._apns_headers(payload),
                    "template_name",
                    self.limit,
                )
            inner = unwrap_fcm_json(value)
            base: dict[str, Any] = {"token": _TOKEN_SENTINEL}
            android = self._fcm_android()
            if android:
                base["android"] = android
            apns_headers = self._fcm_apns_headers(False)
            if apns_headers:
                base["apns"] = {"headers": apns_headers}
            message = merge_patch(base, inner)
            for key in _FCM_TARGETS:
                message.pop(key, None)
            message = {"token": _TOKEN_SENTINEL, **message}
            _check_fcm_data("template_name", "TEMPLATE_RENDER_FAILED", message)
            if content.fcm_json:
                message = self._merge_fcm_json(message)
            return _Prepared(
                platform, dumps({"message": message}), _NO_HEADERS, "template_name", self.limit
            )
        except PushHubError as error:
            return _Failed(error)
        except (UnicodeError, ValueError):
            # A lone surrogate (no UTF-8 for it) or a number JSON cannot hold.
            return _Failed(
                template_error(f"template {name!r} renders text JSON cannot carry", "template_name")
            )
        except Exception as error:  # noqa: BLE001 - kept for every recipient (see _Failed)
            return _Failed(error)


def is_background(payload: Mapping[str, Any]) -> bool:
    """APNs background push: content-available without alert, badge or sound."""
    aps = payload.get("aps")
    if not isinstance(aps, dict) or not aps.get("content-available"):
        return False
    return not any(key in aps for key in _APNS_VISIBLE)


def unwrap_fcm_json(value: Mapping[str, Any]) -> dict[str, Any]:
    """``{"message": {...}}`` → its inner object; anything else is already a message."""
    inner = value.get("message")
    if len(value) == 1 and isinstance(inner, dict):
        return dict(inner)
    return dict(value)


def _check_fcm_data(field_name: str, reason: str, message: Mapping[str, Any]) -> None:
    data = message.get("data")
    if data is None:
        return
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise invalid_field(
            field_name, reason, f"{field_name}: FCM message.data must map strings to strings"
        )


def fcm_duration(ttl: timedelta) -> str:
    """A protobuf Duration in JSON form: ``"3600s"``, ``"1.5s"``."""
    micros = max(ttl // timedelta(microseconds=1), 0)
    seconds, fraction = divmod(micros, 1_000_000)
    if not fraction:
        return f"{seconds}s"
    return f"{seconds}.{fraction:06d}".rstrip("0") + "s"


# ------------------------------------------------------------------ one-offs


def render_apns(
    content: NotificationContent,
    metadata: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
    limit: int = PAYLOAD_LIMIT,
) -> RenderedPayload:
    return PayloadRenderer(content, now=now, limit=limit).apns(metadata)


def render_fcm(
    content: NotificationContent,
    device_token: str,
    metadata: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
    limit: int = PAYLOAD_LIMIT,
) -> bytes:
    return PayloadRenderer(content, now=now, limit=limit).fcm(device_token, metadata)


def check_publish_size(
    content: NotificationContent,
    platforms: Iterable[Platform] = (Platform.APNS, Platform.FCM),
    *,
    limit: int = PAYLOAD_LIMIT,
    now: datetime | None = None,
) -> None:
    """Publish-time check: render a representative payload for each platform the
    message can reach (a payload too large for FCM must not refuse an APNs-only
    publish).

    ``{{name}}`` placeholders render empty (the smallest any recipient can get), so a
    message rejected here would fail for every recipient. Registration templates are
    unknown at publish time; the standard rendering, which registrations without the
    template receive, is what is checked. Also raises the other rendering errors
    (reserved data keys, a bad ``fcm_json``, an over-long collapse key).
    """
    renderer = PayloadRenderer(content, now=now, limit=limit)
    for platform in platforms:
        renderer.render(platform, "", {})


def _apns_expiration(ttl: timedelta | None, now: datetime) -> str | None:
    """apns-expiration for a ttl counted from now; None leaves the header out."""
    if ttl is None:
        return None
    if ttl <= timedelta(0):
        return "0"
    return str(int((now + ttl).timestamp()))


def _aps_fields(content: NotificationContent) -> dict[str, Any]:
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
