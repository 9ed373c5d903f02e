"""AdminService messages ⇄ domain."""

from __future__ import annotations

from pushhub.v1 import admin_pb2

from ...core.errors import invalid_field
from ...core.models import ApiKey, App, KeyKind
from .proto_time import timestamp

_KEY_KINDS = {kind: admin_pb2.ApiKeyKind.Value(f"API_KEY_KIND_{kind.name}") for kind in KeyKind}
_KINDS_BY_PROTO = {value: kind for kind, value in _KEY_KINDS.items()}


def key_kind(value: int) -> KeyKind:
    try:
        return _KINDS_BY_PROTO[value]
    except KeyError:
        raise invalid_field(
            "kind", "INVALID_KEY_KIND", "kind must be API_KEY_KIND_SERVER or API_KEY_KIND_DEVICE"
        ) from None


def app(value: App) -> admin_pb2.App:
    # signing_secret is deliberately not mapped: no RPC returns a stored secret.
    return admin_pb2.App(
        app_id=value.app_id,
        name=value.name,
        create_time=timestamp(value.created_at),
        apns_configured=value.apns_configured,
        fcm_configured=value.fcm_configured,
        web_push_configured=value.web_push_configured,
        web_push_public_key=value.web_push_public_key or "",
        hms_configured=value.hms_configured,
    )


def api_key(value: ApiKey) -> admin_pb2.ApiKey:
    return admin_pb2.ApiKey(
        key_id=value.key_id,
        app_id=value.app_id,
        kind=_KEY_KINDS[value.kind],
        prefix=value.prefix,
        create_time=timestamp(value.created_at),
        revoke_time=timestamp(value.revoked_at) if value.revoked_at else None,
    )
