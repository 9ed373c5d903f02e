"""JSON from clients (apns_json, fcm_json, template bodies), parsed with bounded nesting.

json.loads raises RecursionError, not ValueError, on deeply nested input, and
a document nested a few hundred levels parses but cannot be encoded again
(json.dumps recurses too). Every caller treats bad JSON as a ValueError, so
both cases become one here, at a depth no real payload approaches.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


def parse_json(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """The parsed value; ValueError when the text is not JSON or nests deeper than max_depth."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    if _depth(value) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    return value


def _depth(value: Any) -> int:
    """Levels of arrays and objects, counted without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in children)
    return deepest
