"""JSON documents from clients: one rule for every one of them, checked when accepted.

apns_json, fcm_json, template bodies, service-account JSON and page tokens are
parsed here. json.loads accepts documents that fail later, when they are sent
or stored, for every recipient at once:

- NaN, Infinity, and numbers beyond a double (1e400 parses as inf): json.dumps
  writes them back as ``NaN``/``Infinity``, which APNs and FCM refuse as JSON;
- ``\\udc00``-style escapes that decode to a lone surrogate: no UTF-8 encoder
  can write the string again, so the payload or the row cannot be built;
- deep nesting: json.loads raises RecursionError, not ValueError, and a
  document nested a few hundred levels parses but cannot be encoded again.

parse_json refuses all of them with a ValueError saying why, so a document
accepted once can always be encoded, stored and sent.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, NoReturn

MAX_DEPTH = 64
# The largest magnitude a double holds: what APNs, FCM and JavaScript parse numbers into.
_LARGEST_NUMBER = sys.float_info.max
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """The parsed value; ValueError when the text is not JSON, or breaks the rule above."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    _check(value, max_depth)
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a finite number")


def _check(value: Any, max_depth: int) -> None:
    """Depth, strings and numbers, walked without recursion."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("holds a number beyond the range of a double (such as 1e400)")
        elif isinstance(item, int) and not isinstance(item, bool):
            # Compared as exact integers: float(item) would raise for the largest.
            if not -_LARGEST_NUMBER <= item <= _LARGEST_NUMBER:
                raise ValueError("holds a number beyond the range of a double")
        elif isinstance(item, dict | list):
            if level > max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key in item:
                    _check_string(key)
                children: Any = item.values()
            else:
                children = item
            pending.extend((child, level + 1) for child in children)


def _check_string(text: str) -> None:
    if _SURROGATE.search(text):
        raise ValueError("holds a lone surrogate escape (such as \\udc00): not valid UTF-8")
