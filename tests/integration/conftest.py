"""Store fixtures: the session's migrated database (tests/conftest.py), one fresh app per test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest_asyncio

from pushhub_server.core.ids import new_id
from pushhub_server.core.models import App
from pushhub_server.store import (
    Database,
    SqlAppRepository,
    SqlRegistrationRepository,
    SqlTrackingRepository,
)


@pytest_asyncio.fixture
async def apps(db: Database) -> SqlAppRepository:
    return SqlAppRepository(db)


@pytest_asyncio.fixture
async def registrations(db: Database) -> SqlRegistrationRepository:
    return SqlRegistrationRepository(db)


@pytest_asyncio.fixture
async def tracking(db: Database) -> SqlTrackingRepository:
    return SqlTrackingRepository(db)


async def create_app(apps: SqlAppRepository) -> App:
    app = App(new_id(), f"app-{new_id()}", datetime.now(UTC), signing_secret="secret")
    await apps.create_app(app, [])
    return app


@pytest_asyncio.fixture
async def app_id(apps: SqlAppRepository) -> str:
    """Each test works in its own app, so tests never see each other's rows."""
    return (await create_app(apps)).app_id
