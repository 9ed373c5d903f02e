"""AIP-158 page tokens: opaque, and bound to the filter that produced them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

from .errors import invalid_field
from .json_documents import parse_json
from .limits import Limits

# Page tokens are unsigned: a client can build one with any "after", which goes
# into SQL. Only what encode_cursor writes passes: an id (ids.new_id's alphabet).
_AFTER = re.compile(r"[0-9A-Za-z-]{1,64}")
# Far above any token encode_cursor makes (about 130 characters).
_MAX_TOKEN = 1024


def clamp_page_size(page_size: int, limits: Limits) -> int:
    """AIP-158: 0 means the default; larger than the maximum is coerced down."""
    if page_size < 0:
        raise invalid_field("page_size", "INVALID_PAGE_SIZE", "page_size must not be negative")
    return min(page_size or limits.page_size_default, limits.page_size_max)


def encode_cursor(after_id: str, filter_key: str) -> str:
    payload = json.dumps({"after": after_id, "filter": _digest(filter_key)})
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(token: str, filter_key: str) -> str:
    if len(token) > _MAX_TOKEN:
        raise _invalid()
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = parse_json(base64.urlsafe_b64decode(padded.encode()).decode())
        after, digest = payload["after"], payload["filter"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        raise _invalid() from None
    if digest != _digest(filter_key) or not isinstance(after, str) or not _AFTER.fullmatch(after):
        raise _invalid()
    return after


def _digest(filter_key: str) -> str:
    return hashlib.sha256(filter_key.encode()).hexdigest()[:16]


def _invalid() -> Exception:
    return invalid_field(
        "page_token",
        "INVALID_PAGE_TOKEN",
        "page_token is not valid for this request; start again without it",
    )
