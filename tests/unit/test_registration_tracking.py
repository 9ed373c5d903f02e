"""core.registration_tracking: the failure reason a tracked request records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pushhub_server.core.errors import PushHubError, invalid_field, value_too_long
from pushhub_server.core.key_rights import authorize_fields
from pushhub_server.core.limits import Limits
from pushhub_server.core.models import (
    FailureReason,
    KeyKind,
    Platform,
    Principal,
    RegistrationInput,
)
from pushhub_server.core.registration_rules import RegistrationDraft, validate_draft
from pushhub_server.core.registration_tracking import failure_reason_for

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DEVICE = Principal("app", "k2", KeyKind.DEVICE, "phd_device")
ALICE = Principal("app", "k2", KeyKind.DEVICE, "phd_device", user_id="alice")
BAD_TOKEN = Principal("app", "k2", KeyKind.DEVICE, "phd_device", user_token_error="expired")


def item(**fields) -> RegistrationInput:
    draft = RegistrationDraft(platform=Platform.APNS, device_token="a" * 64, **fields)
    return validate_draft(draft, Limits(), NOW)


def test_failure_reasons() -> None:
    assert failure_reason_for(value_too_long("device_token", 4096)) is (
        FailureReason.DEVICE_TOKEN_TOO_LONG
    )
    assert (
        failure_reason_for(value_too_long("user_id", 255)) is FailureReason.FAILED_TO_STORE_DEVICE
    )
    for principal in (DEVICE, BAD_TOKEN):
        with pytest.raises(PushHubError) as caught:
            authorize_fields(principal, item(user_id="alice"))
        assert failure_reason_for(caught.value) is FailureReason.API_TOKEN_NOT_VALID
    with pytest.raises(PushHubError) as caught:
        authorize_fields(ALICE, item(user_id="bob"))
    assert failure_reason_for(caught.value) is FailureReason.API_TOKEN_NOT_VALID
    other = invalid_field("tags[0]", "INVALID_TAG", "bad tag")
    assert failure_reason_for(other) is FailureReason.FAILED_TO_STORE_DEVICE
