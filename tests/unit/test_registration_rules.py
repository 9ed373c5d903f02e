"""core.registration_rules: validate_draft, field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pushhub_server.core.errors import ErrorCode, PushHubError, invalid_field
from pushhub_server.core.limits import Limits
from pushhub_server.core.models import Platform, Template
from pushhub_server.core.outbound import OutboundPolicy
from pushhub_server.core.registration_rules import RegistrationDraft, validate_draft

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = Limits()
FCM = Platform.FCM


def draft(**fields) -> RegistrationDraft:
    fields.setdefault("platform", Platform.APNS)
    fields.setdefault("device_token", "a" * 64)
    return RegistrationDraft(**fields)


def refused(**fields) -> PushHubError:
    with pytest.raises(PushHubError) as caught:
        validate_draft(draft(**fields), LIMITS, NOW)
    return caught.value


# --------------------------------------------------------- validate_draft ----


def test_valid_draft_is_normalised() -> None:
    item = validate_draft(
        draft(
            platform=Platform.FCM,
            channels=["b", "a", "b"],
            tags=["x", "x", "y"],
            user_id="",
            selector="",
            metadata={"k": "v"},
            expires_at=NOW + timedelta(seconds=1),
            registration_id="r1",
        ),
        LIMITS,
        NOW,
    )
    assert item.platform is Platform.FCM
    assert item.channels == ("b", "a")
    assert item.tags == ("x", "y")
    assert item.user_id is None and item.selector is None
    assert item.metadata == {"k": "v"}
    assert item.registration_id == "r1"


def test_empty_channels_mean_default() -> None:
    assert validate_draft(draft(), LIMITS, NOW).channels == ("default",)


def test_the_edges_refusal_of_the_platform_fails_the_item_in_its_turn() -> None:
    """The api layer converts the platform; a number it refused is refused here,
    after a conversion error (expires_at) and before every other field."""
    edge = invalid_field("platform", "INVALID_PLATFORM", "platform must be PLATFORM_APNS")
    expiry = invalid_field("expires_at", "VALUE_OUT_OF_RANGE", "too far")
    assert refused(platform=edge, device_token="") is edge
    assert refused(platform=edge, conversion_error=expiry) is expiry


@pytest.mark.parametrize(
    ("fields", "reason", "field", "legacy"),
    [
        ({"device_token": ""}, "FIELD_REQUIRED", "device_token", None),
        ({"device_token": "t" * 4097}, "VALUE_TOO_LONG", "device_token", "8000"),
        ({"registration_id": "r" * 65}, "VALUE_TOO_LONG", "registration_id", "8000"),
        ({"channels": ["c" * 256]}, "VALUE_TOO_LONG", "channels[0]", "8000"),
        ({"channels": ["ok", ""]}, "INVALID_NAME", "channels[1]", None),
        ({"channels": [f"c{i}" for i in range(65)]}, "TOO_MANY_VALUES", "channels", "8000"),
        ({"tags": ["t" * 121]}, "VALUE_TOO_LONG", "tags[0]", "8000"),
        ({"tags": ["white space"]}, "INVALID_TAG", "tags[0]", None),
        ({"tags": [f"t{i}" for i in range(61)]}, "TOO_MANY_VALUES", "tags", "8000"),
        ({"user_id": "u" * 256}, "VALUE_TOO_LONG", "user_id", "8000"),
        ({"expires_at": NOW}, "INVALID_EXPIRATION", "expires_at", "5004"),
        ({"expires_at": NOW - timedelta(days=1)}, "INVALID_EXPIRATION", "expires_at", "5004"),
        ({"metadata": {f"k{i}": "v" for i in range(65)}}, "TOO_MANY_VALUES", "metadata", "8000"),
        ({"metadata": {"k": "v" * 4097}}, "VALUE_TOO_LONG", "metadata[k]", "8000"),
        ({"templates": {"t": Template("nope")}}, "INVALID_TEMPLATE", "templates[t].body", None),
        (
            {"templates": {"t": Template("[" * 2000 + "]" * 2000)}},
            "INVALID_TEMPLATE",
            "templates[t].body",
            None,
        ),
        (
            {"conversion_error": invalid_field("expires_at", "VALUE_OUT_OF_RANGE", "too far")},
            "VALUE_OUT_OF_RANGE",
            "expires_at",
            None,
        ),
        (
            {"templates": {f"t{i}": Template("{}") for i in range(17)}},
            "TOO_MANY_VALUES",
            "templates",
            "8000",
        ),
        ({"selector": "s" * 1025}, "VALUE_TOO_LONG", "selector", "8000"),
        ({"callback_url": "ftp://x"}, "INVALID_URL", "callback_url", None),
        ({"callback_url": "http://hooks.example.com/"}, "INVALID_URL", "callback_url", None),
        ({"callback_url": "https://10.0.0.7/hook"}, "INVALID_URL", "callback_url", None),
        ({"callback_url": "https://u:p@hooks.example.com/"}, "INVALID_URL", "callback_url", None),
        ({"callback_url": "h" * 2049}, "VALUE_TOO_LONG", "callback_url", "8000"),
        (
            {"callback_headers": {f"h{i}": "v" for i in range(33)}},
            "TOO_MANY_VALUES",
            "callback_headers",
            "8000",
        ),
        ({"device_token": "a" * 63}, "INVALID_DEVICE_TOKEN", "device_token", None),
        ({"device_token": "a" * 201}, "VALUE_TOO_LONG", "device_token", "8000"),
        ({"device_token": "g" * 64}, "INVALID_DEVICE_TOKEN", "device_token", None),
        ({"platform": FCM, "device_token": "a b"}, "INVALID_DEVICE_TOKEN", "device_token", None),
        (
            {"callback_headers": {"X-A": "v\r\nX-B: 1"}},
            "INVALID_HEADER",
            "callback_headers[X-A]",
            None,
        ),
        ({"callback_headers": {"X A": "v"}}, "INVALID_HEADER", "callback_headers.key", None),
        (
            {"callback_headers": {"Host": "internal"}},
            "INVALID_HEADER",
            "callback_headers.key",
            None,
        ),
        (
            {"templates": {"t": Template('{"a": "\\udc00"}')}},
            "INVALID_TEMPLATE",
            "templates[t].body",
            None,
        ),
        (
            {"templates": {"t": Template('{"a": NaN}')}},
            "INVALID_TEMPLATE",
            "templates[t].body",
            None,
        ),
    ],
)
def test_each_field_rule(fields: dict, reason: str, field: str, legacy: str | None) -> None:
    error = refused(**fields)
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert error.reason == reason
    assert error.metadata["field"] == field
    assert error.metadata.get("legacy_code") == legacy
    assert [v.field for v in error.violations] == [field]


def test_callback_urls_follow_the_policy_given() -> None:
    url = "http://127.0.0.1:8080/hook"
    assert refused(callback_url=url).message == "callback_url must be an https URL"
    sink = OutboundPolicy.from_list("127.0.0.1:8080")
    validate_draft(draft(callback_url=url), LIMITS, NOW, callback_urls=sink)
    validate_draft(draft(callback_url="https://hooks.example.com/x"), LIMITS, NOW)


def test_limits_are_inclusive() -> None:
    item = validate_draft(
        draft(
            platform=Platform.FCM,
            device_token="t" * 4096,
            channels=["c" * 255],
            tags=[f"{i:0>120}" for i in range(60)],
            user_id="u" * 255,
            metadata={f"k{i}": "v" for i in range(64)},
        ),
        LIMITS,
        NOW,
    )
    assert len(item.tags) == 60


def test_limits_are_configurable() -> None:
    with pytest.raises(PushHubError) as caught:
        validate_draft(draft(platform=FCM, device_token="t" * 11), Limits(device_token=10), NOW)
    assert caught.value.metadata["limit"] == "10"
