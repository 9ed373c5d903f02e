"""JSON as every payload is written: compact, UTF-8, finite; and RFC 7396 merge patches."""

from __future__ import annotations

import json
from typing import Any

# NaN and infinities are not JSON: a payload holding one fails instead of being sent.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    """Compact JSON text, as every payload is sent."""
    return _ENCODER.encode(value)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch; returns a new value and leaves both inputs untouched."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
