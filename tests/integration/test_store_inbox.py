from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pushhub_server.core.ids import new_id
from pushhub_server.core.messages import Delivery, InboxEntry
from pushhub_server.core.models import Platform
from pushhub_server.store import Database, SqlInbox, SqlMessageRepository
from tests.store_records import message

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def delivery(app_id: str, message_id: str, registration_id: str) -> Delivery:
    return Delivery(
        message_id=message_id,
        app_id=app_id,
        registration_id=registration_id,
        platform=Platform.FCM,
        device_token="token",
        payload='{"message":{"data":{"é":"ü"}}}'.encode(),
    )


def entry(item: Delivery, at: datetime) -> InboxEntry:
    return InboxEntry(
        item.message_id, item.app_id, item.registration_id, item.platform, item.payload.decode(), at
    )


async def test_inbox_lists_newest_first_with_filters(db: Database, app_id: str) -> None:
    inbox, messages = SqlInbox(db), SqlMessageRepository(db)
    first, second = message(app_id), message(app_id)
    for item in (first, second):
        await messages.create(item)
    alice, bob = new_id(), new_id()
    early = [delivery(app_id, first.message_id, alice), delivery(app_id, first.message_id, bob)]
    late = [delivery(app_id, second.message_id, alice)]
    await inbox.record(early, NOW)
    await inbox.record(late, NOW + timedelta(seconds=1))
    await inbox.record([], NOW)

    everything = [
        entry(late[0], NOW + timedelta(seconds=1)),
        entry(early[1], NOW),
        entry(early[0], NOW),
    ]
    assert await inbox.list(app_id, None, None, 10) == everything
    assert await inbox.list(app_id, None, None, 2) == everything[:2]
    assert await inbox.list(app_id, alice, None, 10) == [everything[0], everything[2]]
    assert await inbox.list(None, None, first.message_id, 10) == everything[1:]
    assert await inbox.list(app_id, bob, second.message_id, 10) == []
    assert await inbox.list("another-app", None, None, 10) == []
