"""The SQL audience query's plans: every page reads an index in key order.

What the pages hold, filter by filter, is the AudienceReader contract
(tests/contract/test_audience_reader.py), run on every store.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pushhub_server.core.messages import Audience
from pushhub_server.core.models import Platform
from pushhub_server.store import Database, SqlRegistrationRepository
from pushhub_server.store.audience import audience_query
from tests.store_records import device, upsert_one

NOW = datetime(2030, 1, 1, tzinfo=UTC)
FCM = Platform.FCM


@pytest.mark.parametrize(
    "audience",
    [
        Audience(broadcast=True),
        Audience(channel="news"),
        Audience(channel="news", platforms=(FCM,)),
        Audience(broadcast=True, tag_expression="lang:en && !beta"),
        Audience(broadcast=True, tag_expression="beta || !lang:fr"),
    ],
    ids=["broadcast", "channel", "channel+platform", "tags-and", "tags-or"],
)
async def test_pages_read_an_index_in_key_order(
    db: Database, registrations: SqlRegistrationRepository, app_id: str, audience: Audience
) -> None:
    """No page sorts or scans the whole table, whatever the planner's statistics say."""
    after = (await upsert_one(registrations, app_id, device())).registration.registration_id
    query = audience_query(app_id, audience, after, 100, NOW, db.dialect)
    async with db.read() as conn:
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        if db.dialect == "sqlite":
            plan = "\n".join(
                row[-1] for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            )
            assert "TEMP B-TREE" not in plan and "SCAN registrations" not in plan, plan
            return
        # Tiny test tables make any plan cheap; forbid sorts and scans to ask
        # whether an ordered index plan exists at all.
        await conn.exec_driver_sql("SET LOCAL enable_sort = off")
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.exec_driver_sql(f"EXPLAIN {sql}"))
    assert "Sort" not in plan and "Seq Scan on registrations" not in plan, plan
    assert "Seq Scan on subscriptions" not in plan, plan
    # A hashed subplan would read every row of the tag, in every app, per page.
    assert "hashed" not in plan and "Seq Scan on registration_tags" not in plan, plan
