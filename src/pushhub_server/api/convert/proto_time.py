"""google.protobuf.Timestamp and Duration ⇄ datetime and timedelta, and their ranges.

A value outside the range its type documents is the client's error, refused as
INVALID_ARGUMENT VALUE_OUT_OF_RANGE naming the field, before any date is built.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message

from ...core.clock import from_micros, to_micros
from ...core.errors import PushHubError, invalid_field

# The ranges google.protobuf.Timestamp and Duration document: a Timestamp from
# 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, nanos 0..999,999,999;
# a Duration within +-315,576,000,000 s (10,000 years), nanos of the seconds' sign.
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
DURATION_SECONDS = 315_576_000_000
MAX_NANOS = 999_999_999


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    set_time(value, moment)
    return value


def set_time(target: timestamp_pb2.Timestamp, moment: datetime) -> None:
    seconds, micros = divmod(to_micros(moment), 1_000_000)
    target.seconds = seconds
    target.nanos = micros * 1000


def to_datetime(value: timestamp_pb2.Timestamp, field_name: str) -> datetime:
    """An aware UTC datetime; sub-microsecond precision is dropped."""
    seconds, nanos = value.seconds, value.nanos
    check_timestamp(field_name, seconds, nanos)
    return from_micros(seconds * 1_000_000 + nanos // 1000)


def to_timedelta(value: duration_pb2.Duration, field_name: str) -> timedelta:
    seconds, nanos = value.seconds, value.nanos
    check_duration(field_name, seconds, nanos)
    # int(): nanos // 1000 would round a negative duration's fraction away from zero.
    return timedelta(seconds=seconds, microseconds=int(nanos / 1000))


def optional_datetime(message: Message, field_name: str) -> datetime | None:
    """A Timestamp field as a datetime, or None when the client left it unset."""
    if not message.HasField(field_name):
        return None
    return to_datetime(getattr(message, field_name), field_name)


def optional_timedelta(message: Message, field_name: str) -> timedelta | None:
    """A Duration field as a timedelta, or None when the client left it unset."""
    if not message.HasField(field_name):
        return None
    return to_timedelta(getattr(message, field_name), field_name)


def check_timestamp(field_name: str, seconds: int, nanos: int) -> None:
    """A google.protobuf.Timestamp within its documented range."""
    first, last = TIMESTAMP_SECONDS
    if not (first <= seconds <= last and 0 <= nanos <= MAX_NANOS):
        raise _out_of_range(
            field_name,
            f"{field_name} must be a Timestamp from 0001-01-01 to 9999-12-31"
            " with nanos from 0 to 999999999",
        )


def check_duration(field_name: str, seconds: int, nanos: int) -> None:
    """A google.protobuf.Duration within its documented range, nanos of the seconds' sign."""
    in_range = -DURATION_SECONDS <= seconds <= DURATION_SECONDS and -MAX_NANOS <= nanos <= MAX_NANOS
    if not in_range or (seconds > 0 > nanos) or (seconds < 0 < nanos):
        raise _out_of_range(
            field_name,
            f"{field_name} must be a Duration within 315576000000 seconds, with nanos"
            " from -999999999 to 999999999 and of the same sign as seconds",
        )


def _out_of_range(field_name: str, message: str) -> PushHubError:
    return invalid_field(field_name, "VALUE_OUT_OF_RANGE", message)
