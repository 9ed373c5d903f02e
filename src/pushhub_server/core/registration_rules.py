"""The rules a registration obeys as a client sends it, before anything is stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .device_tokens import check_device_token
from .errors import PushHubError, accepted, invalid_field, required
from .json_documents import parse_json
from .limits import Limits
from .models import DeviceActor, Platform, RegistrationInput, Template
from .outbound import OutboundPolicy, OutboundRefused
from .selector import check_selector
from .validation import (
    check_count,
    check_future,
    check_http_headers,
    check_map,
    check_name,
    check_tag,
    check_tags,
    check_text,
    is_valid_name,
)
from .web_push import WebPushKeys, subscription_keys
from .web_push_endpoints import EndpointPolicy

DEFAULT_CHANNEL = "default"
# Callback URLs when the operator lists no allowed hosts: https to public names only.
STRICT_CALLBACKS = OutboundPolicy()
# Web Push endpoints when the operator lists no hosts: the push services only.
PUSH_SERVICES_ONLY = EndpointPolicy()


@dataclass(frozen=True)
class RegistrationDraft:
    """A RegisterDevice item as the client sent it, before validation."""

    # Or the api layer's refusal of the number the client sent.
    platform: Platform | PushHubError
    device_token: str
    registration_id: str = ""
    channels: Sequence[str] = ()
    tags: Sequence[str] = ()
    user_id: str = ""
    expires_at: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    selector: str = ""
    track: bool = False
    callback_url: str = ""
    callback_headers: dict[str, str] = field(default_factory=dict)
    # Web Push only; None when the client sent none.
    web_push_keys: WebPushKeys | None = None
    # A field the api layer could not convert (a timestamp beyond any date):
    # validation reports it, so it fails this item alone, tracked like any other.
    conversion_error: PushHubError | None = None


def validate_draft(
    draft: RegistrationDraft,
    limits: Limits,
    now: datetime,
    device_actor: DeviceActor | None = None,
    callback_urls: OutboundPolicy = STRICT_CALLBACKS,
    web_push_endpoints: EndpointPolicy = PUSH_SERVICES_ONLY,
) -> RegistrationInput:
    if draft.conversion_error is not None:
        raise draft.conversion_error
    platform = accepted(draft.platform)
    if not draft.device_token:
        raise required("device_token")
    device_token = check_device_token(
        "device_token", platform, draft.device_token, limits.device_token
    )
    _check_web_push(platform, device_token, draft.web_push_keys, web_push_endpoints)
    if draft.registration_id:
        check_text("registration_id", draft.registration_id, limits.registration_id)
    channels = tuple(dict.fromkeys(draft.channels)) or (DEFAULT_CHANNEL,)
    check_count("channels", channels, limits.channels_per_registration)
    for index, channel in enumerate(channels):
        # Name the field only for a failing channel (see check_tags).
        if not is_valid_name(channel, limits.channel_name):
            check_name(f"channels[{index}]", channel, limits.channel_name)
    tags = check_tags("tags", draft.tags, limits.tag, limits.tags_per_registration)
    check_text("user_id", draft.user_id, limits.user_id)
    if draft.expires_at is not None:
        check_future("expires_at", draft.expires_at, now, "5004", "INVALID_EXPIRATION")
    metadata = check_map(
        "metadata", draft.metadata, limits.metadata_keys, limits.metadata_key, limits.metadata_value
    )
    if draft.templates:
        _check_templates(draft.templates, limits)
    check_text("selector", draft.selector, limits.selector)
    if draft.selector:
        # Parsed now so a bad selector fails at registration, naming its position.
        check_selector(draft.selector, "selector", limits.selector)
    check_callback(draft, limits, callback_urls)
    return RegistrationInput(
        platform=platform,
        device_token=device_token,
        channels=channels,
        tags=tags,
        user_id=draft.user_id or None,
        expires_at=draft.expires_at,
        metadata=metadata,
        templates=dict(draft.templates) if draft.templates else {},
        selector=draft.selector or None,
        registration_id=draft.registration_id or None,
        web_push_keys=draft.web_push_keys if platform is Platform.WEB_PUSH else None,
        device_actor=device_actor,
    )


def _check_web_push(
    platform: Platform, endpoint: str, keys: WebPushKeys | None, endpoints: EndpointPolicy
) -> None:
    """A Web Push registration's endpoint may be sent to and its keys encrypted to;
    the other platforms carry no keys."""
    if platform is not Platform.WEB_PUSH:
        if keys is not None:
            raise invalid_field(
                "web_push_keys",
                "WEB_PUSH_KEYS_NOT_ALLOWED",
                "web_push_keys is for Web Push registrations only",
            )
        return
    # No DNS here: the addresses are checked at send time (delivery.address_guard).
    endpoints.check(endpoint)
    if keys is None:
        raise required("web_push_keys")
    subscription_keys(keys)


def _check_templates(templates: dict[str, Template], limits: Limits) -> None:
    check_count("templates", templates, limits.templates_per_registration)
    for name, template in templates.items():
        check_name("templates.key", name, limits.template_name)
        check_text(f"templates[{name}].body", template.body, limits.template_body)
        try:
            parse_json(template.body)
        except ValueError as error:
            raise invalid_field(
                f"templates[{name}].body",
                "INVALID_TEMPLATE",
                f"template {name!r} is not JSON: {error}",
            ) from None
        check_tags(
            f"templates[{name}].tags", template.tags, limits.tag, limits.tags_per_registration
        )


def check_callback(draft: RegistrationDraft, limits: Limits, urls: OutboundPolicy) -> None:
    if draft.callback_url:
        check_text("callback_url", draft.callback_url, limits.callback_url)
        try:
            # What can be refused before any DNS lookup; the addresses are checked
            # at send time (delivery.address_guard).
            urls.destination(draft.callback_url)
        except OutboundRefused as refused:
            raise invalid_field("callback_url", "INVALID_URL", f"callback_url {refused}") from None
    check_http_headers(
        "callback_headers", draft.callback_headers, limits.callback_headers, limits.callback_header
    )


def check_lookup(limits: Limits, **values: str | None) -> None:
    """Values used only to look rows up obey the rules of the values they look up:
    a filter that cannot match anything stored is refused, not answered empty."""
    for name, value in values.items():
        if not value:
            continue
        if name == "tag":
            check_tag(name, value, limits.tag)
        elif name == "channel":
            check_name(name, value, limits.channel_name)
        elif name == "user_id":
            check_text(name, value, limits.user_id)
        else:  # registration_id, request_id
            check_text(name, value, limits.registration_id)
