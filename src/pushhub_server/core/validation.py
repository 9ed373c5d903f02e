"""Field rules shared by every use case: one function per rule."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sized
from datetime import datetime

from .errors import invalid_field, too_many, value_too_long

_TAG = re.compile(r"[A-Za-z0-9_@#.:\-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
USER_TAG_PREFIX = "user:"


def check_text(field_name: str, value: str, limit: int) -> str:
    """Stored text: within its length limit, and free of NUL (PostgreSQL text cannot hold it)."""
    if len(value) > limit:
        raise value_too_long(field_name, limit)
    if "\x00" in value:
        raise invalid_field(
            field_name, "INVALID_CHARACTER", f"{field_name} must not contain NUL characters"
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


def is_reserved_tag(tag: str) -> bool:
    return tag.startswith(USER_TAG_PREFIX)
