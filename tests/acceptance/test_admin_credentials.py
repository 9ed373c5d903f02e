"""AdminService credentials: validated, sealed at rest, never returned or logged."""

from __future__ import annotations

import json
import logging

import grpc
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.ext.asyncio import create_async_engine

from pushhub.v1 import admin_pb2

from .harness import AppHandle, Stubs, bearer, check_error, expect_error

ADMIN = bearer("test-admin-token")


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def apns_request(app_id: str) -> admin_pb2.SetApnsCredentialsRequest:
    return admin_pb2.SetApnsCredentialsRequest(
        app_id=app_id,
        key_id="ABC123DEFG",
        team_id="TEAM123456",
        topic="com.example.app",
        private_key_pem=_pem(ec.generate_private_key(ec.SECP256R1())),
        environment=admin_pb2.APNS_ENVIRONMENT_SANDBOX,
    )


def service_account(project: str = "demo-project") -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": "k1",
            "private_key": _pem(key),
            "client_email": f"pushhub@{project}.iam.gserviceaccount.com",
            "token_uri": "https://127.0.0.1:1/token",
        }
    )


async def stored_credentials(database_url: str, app_id: str) -> tuple[str, str]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.text("SELECT apns_credentials, fcm_credentials FROM apps WHERE id = :id"),
                    {"id": app_id},
                )
            ).one()
    finally:
        await engine.dispose()
    return row[0], row[1]


async def test_server_key_sets_credentials_sealed_at_rest(
    app: AppHandle, stubs: Stubs, empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    apns = apns_request(app.app_id)
    fcm_json = service_account()
    answer = await stubs.admin.SetApnsCredentials(apns, metadata=app.server())
    assert answer.app.apns_configured and not answer.app.fcm_configured
    answer = await stubs.admin.SetFcmCredentials(
        admin_pb2.SetFcmCredentialsRequest(app_id=app.app_id, service_account_json=fcm_json),
        metadata=app.server(),
    )
    assert answer.app.apns_configured and answer.app.fcm_configured
    private_fcm_key = json.loads(fcm_json)["private_key"]
    for text in (str(answer), caplog.text):
        assert "PRIVATE KEY" not in text
    stored_apns, stored_fcm = await stored_credentials(empty_database, app.app_id)
    for stored in (stored_apns, stored_fcm):
        assert stored.startswith("fernet:")
        assert "PRIVATE" not in stored and "demo-project" not in stored
    assert private_fcm_key not in stored_fcm


async def test_operator_sets_any_apps_credentials(app: AppHandle, stubs: Stubs) -> None:
    answer = await stubs.admin.SetApnsCredentials(apns_request(app.app_id), metadata=ADMIN)
    assert answer.app.app_id == app.app_id and answer.app.apns_configured


async def test_credentials_denials(app: AppHandle, other_app: AppHandle, stubs: Stubs) -> None:
    request = apns_request(app.app_id)
    await expect_error(
        stubs.admin.SetApnsCredentials(request, metadata=other_app.server()),
        grpc.StatusCode.PERMISSION_DENIED,
        "ADMIN_NOT_ALLOWED",
    )
    await expect_error(
        stubs.admin.SetApnsCredentials(request, metadata=app.device()),
        grpc.StatusCode.PERMISSION_DENIED,
        "ADMIN_NOT_ALLOWED",
    )
    await expect_error(
        stubs.admin.SetApnsCredentials(request, metadata=bearer("phs_wrong")),
        grpc.StatusCode.UNAUTHENTICATED,
        "API_KEY_INVALID",
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"key_id": "short"}, "key_id"),
        ({"team_id": "lower-case!"}, "team_id"),
        ({"private_key_pem": "not a key"}, "private_key_pem"),
        ({"private_key_pem": _pem(rsa.generate_private_key(65537, 2048))}, "private_key_pem"),
        # ES256 signs with P-256 only: the APNs provider could not use another curve.
        ({"private_key_pem": _pem(ec.generate_private_key(ec.SECP384R1()))}, "private_key_pem"),
        # The topic becomes a header line: a line break would end it.
        ({"topic": "com.example.app\r\napns-priority: 10"}, "topic"),
        ({"topic": "com.example." + "a" * 244}, "topic"),
        ({"private_key_pem": "-----BEGIN PRIVATE KEY-----\n" + "A" * 8192}, "private_key_pem"),
    ],
)
async def test_bad_apns_credentials(
    app: AppHandle, stubs: Stubs, change: dict[str, str], field: str
) -> None:
    request = apns_request(app.app_id)
    for name, value in change.items():
        setattr(request, name, value)
    info = await expect_error(
        stubs.admin.SetApnsCredentials(request, metadata=app.server()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_CREDENTIALS",
        field=field,
    )
    assert "PRIVATE" not in str(info)


@pytest.mark.parametrize(
    "document",
    ["{", "[]", json.dumps({"type": "authorized_user"}), json.dumps({"type": "service_account"})],
)
async def test_bad_service_account(app: AppHandle, stubs: Stubs, document: str) -> None:
    await expect_error(
        stubs.admin.SetFcmCredentials(
            admin_pb2.SetFcmCredentialsRequest(app_id=app.app_id, service_account_json=document),
            metadata=app.server(),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_CREDENTIALS",
        field="service_account_json",
    )


# A throwaway 512-bit RSA key: cryptography no longer generates keys this short.
RSA_512 = """-----BEGIN PRIVATE KEY-----
MIIBUwIBADANBgkqhkiG9w0BAQEFAASCAT0wggE5AgEAAkEAzeY91I1rw1xt21V6
8TTXxzwZC6ojWwHCOdQMYaRfyvzl8DaOzPUf53r6OVMu+FDc/+hSRVCQ5Pqbhrfk
ZSZT4wIDAQABAkBA+Vwfm/UatCsyoLnoLf29sHhS1wDLMjXhW8oAcgeMnUrS+gTg
vvJeU9mqfBnyNqysT7Z0Lsu9HvLfWNLn1YPxAiEA7Wtkt6vGqlWwkJpmCpP+29KC
jUqj4IuPHSLq5oqruVsCIQDeA1rSoHJ3I18j9nhVS6RsEOKSkBSCJ1pJpC9lzM7O
GQIgdJazW/rP0V/JGAmqKHGqytoiYC4SMbd27RDzl4jrcVcCIEv07d/eEQt9yJEv
RCA6jviCFmJ6dOnKuPM0/xpfJeoRAiAaZIKTssm4D3s1zK/PZQY15A4PBka2VSKK
fyWjg5zSzA==
-----END PRIVATE KEY-----
"""


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"private_key_id": None}, "private_key_id"),
        # The project id goes into the FCM URL path.
        ({"project_id": "/../x"}, "project_id"),
        ({"project_id": "demo-project/../../v1/projects/other"}, "project_id"),
        ({"project_id": "demo project"}, "project_id"),
        ({"project_id": "Demo-Project"}, "project_id"),
        ({"project_id": "short"}, "project_id"),
        ({"project_id": "demo-project-"}, "project_id"),
        ({"private_key": RSA_512}, "512 bits"),
        ({"private_key": _pem(rsa.generate_private_key(65537, 1024))}, "1024 bits"),
        ({"private_key": _pem(rsa.generate_private_key(65537, 2047))}, "2047 bits"),
        ({"token_uri": None}, "token_uri"),
        ({"private_key_id": ""}, "private_key_id"),
        ({"client_email": 42}, "client_email"),
        ({"token_uri": "http://oauth2.googleapis.com/token"}, "token_uri"),
        ({"token_uri": "oauth2.googleapis.com"}, "token_uri"),
        ({"token_uri": "https://oauth2.googleapis.com/token\n"}, "token_uri"),
    ],
)
async def test_service_account_the_provider_cannot_use_is_refused(
    app: AppHandle, stubs: Stubs, change: dict[str, object], named: str
) -> None:
    """The FCM provider's token exchange needs all five fields, token_uri an https URL."""
    account = json.loads(service_account())
    for name, value in change.items():
        if value is None:
            del account[name]
        else:
            account[name] = value
    request = admin_pb2.SetFcmCredentialsRequest(
        app_id=app.app_id, service_account_json=json.dumps(account)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.admin.SetFcmCredentials(request, metadata=app.server())
    check_error(
        caught.value,
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_CREDENTIALS",
        field="service_account_json",
    )
    assert named in (caught.value.details() or "")
    assert "PRIVATE" not in str(caught.value)


@pytest.mark.parametrize("project", ["abcdef", "a" * 30, "demo-1-2-3", "example.com:demo-project"])
async def test_project_ids_google_issues_are_accepted(
    app: AppHandle, stubs: Stubs, project: str
) -> None:
    request = admin_pb2.SetFcmCredentialsRequest(
        app_id=app.app_id, service_account_json=service_account(project)
    )
    answer = await stubs.admin.SetFcmCredentials(request, metadata=app.server())
    assert answer.app.fcm_configured
