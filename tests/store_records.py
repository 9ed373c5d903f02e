"""The records the store tests write, in one home: a device's registration item,
a message, and an upsert of one item that must succeed. tests/contract and the
SQL-only cases in tests/integration build on the same ones."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from pushhub_server.core.ids import new_id
from pushhub_server.core.messages import Audience, Message, Schedule
from pushhub_server.core.models import Platform, RegistrationInput, Template, UpsertResult
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.ports import RegistrationRepository

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def device(token: str = "", **changes: object) -> RegistrationInput:
    """An APNs item in two channels with two tags, metadata and a template; a fresh
    token unless given."""
    item = RegistrationInput(
        platform=Platform.APNS,
        device_token=token or f"token-{new_id()}",
        channels=("news", "sports"),
        tags=("lang:en", "beta"),
        user_id=None,
        expires_at=None,
        metadata={"model": "x"},
        templates={"alert": Template('{"aps":{"alert":"$(msg)"}}', ("beta",))},
        selector=None,
    )
    return replace(item, **changes)  # type: ignore[arg-type]


def message(app_id: str, **changes: object) -> Message:
    """A message of app_id due at NOW, with every part stored: placeholders,
    headers, a channel, a tag expression and a platform."""
    item = Message(
        message_id=new_id(),
        app_id=app_id,
        content=NotificationContent(message="hi {{name}}", headers={"kind": "news"}, badge=0),
        audience=Audience(channel="news", tag_expression="a && !b", platforms=(Platform.FCM,)),
        schedule=Schedule(NOW),
        created_at=NOW,
    )
    return replace(item, **changes)  # type: ignore[arg-type]


async def upsert_one(
    registrations: RegistrationRepository,
    app_id: str,
    item: RegistrationInput,
    now: datetime = NOW,
) -> UpsertResult:
    [result] = await registrations.upsert_many(app_id, [item], now)
    assert isinstance(result, UpsertResult), result
    return result
