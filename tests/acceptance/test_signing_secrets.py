"""User-token signing secrets through the real server: rotation, sealing at start, wrong key."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
import sqlalchemy as sa

from pushhub.v1 import admin_pb2
from pushhub_server.core.apps import AppService, CreatedApp
from pushhub_server.core.clock import ManualClock
from pushhub_server.core.credentials import SecretBox
from pushhub_server.store import Database, SqlAppRepository
from pushhub_server.store.schema import apps as apps_table

from .harness import (
    ADMIN_METADATA,
    AppHandle,
    Stubs,
    bearer,
    check_error,
    expect_error,
    start_test_server,
)

DENIED = grpc.StatusCode.PERMISSION_DENIED


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def db(server, empty_database: str) -> AsyncIterator[Database]:
    """The session server's database, to create apps outside it and read their rows."""
    database = Database.from_url(empty_database)
    yield database
    await database.dispose()


async def stored_secret(db: Database, app_id: str) -> str:
    query = sa.select(apps_table.c.signing_secret).where(apps_table.c.id == app_id)
    async with db.read() as conn:
        return str((await conn.execute(query)).scalar_one())


async def app_stored_with(db: Database, clock: ManualClock, secret_key: str | None) -> CreatedApp:
    """An app created by a process whose PUSHHUB_SECRET_KEY is `secret_key`."""
    service = AppService(SqlAppRepository(db), clock, secrets_box=SecretBox(secret_key))
    return await service.create_app(f"secrets-{uuid.uuid4().hex}")


async def test_rotation_refuses_tokens_issued_before_it_at_once(server, app: AppHandle) -> None:
    before = await app.user_token("alice")
    # The server now holds the device key, with its app, in its key cache.
    assert (await app.register(app.device(before), user_id="alice")).registration.user_id

    await server.apps.rotate_signing_secret(app.app_id)

    error = await expect_error(
        app.register(app.device(before), user_id="alice"), DENIED, "USER_TOKEN_REQUIRED"
    )
    assert error.metadata["field"] == "user_id"
    after = await app.user_token("alice")
    assert (await app.register(app.device(after), user_id="alice")).registration.user_id == "alice"


async def test_a_new_apps_secret_is_stored_sealed(app: AppHandle, db: Database) -> None:
    assert (await stored_secret(db, app.app_id)).startswith("fernet:")


async def test_a_plain_secret_is_sealed_when_a_server_starts_and_its_tokens_still_work(
    db: Database,
    empty_database: str,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    created = await app_stored_with(db, clock, None)
    app_id = created.app.app_id
    plain = AppService(SqlAppRepository(db), clock)
    token, _ = await plain.issue_user_token(app_id, "alice")
    assert (await stored_secret(db, app_id)).startswith("plain:")

    caplog.set_level(logging.INFO, logger="pushhub_server.server")
    restarted = await start_test_server(empty_database, clock)
    try:
        assert (await stored_secret(db, app_id)).startswith("fernet:")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{restarted.port}") as channel:
            stubs = Stubs.on(channel)
            handle = AppHandle(
                app_id, created.app.name, created.server_key, created.device_key, stubs, clock
            )
            registered = await handle.register(handle.device(token), user_id="alice")
    finally:
        await restarted.stop(1.0)

    assert registered.registration.user_id == "alice"
    sealed_lines = [r.getMessage() for r in caplog.records if "signing secrets" in r.getMessage()]
    assert len(sealed_lines) == 1
    assert sealed_lines[0].startswith("sealed the user-token signing secrets of ")
    assert created.app.signing_secret[len("plain:") :] not in caplog.text


async def test_a_secret_sealed_with_another_key_is_refused_not_internal(
    db: Database, stubs: Stubs, clock: ManualClock
) -> None:
    created = await app_stored_with(db, clock, "another-secret-key")
    elsewhere = AppService(SqlAppRepository(db), clock, secrets_box=SecretBox("another-secret-key"))
    token, _ = await elsewhere.issue_user_token(created.app.app_id, "alice")

    await expect_error(
        stubs.admin.IssueUserToken(
            admin_pb2.IssueUserTokenRequest(app_id=created.app.app_id, user_id="alice"),
            metadata=ADMIN_METADATA,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "CREDENTIALS_UNREADABLE",
    )
    handle = AppHandle(
        created.app.app_id, created.app.name, created.server_key, created.device_key, stubs, clock
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await handle.register(bearer(created.device_key, token), user_id="alice")
    check_error(caught.value, DENIED, "USER_TOKEN_REQUIRED")
    assert "another PUSHHUB_SECRET_KEY" in (caught.value.details() or "")
