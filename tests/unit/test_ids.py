"""core.ids: time-ordered UUIDv7 identifiers."""

from __future__ import annotations

import time
import uuid

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
