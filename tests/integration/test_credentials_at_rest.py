"""Credentials stored before PUSHHUB_SECRET_KEY was set: reported, then sealed on the next write."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushhub_server.core.apps import AppService
from pushhub_server.core.clock import ManualClock
from pushhub_server.core.credentials import SecretBox, apns_credentials, fcm_credentials
from pushhub_server.core.models import Platform
from pushhub_server.store import SqlAppRepository

SECRET_KEY = "at-rest-secret-key"


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


APNS = apns_credentials(
    "ABC123DEFG", "TEAM123456", "com.example.app", _pem(ec.generate_private_key(ec.SECP256R1())), 1
)


def _fcm(project: str) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": "k1",
            "private_key": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "client_email": f"pushhub@{project}.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


async def test_unsealed_credentials_are_reported_then_sealed_on_the_next_write(
    apps: SqlAppRepository, app_id: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    unsealed = AppService(apps, clock, secrets_box=SecretBox(None))
    await unsealed.set_apns_credentials(app_id, APNS)
    await unsealed.set_fcm_credentials(app_id, fcm_credentials(_fcm("project-before")))

    keyed = AppService(apps, clock, secrets_box=SecretBox(SECRET_KEY))
    for _ in range(3):  # every delivery run reads them: one warning per platform
        assert (await keyed.provider_credentials(app_id))[Platform.APNS] == APNS
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [
        f"app {app_id}: its {name} credentials are stored unsealed although "
        "PUSHHUB_SECRET_KEY is set; setting any of the app's credentials again seals them"
        for name in ("APNS", "FCM")
    ]
    assert all(value.startswith("plain:") for value in (await apps.credentials(app_id)).values())

    # A write of the FCM credentials seals the APNs ones stored earlier too.
    await keyed.set_fcm_credentials(app_id, fcm_credentials(_fcm("project-after")))

    stored = await apps.credentials(app_id)
    assert set(stored) == {Platform.APNS, Platform.FCM}
    assert all(value.startswith("fernet:") for value in stored.values())
    opened = await keyed.provider_credentials(app_id)
    apns, fcm = opened[Platform.APNS], opened[Platform.FCM]
    assert apns == APNS and fcm is not None and fcm.project_id == "project-after"
    assert "PRIVATE" not in caplog.text and SECRET_KEY not in caplog.text
