"""core.ids: time-ordered UUIDv7 identifiers."""

from __future__ import annotations

import time
import uuid

import pytest

from pushhub_server.core import ids
from pushhub_server.core.ids import new_id, new_ids


def test_uuid_version_7_and_variant() -> None:
    for value in new_ids(1000):
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value


def test_unique() -> None:
    ids = new_ids(20_000)
    assert len(set(ids)) == len(ids)


def test_time_prefix_is_now_and_orders_across_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    first = new_id()
    after = time.time_ns() // 1_000_000
    millis = uuid.UUID(first).int >> 80
    assert before <= millis <= after
    time.sleep(0.002)
    second = new_id()
    assert second > first, "string order follows time order"


def test_each_call_sorts_after_the_previous_even_within_a_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lists ordered by id follow creation order (RFC 9562's monotonic counter)."""
    frozen = time.time_ns() + 10**9  # ahead of any id made so far, and standing still
    monkeypatch.setattr(time, "time_ns", lambda: frozen)
    monkeypatch.setattr(ids, "_last_stamp", ids._last_stamp)  # restored afterwards
    made = [new_ids(3) for _ in range(5000)]  # more calls than one millisecond's 4,096
    flat = [value for batch in made for value in batch]
    assert flat == sorted(flat)
    assert len(set(flat)) == len(flat)
    millis = {uuid.UUID(batch[0]).int >> 80 for batch in made}
    assert millis == {frozen // 1_000_000, frozen // 1_000_000 + 1}  # borrowed the next one
