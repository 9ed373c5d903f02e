"""PayloadRenderer: one published message rendered for every platform, per recipient.

APNs, FCM and Web Push go through the pieces below; Web Push's body is the
plaintext JSON (webpush.py), which its provider encrypts per subscription, and
its headers (TTL, Urgency, Topic) are one mapping per message. HMS payloads
are hms.HmsPayloads', which shares one body among the recipients of a multicast.

Cost model (a fan-out reaches 1,000,000 recipients at 50,000/s): everything that
does not depend on the recipient is built once per message and platform, and
serialized once, with sentinels where recipient values go. The serialized JSON is
split at those sentinels into byte pieces, so a recipient costs one join:

- APNs without ``{{name}}``: the body is the same ``bytes`` object for everyone,
  and so is the headers dict.
- FCM: the device token is spliced between two pieces.
- ``{{name}}`` in ``message``: the filled, JSON-escaped text is spliced in.
- Templates: rendered once per distinct body and cached (templates.py), so
  registrations sharing a template share its pieces.

The shapes are apns.py's and fcm.py's; sizes are counted as size.py says: for FCM
the token is not counted, so ``check_publish_size`` is exact for every recipient
whose ``message`` has no ``{{name}}``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from types import MappingProxyType

from pushhub_server.core.errors import PushHubError
from pushhub_server.core.models import Platform, Template
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.templates import MessageTemplate, compile_message, template_error

from . import apns, fcm, hms, webpush
from .content import check_content
from .hms import HMS_PAYLOAD_LIMIT, HmsPayloads
from .json_text import dumps
from .size import PAYLOAD_LIMIT, payload_too_large
from .templates import TEMPLATE_CACHE_SIZE, remember, template_object

# Looked up once: an enum member read through its class costs a lookup per recipient.
_HMS = Platform.HMS
# FCM requests carry no per-payload headers.
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

# Recipient slots in the serialized JSON. Random per process, so no content can
# contain them by accident; plain ASCII, so JSON serializes them verbatim.
_TOKEN_SENTINEL = f"@@pushhub-token-{secrets.token_hex(8)}@@"
_MESSAGE_SENTINEL = f"@@pushhub-message-{secrets.token_hex(8)}@@"
_SLOT_SPLIT = re.compile(f"({re.escape(_TOKEN_SENTINEL)}|{re.escape(_MESSAGE_SENTINEL)})")
_TOKEN, _MESSAGE = 0, 1


@dataclass(frozen=True, slots=True)
class RenderedPayload:
    """One request's body, and its headers (APNs only; empty for FCM)."""

    body: bytes
    headers: Mapping[str, str]


_PLATFORM_NAMES = {
    Platform.APNS: "APNs",
    Platform.FCM: "FCM",
    Platform.WEB_PUSH: "Web Push",
    Platform.HMS: "HMS",
}


def _platform_name(platform: Platform) -> str:
    return _PLATFORM_NAMES[platform]


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
        "limit",
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
        self.limit = limit
        self._token_only = self.slots == (_TOKEN,)
        if self.fixed_size > limit:
            raise payload_too_large(field_name, _platform_name(platform), self.fixed_size, limit)

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
        self._expiration = apns.apns_expiration(content.ttl, self._now)
        self._standard: dict[Platform, _Prepared | _Failed] = {}
        self._templates: dict[tuple[Platform, str], _Prepared | _Failed] = {}
        self._template_cache_size = template_cache_size
        self._webpush_headers = webpush.webpush_headers(
            content.ttl, content.priority, content.collapse_key
        )
        self._hms: HmsPayloads | None = None

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
        if platform is _HMS:
            return self._hms_payloads().render(metadata, templates), _NO_HEADERS
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
                if size > prepared.limit:
                    # Only the standard payload has message slots; templates use properties.
                    raise payload_too_large(
                        self._field, _platform_name(platform), size, prepared.limit
                    )
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

    def _hms_payloads(self) -> HmsPayloads:
        if self._hms is None:
            self._hms = HmsPayloads(self.content, limit=min(self.limit, HMS_PAYLOAD_LIMIT))
        return self._hms

    @property
    def _webpush_limit(self) -> int:
        return min(self.limit, webpush.PLAINTEXT_LIMIT)

    # ------------------------------------------------------- standard payloads

    def _prepare_standard(self, platform: Platform) -> _Prepared | _Failed:
        content = self.content
        try:
            check_content(content)
            if platform is Platform.APNS:
                payload = apns.apns_payload(content, self._message_value)
                headers = apns.apns_headers(content, payload, self._expiration)
                prepared: _Prepared | _Failed = _Prepared(
                    platform, dumps(payload), headers, self._field, self.limit
                )
            elif platform is Platform.WEB_PUSH:
                text = dumps(webpush.webpush_payload(content, self._message_value))
                prepared = _Prepared(
                    platform, text, self._webpush_headers, self._field, self._webpush_limit
                )
            else:
                message = fcm.fcm_message(
                    content, _TOKEN_SENTINEL, self._message_value, self._expiration
                )
                prepared = _Prepared(
                    platform, dumps({"message": message}), _NO_HEADERS, self._field, self.limit
                )
        except Exception as error:  # noqa: BLE001 - kept for every recipient (see _Failed)
            prepared = _Failed(error)
        self._standard[platform] = prepared
        return prepared

    # ------------------------------------------------------------- templates

    def _template(self, platform: Platform, body: str) -> _Prepared | _Failed:
        key = (platform, body)
        prepared = self._templates.get(key)
        if prepared is None:
            prepared = remember(
                self._templates,
                key,
                self._prepare_template(platform, body),
                self._template_cache_size,
            )
        return prepared

    def _prepare_template(self, platform: Platform, body: str) -> _Prepared | _Failed:
        content = self.content
        try:
            value = template_object(content, body)
            if platform is Platform.APNS:
                payload = apns.apns_template_payload(content, value)
                headers = apns.apns_headers(content, payload, self._expiration)
                return _Prepared(platform, dumps(payload), headers, "template_name", self.limit)
            if platform is Platform.WEB_PUSH:
                # The rendered template is the object the service worker reads.
                return _Prepared(
                    platform,
                    dumps(value),
                    self._webpush_headers,
                    "template_name",
                    self._webpush_limit,
                )
            message = fcm.fcm_template_message(content, value, _TOKEN_SENTINEL, self._expiration)
            return _Prepared(
                platform, dumps({"message": message}), _NO_HEADERS, "template_name", self.limit
            )
        except PushHubError as error:
            return _Failed(error)
        except (UnicodeError, ValueError):
            # A lone surrogate (no UTF-8 for it) or a number JSON cannot hold.
            return _Failed(
                template_error(
                    f"template {content.template_name!r} renders text JSON cannot carry",
                    "template_name",
                )
            )
        except Exception as error:  # noqa: BLE001 - kept for every recipient (see _Failed)
            return _Failed(error)


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
    platforms: Iterable[Platform] = (),
    *,
    limit: int = PAYLOAD_LIMIT,
    now: datetime | None = None,
) -> None:
    """Publish-time check: render a representative payload for each platform the
    message can reach (a payload too large for FCM must not refuse an APNs-only
    publish).

    No platforms means any: APNs and FCM are checked, Web Push and HMS only when
    named. Their payloads run a little larger (HMS's click_action) or their limit
    smaller (one aes128gcm record: 3,993 bytes), and a publish that fitted every
    platform before they existed must still be accepted; a Web Push or HMS
    recipient of a payload over its limit then fails alone, as PAYLOAD_TOO_LARGE.

    ``{{name}}`` placeholders render empty (the smallest any recipient can get), so a
    message rejected here would fail for every recipient. Registration templates are
    unknown at publish time; the standard rendering, which registrations without the
    template receive, is what is checked. Also raises the other rendering errors
    (reserved data keys, a bad ``fcm_json``, an over-long collapse key).
    """
    renderer = PayloadRenderer(content, now=now, limit=limit)
    for platform in platforms or _ANY_PLATFORM:
        renderer.render(platform, "", {})


# What a publish that names no platform is checked for (check_publish_size).
_ANY_PLATFORM = (Platform.APNS, Platform.FCM)


def dry_run_payload(platform: Platform, device_token: str) -> RenderedPayload:
    """What a registration's dry run sends, to be sent with ``validate_only``: for
    APNs a silent background push (apns.py), for FCM a data message (fcm.py), for
    HMS a data message (hms.py), for Web Push an empty object that is encrypted and
    never posted (webpush.py)."""
    if platform is Platform.APNS:
        return RenderedPayload(apns.DRY_RUN_BODY, apns.dry_run_headers())
    if platform is Platform.HMS:
        return RenderedPayload(hms.DRY_RUN_BODY, _NO_HEADERS)
    if platform is Platform.WEB_PUSH:
        return RenderedPayload(webpush.DRY_RUN_BODY, _DRY_RUN_WEBPUSH_HEADERS)
    return RenderedPayload(fcm.dry_run_body(device_token), _NO_HEADERS)


_DRY_RUN_WEBPUSH_HEADERS = webpush.webpush_headers(None, None, "")
