"""core.key_rights: what a device key may do that a server key always may."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.key_rights import actor_of, authorize_fields, require_server
from pushhub_server.core.limits import Limits
from pushhub_server.core.models import DeviceActor, KeyKind, Platform, Principal, RegistrationInput
from pushhub_server.core.registration_rules import RegistrationDraft, validate_draft

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = Limits()
SERVER = Principal("app", "k1", KeyKind.SERVER, "phs_server")
DEVICE = Principal("app", "k2", KeyKind.DEVICE, "phd_device")
ALICE = Principal("app", "k2", KeyKind.DEVICE, "phd_device", user_id="alice")
BAD_TOKEN = Principal("app", "k2", KeyKind.DEVICE, "phd_device", user_token_error="expired")


def draft(**fields) -> RegistrationDraft:
    fields.setdefault("platform", Platform.APNS)
    fields.setdefault("device_token", "a" * 64)
    return RegistrationDraft(**fields)


# ------------------------------------------------------- authorize_fields ----


def item(**fields) -> RegistrationInput:
    return validate_draft(draft(**fields), LIMITS, NOW)


def denied(principal: Principal, **fields) -> PushHubError:
    with pytest.raises(PushHubError) as caught:
        authorize_fields(principal, item(**fields))
    assert caught.value.code is ErrorCode.PERMISSION_DENIED
    return caught.value


def test_server_key_may_set_anything() -> None:
    authorize_fields(SERVER, item(user_id="bob", tags=["user:carol"]))


def test_device_key_without_user_fields_needs_no_token() -> None:
    authorize_fields(DEVICE, item(tags=["public", "users:x"]))
    authorize_fields(BAD_TOKEN, item(tags=["public"]))


def test_device_key_user_id_needs_a_user_token() -> None:
    error = denied(DEVICE, user_id="alice")
    assert (error.reason, error.metadata["field"]) == ("USER_TOKEN_REQUIRED", "user_id")
    assert denied(BAD_TOKEN, user_id="alice").reason == "USER_TOKEN_REQUIRED"
    error = denied(DEVICE, tags=["user:alice"])
    assert (error.reason, error.metadata["field"]) == ("USER_TOKEN_REQUIRED", "tags")


def test_device_key_with_matching_token() -> None:
    authorize_fields(ALICE, item(user_id="alice", tags=["user:alice"]))
    authorize_fields(ALICE, item(tags=["user:alice"]))


def test_mismatch_and_reserved_tags() -> None:
    assert denied(ALICE, user_id="bob").reason == "USER_TOKEN_MISMATCH"
    assert denied(ALICE, tags=["user:bob"]).reason == "RESERVED_TAG"
    assert denied(ALICE, user_id="alice", tags=["user:alice", "user:bob"]).reason == "RESERVED_TAG"


def test_device_actors() -> None:
    assert actor_of(SERVER) is None
    assert actor_of(DEVICE) == DeviceActor(None)
    assert actor_of(ALICE) == DeviceActor("alice")
    assert validate_draft(draft(), LIMITS, NOW, DeviceActor("alice")).device_actor == (
        DeviceActor("alice")
    )
    for actor in (DeviceActor(None), DeviceActor("alice")):
        assert actor.may_take(None), "anonymous registrations are anyone's"
    assert DeviceActor("alice").may_take("alice")
    assert not DeviceActor("alice").may_take("bob")
    assert not DeviceActor(None).may_take("bob")


def test_require_server() -> None:
    require_server(SERVER, "list registrations")
    with pytest.raises(PushHubError) as caught:
        require_server(DEVICE, "list registrations")
    assert (caught.value.code, caught.value.reason) == (
        ErrorCode.PERMISSION_DENIED,
        "SERVER_KEY_REQUIRED",
    )
