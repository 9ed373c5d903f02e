"""The AdminService authorization matrix, through the session's gRPC server.

- the operator's admin token administers every app, and alone creates apps;
- an app's server key administers that app only;
- a device key administers nothing;
- no key, an unknown key or a revoked key is UNAUTHENTICATED;
- a key's secret is shown once, when it is created, and never listed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import duration_pb2

from pushhub.v1 import admin_pb2
from pushhub.v1 import registration_pb2 as reg

from .harness import (
    ADMIN_METADATA,
    APNS,
    AppHandle,
    Metadata,
    Stubs,
    bearer,
    expect_error,
    new_token,
    outcome_code,
)

DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
SERVER = admin_pb2.API_KEY_KIND_SERVER
DEVICE = admin_pb2.API_KEY_KIND_DEVICE

RPCS = (
    "CreateApp",
    "ListApps",
    "DeleteApp",
    "CreateApiKey",
    "ListApiKeys",
    "RevokeApiKey",
    "SetApnsCredentials",
    "SetFcmCredentials",
    "IssueUserToken",
)
# The RPCs that name an app (every one but CreateApp and ListApps).
APP_RPCS = tuple(rpc for rpc in RPCS if rpc not in ("CreateApp", "ListApps"))


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


_APNS_KEY = _pem(ec.generate_private_key(ec.SECP256R1()))
_FCM_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "project_id": "admin-matrix",
        "private_key_id": "k1",
        "private_key": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "client_email": "pushhub@admin-matrix.iam.gserviceaccount.com",
        "token_uri": "https://127.0.0.1:1/token",
    }
)


def admin_call(
    stubs: Stubs, rpc: str, app_id: str, metadata: Metadata, key_id: str = "no-such-key"
) -> Awaitable[object]:
    """One AdminService call about `app_id` (CreateApp: a new app) with `metadata`."""
    admin = stubs.admin
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "CreateApp": lambda: admin.CreateApp(
            admin_pb2.CreateAppRequest(name=f"matrix-{uuid.uuid4().hex}"), metadata=metadata
        ),
        "ListApps": lambda: admin.ListApps(admin_pb2.ListAppsRequest(), metadata=metadata),
        "DeleteApp": lambda: admin.DeleteApp(
            admin_pb2.DeleteAppRequest(app_id=app_id), metadata=metadata
        ),
        "CreateApiKey": lambda: admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(app_id=app_id, kind=DEVICE), metadata=metadata
        ),
        "ListApiKeys": lambda: admin.ListApiKeys(
            admin_pb2.ListApiKeysRequest(app_id=app_id), metadata=metadata
        ),
        "RevokeApiKey": lambda: admin.RevokeApiKey(
            admin_pb2.RevokeApiKeyRequest(app_id=app_id, key_id=key_id), metadata=metadata
        ),
        "SetApnsCredentials": lambda: admin.SetApnsCredentials(
            admin_pb2.SetApnsCredentialsRequest(
                app_id=app_id,
                key_id="ABC123DEFG",
                team_id="TEAM123456",
                topic="com.example.matrix",
                private_key_pem=_APNS_KEY,
                environment=admin_pb2.APNS_ENVIRONMENT_SANDBOX,
            ),
            metadata=metadata,
        ),
        "SetFcmCredentials": lambda: admin.SetFcmCredentials(
            admin_pb2.SetFcmCredentialsRequest(app_id=app_id, service_account_json=_FCM_ACCOUNT),
            metadata=metadata,
        ),
        "IssueUserToken": lambda: admin.IssueUserToken(
            admin_pb2.IssueUserTokenRequest(
                app_id=app_id, user_id="alice", ttl=duration_pb2.Duration(seconds=600)
            ),
            metadata=metadata,
        ),
    }
    return calls[rpc]()


async def all_apps(stubs: Stubs, metadata: Metadata = ADMIN_METADATA) -> list[admin_pb2.App]:
    apps: list[admin_pb2.App] = []
    token = ""
    while True:
        page = await stubs.admin.ListApps(
            admin_pb2.ListAppsRequest(page_size=100, page_token=token), metadata=metadata
        )
        apps.extend(page.apps)
        token = page.next_page_token
        if not token:
            return apps


async def list_keys(app: AppHandle, metadata: Metadata | None = None) -> list[admin_pb2.ApiKey]:
    answer = await app.stubs.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(app_id=app.app_id), metadata=metadata or app.server()
    )
    return list(answer.api_keys)


async def can_register(stubs: Stubs, key: str) -> grpc.StatusCode:
    request = reg.RegisterDeviceRequest(platform=APNS, device_token=new_token())
    return await outcome_code(stubs.registrations.RegisterDevice(request, metadata=bearer(key)))


# ------------------------------------------------------------ operator ----


async def test_operator_creates_lists_and_deletes_any_app(stubs: Stubs, app: AppHandle) -> None:
    name = f"matrix-{uuid.uuid4().hex}"
    created = await stubs.admin.CreateApp(
        admin_pb2.CreateAppRequest(name=name), metadata=ADMIN_METADATA
    )
    new_id = created.app.app_id
    assert created.app.name == name
    assert await can_register(stubs, created.server_key) == grpc.StatusCode.OK

    listed = {listed.app_id: listed for listed in await all_apps(stubs)}
    assert {app.app_id, new_id} <= set(listed)
    assert listed[new_id].name == name

    await stubs.admin.DeleteApp(admin_pb2.DeleteAppRequest(app_id=new_id), metadata=ADMIN_METADATA)

    assert new_id not in {listed.app_id for listed in await all_apps(stubs)}
    assert await can_register(stubs, created.server_key) == UNAUTHENTICATED
    assert await can_register(stubs, created.device_key) == UNAUTHENTICATED
    await expect_error(
        stubs.admin.DeleteApp(admin_pb2.DeleteAppRequest(app_id=new_id), metadata=ADMIN_METADATA),
        grpc.StatusCode.NOT_FOUND,
        "APP_NOT_FOUND",
    )
    # The other apps are untouched.
    assert await can_register(stubs, app.server_key) == grpc.StatusCode.OK


@pytest.mark.parametrize("rpc", APP_RPCS)
async def test_operator_administers_any_app(stubs: Stubs, app: AppHandle, rpc: str) -> None:
    key_id = ""
    if rpc == "RevokeApiKey":
        made = await stubs.admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(app_id=app.app_id, kind=DEVICE), metadata=ADMIN_METADATA
        )
        key_id = made.api_key.key_id
    answer = await admin_call(stubs, rpc, app.app_id, ADMIN_METADATA, key_id)
    assert answer is not None


# ------------------------------------------------------------ server key ----


async def test_server_key_administers_its_own_app(app: AppHandle) -> None:
    admin = app.stubs.admin
    own = await admin.ListApps(admin_pb2.ListAppsRequest(page_size=100), metadata=app.server())
    assert [(listed.app_id, listed.name) for listed in own.apps] == [(app.app_id, app.name)]

    made_server = await admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(app_id=app.app_id, kind=SERVER), metadata=app.server()
    )
    made_device = await admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(app_id=app.app_id, kind=DEVICE), metadata=app.server()
    )
    assert (made_server.api_key.kind, made_device.api_key.kind) == (SERVER, DEVICE)
    assert made_server.api_key.app_id == made_device.api_key.app_id == app.app_id
    listed = {key.key_id for key in await list_keys(app)}
    assert {made_server.api_key.key_id, made_device.api_key.key_id} <= listed

    revoked = await admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(app_id=app.app_id, key_id=made_device.api_key.key_id),
        metadata=app.server(),
    )
    assert revoked.api_key.key_id == made_device.api_key.key_id
    assert revoked.api_key.HasField("revoke_time")

    apns = await admin_call(app.stubs, "SetApnsCredentials", app.app_id, app.server())
    fcm = await admin_call(app.stubs, "SetFcmCredentials", app.app_id, app.server())
    assert apns.app.apns_configured and fcm.app.fcm_configured  # type: ignore[attr-defined]

    token = await admin_call(app.stubs, "IssueUserToken", app.app_id, app.server())
    assert token.token and token.HasField("expire_time")  # type: ignore[attr-defined]

    # The key made here administers the app as well.
    assert [key.key_id for key in await list_keys(app, bearer(made_server.key))]


@pytest.mark.parametrize("rpc", APP_RPCS)
async def test_server_key_is_denied_another_app(
    app: AppHandle, other_app: AppHandle, rpc: str
) -> None:
    [other_key, *_] = await list_keys(other_app)
    await expect_error(
        admin_call(app.stubs, rpc, other_app.app_id, app.server(), other_key.key_id),
        DENIED,
        "ADMIN_NOT_ALLOWED",
    )
    # Nothing changed: the other app and its keys still work.
    assert await can_register(other_app.stubs, other_app.server_key) == grpc.StatusCode.OK
    assert await can_register(other_app.stubs, other_app.device_key) == grpc.StatusCode.OK
    keys = await list_keys(other_app)
    assert not any(key.HasField("revoke_time") for key in keys)
    assert len(keys) == 2, "the denied call created a key"


async def test_server_key_may_not_create_apps(app: AppHandle) -> None:
    before = len(await all_apps(app.stubs))
    await expect_error(
        admin_call(app.stubs, "CreateApp", app.app_id, app.server()),
        DENIED,
        "ADMIN_TOKEN_REQUIRED",
    )
    assert len(await all_apps(app.stubs)) == before


async def test_key_ids_do_not_cross_apps(app: AppHandle, other_app: AppHandle) -> None:
    """A server key naming its own app but another app's key id revokes nothing."""
    other_ids = {key.key_id for key in await list_keys(other_app)}
    for key_id in other_ids:
        await expect_error(
            app.stubs.admin.RevokeApiKey(
                admin_pb2.RevokeApiKeyRequest(app_id=app.app_id, key_id=key_id),
                metadata=app.server(),
            ),
            grpc.StatusCode.NOT_FOUND,
            "API_KEY_NOT_FOUND",
        )
    assert not other_ids & {key.key_id for key in await list_keys(app)}
    assert await can_register(other_app.stubs, other_app.server_key) == grpc.StatusCode.OK


# ------------------------------------------------------------ device key ----


@pytest.mark.parametrize("rpc", RPCS)
async def test_device_key_is_denied_every_admin_rpc(app: AppHandle, rpc: str) -> None:
    [own_key, *_] = await list_keys(app)
    reason = "ADMIN_TOKEN_REQUIRED" if rpc == "CreateApp" else "ADMIN_NOT_ALLOWED"
    await expect_error(
        admin_call(app.stubs, rpc, app.app_id, app.device(), own_key.key_id), DENIED, reason
    )
    assert await can_register(app.stubs, app.server_key) == grpc.StatusCode.OK
    assert len(await list_keys(app)) == 2


# --------------------------------------------------------- no key, wrong key ----

NOT_KEYS: dict[str, Metadata] = {
    "no metadata": (),
    "unknown key": bearer("phs_not-a-key"),
    "admin token with a typo": bearer("test-admin-tokem"),
    "admin token, not bearer": (("authorization", "Basic test-admin-token"),),
    "empty bearer": (("authorization", "Bearer "),),
}


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize("credentials", NOT_KEYS.values(), ids=NOT_KEYS.keys())
async def test_no_or_wrong_key_is_unauthenticated(
    app: AppHandle, rpc: str, credentials: Metadata
) -> None:
    await expect_error(
        admin_call(app.stubs, rpc, app.app_id, credentials), UNAUTHENTICATED, "API_KEY_INVALID"
    )


@pytest.mark.parametrize("kind", [SERVER, DEVICE])
async def test_revoked_key_stops_working(app: AppHandle, kind: int) -> None:
    made = await app.stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(app_id=app.app_id, kind=kind), metadata=ADMIN_METADATA
    )
    key = made.key
    assert await can_register(app.stubs, key) == grpc.StatusCode.OK
    if kind == SERVER:
        assert await list_keys(app, bearer(key))

    await app.stubs.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(app_id=app.app_id, key_id=made.api_key.key_id),
        metadata=app.server(),
    )

    assert await can_register(app.stubs, key) == UNAUTHENTICATED
    for rpc in RPCS:
        await expect_error(
            admin_call(app.stubs, rpc, app.app_id, bearer(key)), UNAUTHENTICATED, "API_KEY_INVALID"
        )
    [listed] = [k for k in await list_keys(app) if k.key_id == made.api_key.key_id]
    assert listed.HasField("revoke_time")
    # The app's other keys are unaffected.
    assert await can_register(app.stubs, app.server_key) == grpc.StatusCode.OK
    assert await can_register(app.stubs, app.device_key) == grpc.StatusCode.OK


# ------------------------------------------------------------- secrets ----


async def test_a_key_is_shown_once_and_never_listed(app: AppHandle) -> None:
    made = await app.stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(app_id=app.app_id, kind=SERVER), metadata=app.server()
    )
    secret = made.key
    assert secret and secret not in (app.server_key, app.device_key)
    assert made.api_key.prefix and secret.startswith(made.api_key.prefix)
    assert len(made.api_key.prefix) < len(secret) // 2, "the prefix gives the key away"
    assert secret not in str(made.api_key)

    secrets = (secret, app.server_key, app.device_key)
    listed = await app.stubs.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(app_id=app.app_id), metadata=ADMIN_METADATA
    )
    revoked = await app.stubs.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(app_id=app.app_id, key_id=made.api_key.key_id),
        metadata=app.server(),
    )
    apps = await all_apps(app.stubs)
    own_apps = await app.stubs.admin.ListApps(admin_pb2.ListAppsRequest(), metadata=app.server())
    assert len(listed.api_keys) == 3
    for answer in (listed, revoked, own_apps, *apps):
        text = str(answer)
        for value in secrets:
            assert value not in text
            assert value.encode() not in answer.SerializeToString()
