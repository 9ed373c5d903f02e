"""One suite of cases for every store: the in-memory one and the SQL one.

Each case runs on the memory store and on the database under test: SQLite in
the first pass of scripts/run-tests.sh, PostgreSQL (PUSHHUB_TEST_DATABASE_URL)
in the second, which leaves the memory cases out (--database-only). So one
`make test` runs every case once on each of the three stores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from pushhub_server.core.ids import new_id
from pushhub_server.core.models import App
from pushhub_server.core.ports import (
    AppRepository,
    AudienceReader,
    MessageRepository,
    RegistrationRepository,
)
from pushhub_server.store import (
    SqlAppRepository,
    SqlAudienceReader,
    SqlMessageRepository,
    SqlRegistrationRepository,
)
from pushhub_server.store.memory import (
    MemoryAppRepository,
    MemoryAudienceReader,
    MemoryMessageRepository,
    MemoryRegistrationRepository,
    MemoryStore,
)

_URL = os.environ.get("PUSHHUB_TEST_DATABASE_URL", "")
DATABASE = "postgresql" if _URL.startswith("postgresql") else "sqlite"


@dataclass(frozen=True)
class Stores:
    """The repositories of one store, sharing its rows as a server's do."""

    kind: str
    apps: AppRepository
    registrations: RegistrationRepository
    messages: MessageRepository
    audience: AudienceReader

    async def new_app(self) -> str:
        """Each case works in its own apps: the SQL stores are shared by the session."""
        app = App(new_id(), f"app-{new_id()}", datetime.now(UTC), signing_secret="secret")
        await self.apps.create_app(app, [])
        return app.app_id


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.without_database), DATABASE])
def stores(request: pytest.FixtureRequest, database_url: str) -> Stores:
    if request.param == "memory":
        store = MemoryStore()
        return Stores(
            "memory",
            MemoryAppRepository(store),
            MemoryRegistrationRepository(store),
            MemoryMessageRepository(store),
            MemoryAudienceReader(store),
        )
    db = request.getfixturevalue("db")
    return Stores(
        request.param,
        SqlAppRepository(db),
        SqlRegistrationRepository(db),
        SqlMessageRepository(db),
        SqlAudienceReader(db),
    )


@pytest.fixture
async def app_id(stores: Stores) -> str:
    return await stores.new_app()
