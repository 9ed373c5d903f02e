from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.ids import new_id
from pushhub_server.core.models import ApiKey, App, KeyKind, Platform
from pushhub_server.store import SqlAppRepository

from .conftest import create_app

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def key(app_id: str, kind: KeyKind = KeyKind.SERVER) -> ApiKey:
    return ApiKey(new_id(), app_id, kind, "phs_abcdef", NOW)


async def test_create_find_and_list_apps(apps: SqlAppRepository) -> None:
    app = App(new_id(), f"shop-{new_id()}", NOW, signing_secret="s3cret")
    server, device = key(app.app_id), key(app.app_id, KeyKind.DEVICE)
    await apps.create_app(app, [(server, f"hash-{server.key_id}"), (device, f"h-{device.key_id}")])

    assert await apps.get_app(app.app_id) == app
    assert await apps.find_app(app.name) == app
    assert await apps.find_app(app.app_id) == app
    assert await apps.find_app("no-such-app") is None
    assert app in await apps.list_apps(1000, None)
    assert app not in await apps.list_apps(1000, app.app_id)
    assert [k.key_id for k in await apps.list_keys(app.app_id)] == sorted(
        [server.key_id, device.key_id]
    )


async def test_duplicate_name_is_already_exists(apps: SqlAppRepository) -> None:
    app = await create_app(apps)
    twin = App(new_id(), app.name, NOW, signing_secret="other")
    with pytest.raises(PushHubError) as raised:
        await apps.create_app(twin, [(key(twin.app_id), f"hash-{new_id()}")])
    assert raised.value.code is ErrorCode.ALREADY_EXISTS
    assert raised.value.reason == "APP_ALREADY_EXISTS"
    assert await apps.get_app(twin.app_id) is None


async def test_active_key_until_revoked(apps: SqlAppRepository) -> None:
    app = await create_app(apps)
    server = key(app.app_id)
    key_hash = f"hash-{server.key_id}"
    await apps.add_key(server, key_hash)

    assert await apps.active_key(key_hash) == (server, app)
    revoked = await apps.revoke_key(app.app_id, server.key_id, NOW + timedelta(hours=1))
    assert revoked is not None and revoked.revoked_at == NOW + timedelta(hours=1)
    assert await apps.active_key(key_hash) is None
    again = await apps.revoke_key(app.app_id, server.key_id, NOW + timedelta(hours=2))
    assert again == revoked
    other = await create_app(apps)
    assert await apps.revoke_key(other.app_id, server.key_id, NOW) is None


async def test_delete_app(apps: SqlAppRepository) -> None:
    app = await create_app(apps)
    server = key(app.app_id)
    await apps.add_key(server, f"hash-{server.key_id}")
    assert await apps.delete_app(app.app_id)
    assert not await apps.delete_app(app.app_id)
    assert await apps.get_app(app.app_id) is None
    assert await apps.active_key(f"hash-{server.key_id}") is None


async def test_replace_credentials_only_while_the_expected_value_is_stored(
    apps: SqlAppRepository, app_id: str
) -> None:
    assert await apps.set_credentials(app_id, Platform.FCM, "plain:first")
    assert not await apps.replace_credentials(app_id, Platform.FCM, "plain:older", "fernet:x")
    assert not await apps.replace_credentials(app_id, Platform.APNS, "plain:first", "fernet:x")
    assert await apps.credentials(app_id) == {Platform.FCM: "plain:first"}
    assert await apps.replace_credentials(app_id, Platform.FCM, "plain:first", "fernet:sealed")
    assert await apps.credentials(app_id) == {Platform.FCM: "fernet:sealed"}
