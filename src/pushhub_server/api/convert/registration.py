"""DeviceRegistrationService messages ⇄ domain.

RegisterDevices converts up to 1,000 items per message, so the per-item paths
avoid needless copies and conversions (timestamps go through integer math).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pushhub.v1 import registration_pb2

from ...core.errors import PushHubError
from ...core.models import CleanupTarget, Registration, RegistrationFilter, Template
from ...core.registration_rules import RegistrationDraft
from ...core.registration_tracking import RegisterOutcome
from ...core.web_push import WebPushKeys
from .common import optional_platform, platform_number, platform_or_refusal
from .proto_time import optional_datetime, set_time


def draft(request: registration_pb2.RegisterDeviceRequest) -> RegistrationDraft:
    # Repeated fields pass through as sequences (core copies what it keeps), and
    # empty maps skip their copy: most bulk items carry none, and each copy costs.
    expires_at, conversion_error = _expiry(request)
    return RegistrationDraft(
        platform=platform_or_refusal(request.platform),
        device_token=request.device_token,
        registration_id=request.registration_id,
        channels=request.channels,
        tags=request.tags,
        user_id=request.user_id,
        expires_at=expires_at,
        metadata=dict(request.metadata) if request.metadata else {},
        templates=_templates(request.templates) if request.templates else {},
        selector=request.selector,
        track=request.track,
        callback_url=request.callback_url,
        callback_headers=dict(request.callback_headers) if request.callback_headers else {},
        conversion_error=conversion_error,
        web_push_keys=_web_push_keys(request),
    )


def _web_push_keys(request: registration_pb2.RegisterDeviceRequest) -> WebPushKeys | None:
    """None when the client sent no web_push_keys (core requires them for Web Push)."""
    if not request.HasField("web_push_keys"):
        return None
    keys = request.web_push_keys
    return WebPushKeys(keys.p256dh, keys.auth)


def _expiry(
    request: registration_pb2.RegisterDeviceRequest,
) -> tuple[datetime | None, PushHubError | None]:
    """expires_at, or the error converting it: the item's own, so it fails that item only."""
    try:
        return optional_datetime(request, "expires_at"), None
    except PushHubError as error:
        return None, error


def _templates(templates: Mapping[str, registration_pb2.Template]) -> dict[str, Template]:
    return {name: Template(value.body, tuple(value.tags)) for name, value in templates.items()}


# Responses are filled in place: building sub-messages and passing them to a
# constructor copies each one, which made RegisterDevices results 4x slower.


def fill_registration(target: registration_pb2.Registration, value: Registration) -> None:
    target.registration_id = value.registration_id
    target.platform = platform_number(value.platform)
    target.device_token = value.device_token
    target.channels.extend(value.channels)
    target.tags.extend(value.tags)
    if value.user_id:
        target.user_id = value.user_id
    if value.expires_at is not None:
        set_time(target.expires_at, value.expires_at)
    if value.metadata:
        target.metadata.update(value.metadata)
    for name, template in value.templates.items():
        target.templates[name].body = template.body
        target.templates[name].tags.extend(template.tags)
    if value.selector:
        target.selector = value.selector
    set_time(target.create_time, value.created_at)
    set_time(target.update_time, value.updated_at)
    target.channel_registration_ids.update(value.channel_registration_ids)
    if value.web_push_keys is not None:
        target.web_push_keys.p256dh = value.web_push_keys.p256dh
        target.web_push_keys.auth = value.web_push_keys.auth


def fill_register_response(
    target: registration_pb2.RegisterDeviceResponse, outcome: RegisterOutcome
) -> None:
    stored = outcome.result.registration
    fill_registration(target.registration, stored)
    target.channel_registration_ids.update(stored.channel_registration_ids)
    if outcome.request_id:
        target.request_id = outcome.request_id


def registration_filter(request: registration_pb2.ListRegistrationsRequest) -> RegistrationFilter:
    platform = optional_platform(request.platform)  # unspecified: any platform
    if isinstance(platform, PushHubError):
        raise platform
    return RegistrationFilter(
        user_id=request.user_id or None,
        channel=request.channel or None,
        tag=request.tag or None,
        platform=platform,
    )


def tag_update_filter(request: registration_pb2.UpdateTagsRequest) -> RegistrationFilter:
    return RegistrationFilter(user_id=request.user_id or None, tag=request.tag or None)


def cleanup_targets(request: registration_pb2.CleanupDevicesRequest) -> list[CleanupTarget]:
    return [CleanupTarget(t.user_id, t.device_token or None) for t in request.targets]
