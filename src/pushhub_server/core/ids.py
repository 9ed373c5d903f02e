"""Time-ordered identifiers (UUIDv7 layout, RFC 9562).

Time-ordered keys keep B-tree inserts at the right edge of the index, which
measured about twice as fast as random UUID4 keys for bulk imports here.
"""

from __future__ import annotations

import os
import time

# Random hex digits drawn per id: 19 are used (rand_a 12 bits, rand_b 62 bits
# plus the variant's two fixed bits carried by one digit), 20 keep bytes whole.
_RANDOM_DIGITS = 20
# A random hex digit with its top two bits forced to the RFC 4122 variant (10).
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_id() -> str:
    return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """count ids of one millisecond, ascending: bulk imports insert them in key order.

    One random read and string slicing per batch: building a uuid.UUID, or an
    integer per id, cost more than the database insert of a row (3 ids per
    imported device; slicing measured 0.8 us per id against 2.2 us).
    """
    millis = (time.time_ns() // 1_000_000) & ((1 << 48) - 1)
    stamp = f"{millis:012x}"
    prefix = f"{stamp[:8]}-{stamp[8:]}-7"  # the version digit closes the prefix
    digits = os.urandom(_RANDOM_DIGITS // 2 * count).hex()
    ids = [
        f"{prefix}{digits[at : at + 3]}-{_VARIANT[digits[at + 3]]}{digits[at + 4 : at + 7]}"
        f"-{digits[at + 7 : at + 19]}"
        for at in range(0, _RANDOM_DIGITS * count, _RANDOM_DIGITS)
    ]
    ids.sort()
    return ids
