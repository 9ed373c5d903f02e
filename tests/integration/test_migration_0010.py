"""Migration 0010: a run in progress becomes one partition, and back.

On a scratch database of its own (test_migration_0008's fixture), so
downgrading never touches the session's database.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pushhub_server.core.messages import MessageState
from pushhub_server.store.schema import (
    apps,
    message_failures,
    message_platform_counts,
    messages,
    run_partition_counts,
    run_partition_failures,
    run_partitions,
)

from .test_migration_0008 import migrate_to, scratch

__all__ = ["scratch"]  # the fixture, used by name

APP_ID = "app-0010"


def _message(message_id: str, state: MessageState, cursor: str | None) -> dict[str, object]:
    return {
        "id": message_id,
        "app_id": APP_ID,
        "state": int(state),
        "content_json": "{}",
        "audience_json": "{}",
        "first_run_at": 1,
        "run_number": 3,
        "run_count": 0,
        "cursor": cursor,
        "lease_until": 500 if state is MessageState.PUBLISHING else None,
        "targeted": 0,
        "sent": 0,
        "failed": 0,
        "created_at": 1,
        "updated_at": 1,
    }


async def test_a_run_in_progress_resumes_as_one_partition(scratch: AsyncEngine) -> None:
    await migrate_to(scratch, "0008")
    rows = [
        _message("running", MessageState.PUBLISHING, "r-42"),
        _message("waiting", MessageState.SCHEDULED, None),
    ]
    async with scratch.begin() as conn:
        await conn.execute(
            sa.insert(apps).values(id=APP_ID, name="a", signing_secret="plain:s", created_at=1)
        )
        # The columns revision 0008 has: run_partitions does not exist yet.
        await conn.execute(sa.insert(messages), rows)
    await migrate_to(scratch, "0010")

    async with scratch.connect() as conn:
        partitions = (await conn.execute(sa.select(run_partitions))).all()
    assert [tuple(p) for p in partitions] == [("running", 0, None, "r-42", 3, 500, False)]

    async with scratch.begin() as conn:
        await conn.execute(sa.update(messages).values(cursor=None))
        await conn.execute(
            sa.insert(run_partitions).values(
                message_id="running", number=1, last_id=None, cursor="r-90", claim=4,
                lease_until=900, done=False,
            )
        )  # fmt: skip
        names = ("number", "platform", "targeted", "sent", "failed")
        counts = [(0, 1, 5, 4, 1), (1, 1, 3, 3, 0), (1, 2, 2, 2, 0)]
        await conn.execute(
            sa.insert(run_partition_counts),
            [{"message_id": "running", **dict(zip(names, row, strict=True))} for row in counts],
        )
        await conn.execute(
            sa.insert(run_partition_failures).values(
                message_id="running", number=0, reason="Gone", count=1
            )
        )
    await migrate_to(scratch, "0008", down=True)
    async with scratch.connect() as conn:
        query = sa.select(messages.c.id, messages.c.cursor, messages.c.lease_until, messages.c.sent)
        back = {tuple(row) for row in await conn.execute(query)}
        per_platform = set(await conn.execute(sa.select(message_platform_counts)))
        failures = set(await conn.execute(sa.select(message_failures)))
    # The lowest checkpoint of its partitions: what lies beyond it is sent again;
    # the partitions' counters are the message's.
    assert back == {("running", "r-42", 900, 9), ("waiting", None, None, 0)}
    assert per_platform == {("running", 1, 8, 7, 1), ("running", 2, 2, 2, 0)}
    assert failures == {("running", "Gone", 1)}
