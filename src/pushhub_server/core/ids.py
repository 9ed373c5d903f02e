"""Time-ordered identifiers (UUIDv7 layout, RFC 9562).

Time-ordered keys keep B-tree inserts at the right edge of the index, which
makes bulk imports much faster than random UUID4 keys (docs/performance.md,
"SQLite writes").
"""

from __future__ import annotations

import os
import threading
import time

# Random hex digits per id: rand_b's 62 bits, plus the variant's two fixed
# bits carried by the first digit.
_RANDOM_DIGITS = 16
_MAX_SEQUENCE = 0xFFF
_stamp_lock = threading.Lock()
_last_stamp = (0, 0)
# A random hex digit with its top two bits forced to the RFC 4122 variant (10).
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_id() -> str:
    return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """count ids, ascending, and above every id this process made before.

    Bulk imports insert them in key order, and lists ordered by id follow
    creation order. Within one millisecond the 12 bits after the version are
    a sequence number per call (RFC 9562's monotonic counter), so later calls
    sort after earlier ones; the ids of one call share it and sort by their 62
    random bits. One random read and string slicing per call: building a
    uuid.UUID, or an integer per id, cost more than the database insert of a
    row, and an imported device takes three ids (docs/performance.md,
    "Registration imports").
    """
    millis, sequence = _next_stamp()
    stamp = f"{millis:012x}"
    prefix = f"{stamp[:8]}-{stamp[8:]}-7{sequence:03x}-"
    digits = os.urandom(_RANDOM_DIGITS // 2 * count).hex()
    ids = [
        f"{prefix}{_VARIANT[digits[at]]}{digits[at + 1 : at + 4]}-{digits[at + 4 : at + 16]}"
        for at in range(0, _RANDOM_DIGITS * count, _RANDOM_DIGITS)
    ]
    ids.sort()
    return ids


def _next_stamp() -> tuple[int, int]:
    """(milliseconds, sequence), strictly increasing; ids are made on several threads."""
    global _last_stamp
    with _stamp_lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_sequence = _last_stamp
        if millis > last_millis:
            stamp = (millis, 0)
        elif last_sequence < _MAX_SEQUENCE:  # same millisecond, or the clock stepped back
            stamp = (last_millis, last_sequence + 1)
        else:  # 4,096 calls in one millisecond: borrow the next one
            stamp = (last_millis + 1, 0)
        _last_stamp = stamp
        return stamp
