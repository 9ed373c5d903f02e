"""The benchmarks load registrations straight into the tables: the store must read them.

Benchmarks are scripts, not tests, so nothing else notices when a change to the
store's row shape leaves their loaders behind. The loaders end with ANALYZE, so
they load a database of this test's own: statistics gathered from whatever the
session's database holds by then would change the plans other tests examine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from benchmarks.fanout import load_postgres, load_sqlite
from pushhub_server.core.ids import new_id
from pushhub_server.core.models import App, RegistrationFilter
from pushhub_server.store import Database, SqlAppRepository, SqlRegistrationRepository, migrate
from tests.own_database import own_database


async def test_loaded_registrations_read_back_through_the_store(
    database_url: str, tmp_path: Path
) -> None:
    async with own_database(database_url, tmp_path, "pushhub_loader_test") as url:
        await migrate(url)
        db = Database.from_url(url)
        try:
            app = App(new_id(), "loaded", datetime.now(UTC), signing_secret="secret")
            await SqlAppRepository(db).create_app(app, [])
            if db.dialect == "sqlite":
                load_sqlite(url, app.app_id, 5)
            else:
                await load_postgres(url, app.app_id, 5)
            page = await SqlRegistrationRepository(db).list(
                app.app_id, RegistrationFilter(), 10, None, datetime.now(UTC)
            )
        finally:
            await db.dispose()
    assert len(page.items) == 5
    assert {item.metadata["locale"] for item in page.items} == {"en"}
