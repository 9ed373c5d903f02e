"""The largest request each RPC accepts, derived from core.limits (docs/admission.md).

Each limit is the size of the largest valid request, built field by field from
the limits and serialized: a character limit allows 4 UTF-8 bytes per character
where any text is valid, 1 where only ASCII is (tags, device tokens). So they
move with the limits. Two requests would be absurd that way, and have limits of
their own: a registration (registration_bytes, instead of ~500 KB) and a
RegisterDevices message (batch_bytes). Text that only reaches the providers'
payloads (the notification, apns_json, fcm_json) is bounded by four times the
payload limit each; a service account or an APNs key by CREDENTIALS_BYTES. No
method accepts less than MIN_REQUEST_BYTES (room for fields of newer clients).
"""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.descriptor import FileDescriptor

from pushhub.v1 import admin_pb2, publish_pb2, registration_pb2, status_pb2

from ..core.limits import Limits
from ..core.notifications import COLLAPSE_KEY_BYTES
from ..core.pagination import encode_cursor
from .convert.proto_time import DURATION_SECONDS, MAX_NANOS, TIMESTAMP_SECONDS

MIN_REQUEST_BYTES = 4 * 1024
# A Firebase service account with a 16384-bit RSA key is about 15 KB.
CREDENTIALS_BYTES = 64 * 1024
# Any varint field at its widest (a negative enum or int32 takes ten bytes).
_WIDEST = -1
_LATEST = timestamp_pb2.Timestamp(seconds=TIMESTAMP_SECONDS[1], nanos=MAX_NANOS)
_LONGEST = duration_pb2.Duration(seconds=DURATION_SECONDS, nanos=MAX_NANOS)


def request_limits(limits: Limits) -> dict[str, int]:
    """Full method name ("/pushhub.v1.PublishService/Publish") → its largest request."""
    sizes = {
        **_registration_requests(limits),
        **_publish_requests(limits),
        **_status_requests(limits),
        **_admin_requests(limits),
    }
    return {method: max(size, MIN_REQUEST_BYTES) for method, size in sizes.items()}


def _text(characters: int) -> str:
    """Text of any script: four UTF-8 bytes a character."""
    return "\U0001f600" * characters


def _ascii(characters: int) -> str:
    return "a" * characters


def _methods(module_descriptor: FileDescriptor, service: str, sizes: dict[str, int]) -> dict:
    full_name = module_descriptor.services_by_name[service].full_name
    return {f"/{full_name}/{method}": size for method, size in sizes.items()}


def _registration_requests(limits: Limits) -> dict[str, int]:
    reg = registration_pb2
    reg_id = _text(limits.registration_id)
    page_token = encode_cursor(_ascii(limits.registration_id), _text(1000))
    target = reg.CleanupTarget(
        user_id=_text(limits.user_id), device_token=_ascii(limits.device_token)
    )
    tags = [_ascii(limits.tag)] * limits.tag_update_values
    sizes = {
        "CreateRegistrationId": 0,
        "RegisterDevice": limits.registration_bytes,
        "RegisterDevices": limits.batch_bytes,
        "GetRegistration": reg.GetRegistrationRequest(registration_id=reg_id).ByteSize(),
        "ListRegistrations": reg.ListRegistrationsRequest(
            user_id=_text(limits.user_id),
            channel=_text(limits.channel_name),
            tag=_text(limits.tag),
            platform=_WIDEST,
            page_size=_WIDEST,
            page_token=page_token,
        ).ByteSize(),
        "UpdateTags": reg.UpdateTagsRequest(
            registration_id=reg_id,
            user_id=_text(limits.user_id),
            tag=_text(limits.tag),
            add_tags=tags,
            remove_tags=tags,
        ).ByteSize(),
        "UnregisterDevice": reg.UnregisterDeviceRequest(
            registration_id=reg_id, platform=_WIDEST, device_token=_ascii(limits.device_token)
        ).ByteSize(),
        "CleanupDevices": reg.CleanupDevicesRequest(
            targets=[target] * limits.cleanup_targets
        ).ByteSize(),
    }
    return _methods(reg.DESCRIPTOR, "DeviceRegistrationService", sizes)


def _publish_requests(limits: Limits) -> dict[str, int]:
    payload_text = _text(limits.payload_bytes)
    request = publish_pb2.PublishRequest(
        channel=_text(limits.channel_name),
        broadcast=True,
        message=_text(limits.message),
        headers=_map(limits.headers, limits.header_key, limits.header_value),
        publisher_id=_text(limits.publisher_id),
        publish_at=_LATEST,
        repeat_every=_LONGEST,
        repeat_expires_at=_LATEST,
        tag_expression=_text(limits.tag_expression),
        user_ids=[_text(limits.user_id)] * limits.publish_targets,
        registration_ids=[_text(limits.registration_id)] * limits.publish_targets,
        platforms=[_WIDEST] * limits.publish_targets,
        template_name=_text(limits.template_name),
        template_properties=_map(
            limits.template_properties, limits.template_name, limits.header_value
        ),
        apns_json=payload_text,
        fcm_json=payload_text,
        ttl=_LONGEST,
        priority=_WIDEST,
        collapse_key=_ascii(COLLAPSE_KEY_BYTES),
        request_id=_text(limits.request_id),
    )
    # The notification ends up in the payloads: all of its text together.
    sizes = {
        "Publish": request.ByteSize() + 4 * limits.payload_bytes + 64,
        "CancelMessage": publish_pb2.CancelMessageRequest(
            message_id=_text(limits.registration_id)
        ).ByteSize(),
    }
    return _methods(publish_pb2.DESCRIPTOR, "PublishService", sizes)


def _map(entries: int, key: int, value: int) -> dict[str, str]:
    # Distinct keys of the full length: the digits replace the first characters.
    return {str(index) + _text(key - len(str(index))): _text(value) for index in range(entries)}


def _status_requests(limits: Limits) -> dict[str, int]:
    message_id = _text(limits.registration_id)
    sizes = {
        "GetMessageStatus": status_pb2.GetMessageStatusRequest(message_id=message_id).ByteSize(),
        "WatchMessageStatus": status_pb2.WatchMessageStatusRequest(
            message_id=message_id
        ).ByteSize(),
        "GetRegistrationStatus": status_pb2.GetRegistrationStatusRequest(
            request_ids=[_text(limits.registration_id)] * limits.request_ids
        ).ByteSize(),
    }
    return _methods(status_pb2.DESCRIPTOR, "StatusService", sizes)


def _admin_requests(limits: Limits) -> dict[str, int]:
    # App and key ids are the server's own (36 characters); a registration id's
    # limit is room enough for them.
    app_id = _text(limits.registration_id)
    sizes = {
        "CreateApp": admin_pb2.CreateAppRequest(name=_text(255)).ByteSize(),
        "ListApps": admin_pb2.ListAppsRequest(
            page_size=_WIDEST, page_token=encode_cursor(_text(limits.registration_id), "apps")
        ).ByteSize(),
        "DeleteApp": admin_pb2.DeleteAppRequest(app_id=app_id).ByteSize(),
        "CreateApiKey": admin_pb2.CreateApiKeyRequest(app_id=app_id, kind=_WIDEST).ByteSize(),
        "ListApiKeys": admin_pb2.ListApiKeysRequest(app_id=app_id).ByteSize(),
        "RevokeApiKey": admin_pb2.RevokeApiKeyRequest(app_id=app_id, key_id=app_id).ByteSize(),
        "SetApnsCredentials": CREDENTIALS_BYTES,
        "SetFcmCredentials": CREDENTIALS_BYTES,
        "SetWebPushCredentials": CREDENTIALS_BYTES,
        "SetHmsCredentials": CREDENTIALS_BYTES,
        "IssueUserToken": admin_pb2.IssueUserTokenRequest(
            app_id=app_id, user_id=_text(limits.user_id), ttl=_LONGEST
        ).ByteSize(),
    }
    return _methods(admin_pb2.DESCRIPTOR, "AdminService", sizes)
