"""Conversions between table rows and core records, and which registration rows are live."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from pushhub_server.core.clock import from_micros, to_micros
from pushhub_server.core.models import Registration, RegistrationInput, Template
from pushhub_server.core.web_push import WebPushKeys

from .platforms import PLATFORM_CODES, PLATFORMS_BY_CODE
from .schema import registrations

_COMPACT = {"separators": (",", ":"), "ensure_ascii": False}


def micros_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def moment_or_none(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def dump_map(values: Mapping[str, Any]) -> str | None:
    """Empty maps are NULL: most registrations carry none, and NULL costs nothing."""
    return json.dumps(values, **_COMPACT) if values else None


def load_map(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def dump_templates(templates: Mapping[str, Template]) -> str | None:
    return dump_map({name: [t.body, list(t.tags)] for name, t in templates.items()})


def load_templates(text: str | None) -> dict[str, Template]:
    return {name: Template(body, tuple(tags)) for name, (body, tags) in load_map(text).items()}


# The content columns of a registration row, in the order of content_values().
CONTENT_COLUMNS = (
    "platform",
    "device_token",
    "user_id",
    "expires_at",
    "metadata_json",
    "templates_json",
    "selector",
    "web_push_p256dh",
    "web_push_auth",
)


def content_values(item: RegistrationInput) -> tuple[Any, ...]:
    return (
        PLATFORM_CODES[item.platform],
        item.device_token,
        item.user_id,
        micros_or_none(item.expires_at),
        dump_map(item.metadata),
        dump_templates(item.templates),
        item.selector,
        *_web_push_values(item.web_push_keys),
    )


def _web_push_values(keys: WebPushKeys | None) -> tuple[str | None, str | None]:
    return (None, None) if keys is None else (keys.p256dh, keys.auth)


def web_push_keys(p256dh: str | None, auth: str | None) -> WebPushKeys | None:
    """A row's subscription keys: both columns set (Web Push), or none."""
    return None if p256dh is None or auth is None else WebPushKeys(p256dh, auth)


def registration_from_row(
    row: Any,
    channels: Mapping[str, str],
    tags: tuple[str, ...],
) -> Registration:
    """A registration row plus its subscriptions (channel → id, in order) and tags."""
    return Registration(
        registration_id=row.id,
        app_id=row.app_id,
        platform=PLATFORMS_BY_CODE[row.platform],
        device_token=row.device_token,
        channels=tuple(channels),
        tags=tags,
        user_id=row.user_id,
        expires_at=moment_or_none(row.expires_at),
        metadata=load_map(row.metadata_json),
        templates=load_templates(row.templates_json),
        selector=row.selector,
        created_at=from_micros(row.created_at),
        updated_at=from_micros(row.updated_at),
        channel_registration_ids=dict(channels),
        web_push_keys=web_push_keys(row.web_push_p256dh, row.web_push_auth),
    )


def live_registration(at: int | sa.BindParameter[Any]) -> sa.ColumnElement[bool]:
    """Unexpired and not invalidated at `at` (epoch microseconds): a live
    registration. Reads, audiences, tag updates and the counts of deletes all see
    through this; anything else is gone to clients."""
    row = registrations.c
    return sa.and_(
        sa.or_(row.expires_at.is_(None), row.expires_at > at),
        row.invalidated_at.is_(None),
    )
