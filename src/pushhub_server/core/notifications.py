"""What a publish asks to deliver, independent of platform and recipient.

``NotificationContent`` is the validated content of a ``Publish`` request (the
audience and the schedule live elsewhere). ``delivery.payloads`` renders it per
platform and per recipient. The helpers below are the publish-time rules for
these fields; each raises a PushHubError (INVALID_ARGUMENT) naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from .errors import PushHubError, invalid_field, value_too_long
from .json_documents import parse_json
from .validation import check_printable

Priority = Literal["normal", "high"]
PRIORITIES: tuple[Priority, ...] = ("normal", "high")

# FCM refuses a time-to-live over four weeks; APNs has no documented maximum.
MAX_TTL = timedelta(days=28)
# apns-collapse-id: at most 64 bytes.
COLLAPSE_KEY_BYTES = 64
# A badge is a non-negative int32 (the proto field is int32).
MAX_BADGE = 2**31 - 1

# Custom-data keys the platforms reserve: APNs keeps "aps" for itself; FCM rejects
# "from", "message_type" and anything starting with "google" or "gcm".
APNS_RESERVED_KEYS = frozenset({"aps"})
FCM_RESERVED_KEYS = frozenset({"from", "message_type"})
FCM_RESERVED_PREFIXES = ("google", "gcm")


@dataclass(frozen=True)
class NotificationContent:
    """The content of one published message, as every recipient's payload starts from."""

    # Plain text; {{name}} is filled per recipient from registration metadata.
    message: str = ""
    title: str = ""
    body: str = ""
    subtitle: str = ""
    # None leaves the badge alone; 0 clears it.
    badge: int | None = None
    sound: str = ""
    image_url: str = ""
    category: str = ""
    thread_id: str = ""
    content_available: bool = False
    mutable_content: bool = False
    # Custom keys (APNs) / data (FCM).
    data: dict[str, str] = field(default_factory=dict)
    # Backendless headers: matched by selectors and delivered as custom data.
    headers: dict[str, str] = field(default_factory=dict)
    # Recorded on the message and delivered as the header "publisher_id".
    publisher_id: str = ""
    # Parsed JSON objects merged (RFC 7396) into the rendered payloads.
    apns_json: dict[str, Any] | None = None
    fcm_json: dict[str, Any] | None = None
    ttl: timedelta | None = None
    priority: Priority | None = None
    collapse_key: str = ""
    # Azure: render each registration's template of this name with these properties.
    template_name: str = ""
    template_properties: dict[str, str] = field(default_factory=dict)

    @property
    def has_notification_fields(self) -> bool:
        """True when anything beyond the plain ``message`` shapes the notification."""
        return bool(
            self.title
            or self.body
            or self.subtitle
            or self.badge is not None
            or self.sound
            or self.image_url
            or self.category
            or self.thread_id
            or self.content_available
            or self.mutable_content
            or self.data
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form for storage; ``from_dict`` reverses it."""
        out: dict[str, Any] = {}
        for name in _SCALAR_FIELDS:
            value = getattr(self, name)
            # Identity for False: "0 in (False,)" holds, and badge 0 (clear it) must survive.
            if value is not None and value is not False and value != "":
                out[name] = value
        for name in ("data", "headers", "template_properties"):
            value = getattr(self, name)
            if value:
                out[name] = dict(value)
        if self.apns_json is not None:
            out["apns_json"] = self.apns_json
        if self.fcm_json is not None:
            out["fcm_json"] = self.fcm_json
        if self.ttl is not None:
            out["ttl"] = self.ttl.total_seconds()
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> NotificationContent:
        kwargs: dict[str, Any] = {k: values[k] for k in _SCALAR_FIELDS if k in values}
        for name in ("data", "headers", "template_properties"):
            kwargs[name] = dict(values.get(name) or {})
        kwargs["apns_json"] = values.get("apns_json")
        kwargs["fcm_json"] = values.get("fcm_json")
        ttl = values.get("ttl")
        kwargs["ttl"] = timedelta(seconds=ttl) if ttl is not None else None
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> NotificationContent:
        return cls.from_dict(json.loads(text))


_SCALAR_FIELDS = (
    "message",
    "title",
    "body",
    "subtitle",
    "badge",
    "sound",
    "image_url",
    "category",
    "thread_id",
    "content_available",
    "mutable_content",
    "publisher_id",
    "priority",
    "collapse_key",
    "template_name",
)


# ------------------------------------------------------------------ validation


def parse_json_object(field_name: str, text: str | None) -> dict[str, Any] | None:
    """``apns_json``/``fcm_json``: empty → None; otherwise it must be a JSON object."""
    if text is None or not text.strip():
        return None
    try:
        value = parse_json(text)
    except ValueError as exc:
        raise invalid_field(
            field_name, "INVALID_JSON", f"{field_name} is not valid JSON: {exc}"
        ) from None
    if not isinstance(value, dict):
        raise invalid_field(
            field_name,
            "INVALID_JSON",
            f"{field_name} must be a JSON object, not {_json_kind(value)}",
        )
    return value


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words (a client knows no Python types)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def check_priority(value: str | None) -> Priority | None:
    if value is None or value == "":
        return None
    if value not in PRIORITIES:
        raise invalid_priority()
    return value  # type: ignore[return-value]


def invalid_priority() -> PushHubError:
    """Also for a wire number outside the contract (proto3 enums are open)."""
    return invalid_field(
        "priority", "INVALID_PRIORITY", "priority must be PRIORITY_NORMAL or PRIORITY_HIGH"
    )


def check_ttl(ttl: timedelta | None) -> timedelta | None:
    if ttl is None:
        return None
    if ttl < timedelta(0) or ttl > MAX_TTL:
        raise invalid_field(
            "ttl",
            "INVALID_TTL",
            f"ttl must be between 0 and {int(MAX_TTL.total_seconds())} seconds (28 days)",
            limit=int(MAX_TTL.total_seconds()),
        )
    return ttl


def check_collapse_key(value: str) -> str:
    if len(value.encode()) > COLLAPSE_KEY_BYTES:
        raise value_too_long("collapse_key", COLLAPSE_KEY_BYTES, "bytes")
    # It travels as the apns-collapse-id header: a CR or LF would end that line.
    return check_printable("collapse_key", value)


def check_badge(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_BADGE:
        raise invalid_field(
            "notification.badge", "INVALID_BADGE", "notification.badge must not be negative"
        )
    return value


def check_custom_keys(field_name: str, values: Mapping[str, str]) -> None:
    """Keys of ``notification.data`` and ``headers`` travel as APNs keys and FCM data."""
    for key in values:
        lowered = key.lower()
        if (
            key in APNS_RESERVED_KEYS
            or lowered in FCM_RESERVED_KEYS
            or lowered.startswith(FCM_RESERVED_PREFIXES)
        ):
            raise invalid_field(
                field_name,
                "RESERVED_DATA_KEY",
                f"{field_name} key {key!r} is reserved by APNs or FCM "
                '("aps", "from", "message_type", or a "google"/"gcm" prefix)',
            )


def validate_content(content: NotificationContent) -> NotificationContent:
    """Every field rule that needs no rendering. The size rule is
    ``delivery.payloads.check_publish_size``."""
    check_badge(content.badge)
    check_ttl(content.ttl)
    check_priority(content.priority)
    check_collapse_key(content.collapse_key)
    check_custom_keys("notification.data", content.data)
    check_custom_keys("headers", content.headers)
    return content
