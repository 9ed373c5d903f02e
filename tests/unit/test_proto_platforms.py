"""api.convert.common: the one table between the contract's Platform numbers and core's."""

from __future__ import annotations

import pytest

from pushhub.v1 import common_pb2
from pushhub_server.api.convert.common import (
    optional_platform,
    platform_number,
    platform_or_refusal,
    platforms_or_refusals,
)
from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.models import Platform

CONTRACT = {
    number for number in common_pb2.Platform.values() if number != common_pb2.PLATFORM_UNSPECIFIED
}


def test_every_platform_both_sides_know_is_mapped_both_ways() -> None:
    """A platform added to core or to the contract alone fails here."""
    assert {platform_number(platform) for platform in Platform} == CONTRACT
    for number in CONTRACT:
        assert platform_number(platform_or_refusal(number)) == number  # type: ignore[arg-type]


def test_the_contract_names() -> None:
    assert platform_or_refusal(common_pb2.PLATFORM_APNS) is Platform.APNS
    assert platform_or_refusal(common_pb2.PLATFORM_FCM) is Platform.FCM
    assert platform_or_refusal(common_pb2.PLATFORM_WEB_PUSH) is Platform.WEB_PUSH
    assert platform_or_refusal(common_pb2.PLATFORM_HMS) is Platform.HMS


@pytest.mark.parametrize("number", [0, 5, -1, 99, 2**31 - 1])
def test_any_other_number_is_refused(number: int) -> None:
    refusal = platform_or_refusal(number)
    assert isinstance(refusal, PushHubError)
    assert (refusal.code, refusal.reason) == (ErrorCode.INVALID_ARGUMENT, "INVALID_PLATFORM")
    assert refusal.metadata["field"] == "platform"
    assert refusal.message == (
        "platform must be PLATFORM_APNS, PLATFORM_FCM, PLATFORM_WEB_PUSH or PLATFORM_HMS"
    )


def test_unspecified_may_mean_any_platform() -> None:
    assert optional_platform(0) is None
    assert optional_platform(common_pb2.PLATFORM_FCM) is Platform.FCM
    refusal = optional_platform(7)
    assert isinstance(refusal, PushHubError) and refusal.reason == "INVALID_PLATFORM"


def test_a_list_names_each_refused_entry() -> None:
    entries = platforms_or_refusals([common_pb2.PLATFORM_APNS, 0, 9], "platforms")
    assert entries[0] is Platform.APNS
    assert [entry.metadata["field"] for entry in entries[1:]] == ["platforms[1]", "platforms[2]"]
