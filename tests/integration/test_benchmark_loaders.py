"""The benchmarks load registrations straight into the tables: the store must read them.

Benchmarks are scripts, not tests, so nothing else notices when a change to the
store's row shape leaves their loaders behind.
"""

from __future__ import annotations

from datetime import UTC, datetime

from benchmarks.fanout import load_postgres, load_sqlite
from pushhub_server.core.models import RegistrationFilter
from pushhub_server.store import Database, SqlRegistrationRepository


async def test_loaded_registrations_read_back_through_the_store(
    db: Database, empty_database: str, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    if db.dialect == "sqlite":
        load_sqlite(empty_database, app_id, 5)
    else:
        await load_postgres(empty_database, app_id, 5)
    page = await registrations.list(app_id, RegistrationFilter(), 10, None, datetime.now(UTC))
    assert len(page.items) == 5
    assert {item.metadata["locale"] for item in page.items} == {"en"}
