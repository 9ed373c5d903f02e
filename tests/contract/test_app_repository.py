"""AppRepository: apps, keys found by hash, sealed credentials and secrets, the same
on every store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.ids import new_id
from pushhub_server.core.models import ApiKey, App, KeyKind, Platform, RegistrationInput

from .conftest import Stores

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def new_app(name: str = "") -> App:
    return App(new_id(), name or f"app-{new_id()}", NOW, signing_secret="sealed-secret")


def new_key(app_id: str, kind: KeyKind = KeyKind.SERVER) -> tuple[ApiKey, str]:
    key = ApiKey(new_id(), app_id, kind, prefix="phs_abcd", created_at=NOW)
    return key, f"hash-{new_id()}"


async def test_an_app_is_found_by_id_or_name(stores: Stores) -> None:
    app = new_app()
    await stores.apps.create_app(app, [])

    assert await stores.apps.get_app(app.app_id) == app
    assert await stores.apps.find_app(app.app_id) == app
    assert await stores.apps.find_app(app.name) == app
    assert await stores.apps.get_app(new_id()) is None
    assert await stores.apps.find_app(f"missing-{new_id()}") is None


async def test_app_names_are_unique(stores: Stores) -> None:
    app = new_app()
    await stores.apps.create_app(app, [new_key(app.app_id)])
    twin = new_app(app.name)

    with pytest.raises(PushHubError) as raised:
        await stores.apps.create_app(twin, [new_key(twin.app_id)])

    assert (raised.value.code, raised.value.reason) == (
        ErrorCode.ALREADY_EXISTS,
        "APP_ALREADY_EXISTS",
    )
    assert await stores.apps.get_app(twin.app_id) is None
    assert await stores.apps.list_keys(twin.app_id) == []


async def test_apps_list_in_id_order(stores: Stores) -> None:
    first, second = new_app(), new_app()
    for app in (first, second):
        await stores.apps.create_app(app, [])
    listed = await stores.apps.list_apps(1, after_id=first.app_id)
    assert listed == [second]


async def test_a_key_is_found_by_its_hash_until_revoked(stores: Stores) -> None:
    app = new_app()
    (server, server_hash), (device, device_hash) = (
        new_key(app.app_id),
        new_key(app.app_id, KeyKind.DEVICE),
    )
    await stores.apps.create_app(app, [(server, server_hash)])
    await stores.apps.add_key(device, device_hash)

    assert await stores.apps.list_keys(app.app_id) == sorted(
        [server, device], key=lambda key: key.key_id
    )
    assert await stores.apps.active_key(device_hash) == (device, app)
    assert await stores.apps.active_key("no-such-hash") is None

    revoked = await stores.apps.revoke_key(app.app_id, device.key_id, NOW)
    assert revoked == replace(device, revoked_at=NOW)
    # Revoking again keeps the first time.
    later = NOW + timedelta(hours=1)
    assert await stores.apps.revoke_key(app.app_id, device.key_id, later) == revoked
    assert await stores.apps.active_key(device_hash) is None
    assert await stores.apps.active_key(server_hash) == (server, app)


async def test_a_key_is_revoked_only_through_its_app(stores: Stores) -> None:
    app, other = new_app(), new_app()
    key, key_hash = new_key(app.app_id)
    await stores.apps.create_app(app, [(key, key_hash)])
    await stores.apps.create_app(other, [])

    assert await stores.apps.revoke_key(other.app_id, key.key_id, NOW) is None
    assert await stores.apps.active_key(key_hash) == (key, app)


async def test_credentials_are_stored_sealed_per_platform(stores: Stores) -> None:
    app = new_app()
    await stores.apps.create_app(app, [])
    apps = stores.apps

    assert await apps.credentials(app.app_id) == {}
    assert await apps.set_credentials(app.app_id, Platform.APNS, "sealed-apns")
    assert await apps.credentials(app.app_id) == {Platform.APNS: "sealed-apns"}
    stored = await apps.get_app(app.app_id)
    assert stored is not None and (stored.apns_configured, stored.fcm_configured) == (True, False)

    assert not await apps.replace_credentials(app.app_id, Platform.APNS, "stale", "sealed-2")
    # Only the platform's own stored value counts.
    assert not await apps.replace_credentials(app.app_id, Platform.FCM, "sealed-apns", "x")
    assert await apps.replace_credentials(app.app_id, Platform.APNS, "sealed-apns", "sealed-2")
    assert await apps.credentials(app.app_id) == {Platform.APNS: "sealed-2"}

    assert await apps.set_credentials(app.app_id, Platform.APNS, None)
    assert await apps.credentials(app.app_id) == {}
    assert not await apps.set_credentials(new_id(), Platform.FCM, "sealed-fcm")


async def test_the_signing_secret_is_replaced_only_while_expected(stores: Stores) -> None:
    app = new_app()
    await stores.apps.create_app(app, [])
    apps = stores.apps

    assert not await apps.replace_signing_secret(app.app_id, "stale", "sealed-2")
    assert await apps.replace_signing_secret(app.app_id, "sealed-secret", "sealed-2")
    assert await apps.set_signing_secret(app.app_id, "sealed-3")
    stored = await apps.get_app(app.app_id)
    assert stored is not None and stored.signing_secret == "sealed-3"
    assert not await apps.set_signing_secret(new_id(), "sealed-4")


async def test_deleting_an_app_takes_its_keys_and_registrations(stores: Stores) -> None:
    app = new_app()
    key, key_hash = new_key(app.app_id)
    await stores.apps.create_app(app, [(key, key_hash)])
    item = RegistrationInput(Platform.FCM, f"t-{new_id()}", ("news",), (), None, None, {}, {}, None)
    [result] = await stores.registrations.upsert_many(app.app_id, [item], NOW)

    assert await stores.apps.delete_app(app.app_id)

    assert await stores.apps.get_app(app.app_id) is None
    assert await stores.apps.active_key(key_hash) is None
    assert await stores.apps.list_keys(app.app_id) == []
    registration_id = result.registration.registration_id  # type: ignore[union-attr]
    assert await stores.registrations.get(app.app_id, registration_id, NOW) is None
    assert not await stores.apps.delete_app(app.app_id)
