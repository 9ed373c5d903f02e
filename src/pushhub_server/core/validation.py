"""Field rules shared by every use case: one function per rule."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sized
from datetime import datetime

from .errors import invalid_field, too_many, value_too_long

_TAG = re.compile(r"[A-Za-z0-9_@#.:\-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
USER_TAG_PREFIX = "user:"

# RFC 7230: a header name is a token; a value is visible ASCII, with spaces and
# tabs only between visible characters (no CR or LF to end the line early, and
# no obs-text: urllib sends values as Latin-1 and fails on anything wider).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20\x09\x21-\x7e]*[\x21-\x7e])?)?")
# Headers the HTTP client owns: they frame the request or its connection, or
# choose the virtual host. A client's value would contradict the request sent.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-connection",
    }
)


def check_text(field_name: str, value: str, limit: int) -> str:
    """Stored text: within its length limit, and free of NUL (PostgreSQL text cannot hold it)."""
    if len(value) > limit:
        raise value_too_long(field_name, limit)
    if "\x00" in value:
        raise invalid_field(
            field_name, "INVALID_CHARACTER", f"{field_name} must not contain NUL characters"
        )
    return value


def check_printable(field_name: str, value: str) -> str:
    """Text that goes into a header line: no control character can end or split it."""
    if _CONTROL.search(value):
        raise invalid_field(
            field_name, "INVALID_CHARACTER", f"{field_name} must not contain control characters"
        )
    return value


def check_count(field_name: str, values: Sized, limit: int) -> None:
    if len(values) > limit:
        raise too_many(field_name, limit)


def check_tag(field_name: str, tag: str, limit: int) -> str:
    if not _TAG.fullmatch(tag):
        raise invalid_field(
            field_name,
            "INVALID_TAG",
            f"{field_name} {tag!r} must be 1-{limit} characters of [A-Za-z0-9_@#.:-]",
        )
    return check_text(field_name, tag, limit)


def check_tags(
    field_name: str, tags: Iterable[str], tag_limit: int, count_limit: int
) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(tags))
    check_count(field_name, unique, count_limit)
    for index, tag in enumerate(unique):
        # The field name is formatted only for a failing tag: bulk imports check
        # thousands of valid ones, and the f-string cost more than the check.
        if len(tag) > tag_limit or not _TAG.fullmatch(tag):
            check_tag(f"{field_name}[{index}]", tag, tag_limit)
    return unique


def is_valid_name(value: str, limit: int) -> bool:
    """check_name without an error to build: the cheap test for bulk paths."""
    return bool(value) and len(value) <= limit and not _CONTROL.search(value)


def check_name(field_name: str, value: str, limit: int) -> str:
    """A printable, non-empty name (channel, template, metadata key)."""
    if not value or _CONTROL.search(value):
        raise invalid_field(
            field_name, "INVALID_NAME", f"{field_name} must be non-empty printable text"
        )
    return check_text(field_name, value, limit)


def check_future(
    field_name: str, moment: datetime, now: datetime, legacy_code: str, reason: str
) -> None:
    if moment <= now:
        raise invalid_field(
            field_name,
            reason,
            f"{field_name} must be after the current time",
            legacy_code=legacy_code,
        )


def check_map(
    field_name: str, values: Mapping[str, str], count: int, key_limit: int, value_limit: int
) -> dict[str, str]:
    if not values:
        return {}
    check_count(field_name, values, count)
    for key, value in values.items():
        check_name(f"{field_name}.key", key, key_limit)
        check_text(f"{field_name}[{key}]", value, value_limit)
    return dict(values)


def check_http_headers(
    field_name: str, headers: Mapping[str, str], count: int, limit: int
) -> dict[str, str]:
    """Extra headers of an HTTP request we send: RFC 7230 names and values."""
    if not headers:
        return {}
    check_count(field_name, headers, count)
    for name, value in headers.items():
        key_field = f"{field_name}.key"
        if len(name) > limit:
            raise value_too_long(key_field, limit)
        if not _HEADER_NAME.fullmatch(name):
            raise invalid_field(
                key_field,
                "INVALID_HEADER",
                f"{key_field} {name[:40]!r} is not an HTTP header name (RFC 7230 token)",
            )
        if name.lower() in _RESERVED_HEADERS:
            raise invalid_field(
                key_field, "INVALID_HEADER", f"{key_field} {name!r} is set by PushHub itself"
            )
        value_field = f"{field_name}[{name}]"
        if len(value) > limit:
            raise value_too_long(value_field, limit)
        if not _HEADER_VALUE.fullmatch(value):
            raise invalid_field(
                value_field,
                "INVALID_HEADER",
                f"{value_field} must be visible ASCII, with spaces only inside (RFC 7230)",
            )
    return dict(headers)


def is_reserved_tag(tag: str) -> bool:
    return tag.startswith(USER_TAG_PREFIX)
