"""User-token signing secrets: sealed at rest, and rotated."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from pushhub_server.core.apps import AppService, CreatedApp
from pushhub_server.core.clock import ManualClock
from pushhub_server.core.credentials import SecretBox
from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.key_cache import KeyCachingAppRepository
from pushhub_server.store import Database, SqlAppRepository
from pushhub_server.store.schema import apps as apps_table

SECRET_KEY = "signing-secret-key"


async def stored_secret(db: Database, app_id: str) -> str:
    """The signing_secret column of the app's row, as the database holds it."""
    query = sa.select(apps_table.c.signing_secret).where(apps_table.c.id == app_id)
    async with db.read() as conn:
        return str((await conn.execute(query)).scalar_one())


async def new_app(service: AppService) -> CreatedApp:
    return await service.create_app(f"secrets-{secrets.token_hex(4)}")


@pytest.mark.parametrize(("secret_key", "marker"), [(SECRET_KEY, "fernet:"), (None, "plain:")])
async def test_a_new_apps_secret_is_sealed_when_a_key_is_set(
    db: Database, apps: SqlAppRepository, clock: ManualClock, secret_key: str | None, marker: str
) -> None:
    box = SecretBox(secret_key)
    created = await new_app(AppService(apps, clock, secrets_box=box))

    stored = await stored_secret(db, created.app.app_id)

    assert stored.startswith(marker)
    opened = box.open(stored)
    assert len(opened) == 43  # secrets.token_urlsafe(32)
    assert (opened in stored) is (secret_key is None)


async def test_tokens_signed_before_a_rotation_are_refused_at_once_despite_the_key_cache(
    apps: SqlAppRepository, clock: ManualClock
) -> None:
    cached = KeyCachingAppRepository(apps, 60.0)
    service = AppService(cached, clock, secrets_box=SecretBox(SECRET_KEY))
    created = await new_app(service)
    app_id = created.app.app_id
    before, _ = await service.issue_user_token(app_id, "alice")
    # Cached now, with the app as it was: the rotation must replace that entry.
    assert (await service.authenticate(created.device_key, before)).user_id == "alice"

    await service.rotate_signing_secret(app_id)

    refused = await service.authenticate(created.device_key, before)
    assert refused.user_id is None
    assert refused.user_token_error == "user token rejected: Signature verification failed"
    after, _ = await service.issue_user_token(app_id, "alice")
    assert (await service.authenticate(created.device_key, after)).user_id == "alice"


async def test_rotating_an_unknown_app_is_not_found(
    apps: SqlAppRepository, clock: ManualClock
) -> None:
    with pytest.raises(PushHubError) as raised:
        await AppService(apps, clock).rotate_signing_secret("no-such-app")
    assert (raised.value.code, raised.value.reason) == (ErrorCode.NOT_FOUND, "APP_NOT_FOUND")


async def test_a_secret_sealed_with_another_key_refuses_tokens_with_a_reason(
    apps: SqlAppRepository, clock: ManualClock
) -> None:
    elsewhere = AppService(apps, clock, secrets_box=SecretBox("another-secret-key"))
    created = await new_app(elsewhere)
    token, _ = await elsewhere.issue_user_token(created.app.app_id, "alice")
    service = AppService(apps, clock, secrets_box=SecretBox(SECRET_KEY))

    with pytest.raises(PushHubError) as raised:
        await service.issue_user_token(created.app.app_id, "alice")
    error = raised.value
    assert (error.code, error.reason) == (ErrorCode.FAILED_PRECONDITION, "CREDENTIALS_UNREADABLE")
    principal = await service.authenticate(created.device_key, token)
    assert principal.user_id is None
    assert principal.user_token_error == (
        "user token rejected: cannot read the app's user-token signing secret "
        "(credentials were sealed with another PUSHHUB_SECRET_KEY)"
    )


async def test_replace_signing_secret_only_while_the_expected_value_is_stored(
    db: Database, apps: SqlAppRepository, app_id: str
) -> None:
    assert await apps.set_signing_secret(app_id, "plain:first")
    assert not await apps.replace_signing_secret(app_id, "plain:older", "fernet:x")
    assert await stored_secret(db, app_id) == "plain:first"
    assert await apps.replace_signing_secret(app_id, "plain:first", "fernet:sealed")
    assert await stored_secret(db, app_id) == "fernet:sealed"
    assert not await apps.set_signing_secret("no-such-app", "plain:x")
