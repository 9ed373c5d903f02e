"""api.convert.proto_time: Timestamp and Duration ranges, refused at the edge."""

from __future__ import annotations

import pytest

from pushhub_server.api.convert.proto_time import (
    DURATION_SECONDS,
    TIMESTAMP_SECONDS,
    check_duration,
    check_timestamp,
)
from pushhub_server.core.errors import ErrorCode, PushHubError


def _error(call, *args) -> PushHubError:
    with pytest.raises(PushHubError) as caught:
        call(*args)
    error = caught.value
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert error.reason.isupper() and " " not in error.reason
    assert [v.field for v in error.violations] == [error.metadata["field"]]
    return error


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(TIMESTAMP_SECONDS[0], 0), (TIMESTAMP_SECONDS[1], 999_999_999), (0, 0), (1, 500)],
)
def test_timestamps_within_the_proto_range(seconds: int, nanos: int) -> None:
    check_timestamp("publish_at", seconds, nanos)


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (0, -1),
        (0, 1_000_000_000),
        (0, 2_000_000_000),
        (TIMESTAMP_SECONDS[0] - 1, 0),
        (TIMESTAMP_SECONDS[1] + 1, 0),
        (2**63 - 1, 0),
    ],
)
def test_timestamps_outside_the_proto_range(seconds: int, nanos: int) -> None:
    error = _error(check_timestamp, "publish_at", seconds, nanos)
    assert (error.reason, error.metadata["field"]) == ("VALUE_OUT_OF_RANGE", "publish_at")


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(DURATION_SECONDS, 999_999_999), (-DURATION_SECONDS, -999_999_999), (0, -5), (0, 5), (3, 0)],
)
def test_durations_within_the_proto_range(seconds: int, nanos: int) -> None:
    check_duration("ttl", seconds, nanos)


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (DURATION_SECONDS + 1, 0),
        (-DURATION_SECONDS - 1, 0),
        (0, 1_000_000_000),
        (0, -1_000_000_000),
        (5, -1),
        (-5, 1),
        (2**63 - 1, 0),
    ],
)
def test_durations_outside_the_proto_range(seconds: int, nanos: int) -> None:
    error = _error(check_duration, "ttl", seconds, nanos)
    assert (error.reason, error.metadata["field"]) == ("VALUE_OUT_OF_RANGE", "ttl")
