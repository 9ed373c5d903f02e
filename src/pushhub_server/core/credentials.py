"""Provider credentials: validated when set, sealed at rest, never shown again."""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .errors import ErrorCode, PushHubError, invalid_field, required

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_APPLE_ID = re.compile(r"[A-Z0-9]{10}")
_SEALED = "fernet:"
_PLAIN = "plain:"


class ApnsEnvironment(enum.IntEnum):
    PRODUCTION = 1
    SANDBOX = 2


@dataclass(frozen=True)
class ApnsCredentials:
    key_id: str
    team_id: str
    topic: str
    # repr=False: the key must never reach a log line through repr().
    private_key_pem: str = field(repr=False)
    environment: ApnsEnvironment = ApnsEnvironment.PRODUCTION


@dataclass(frozen=True)
class FcmCredentials:
    service_account: dict[str, Any] = field(repr=False)

    @property
    def project_id(self) -> str:
        return str(self.service_account["project_id"])

    @property
    def token_uri(self) -> str:
        return str(self.service_account.get("token_uri") or GOOGLE_TOKEN_URI)


def apns_credentials(
    key_id: str, team_id: str, topic: str, private_key_pem: str, environment: int
) -> ApnsCredentials:
    for name, value in (("key_id", key_id), ("team_id", team_id)):
        if not _APPLE_ID.fullmatch(value):
            raise invalid_field(name, "INVALID_CREDENTIALS", f"{name} must be 10 characters A-Z0-9")
    if not topic:
        raise required("topic")
    if not isinstance(_private_key("private_key_pem", private_key_pem), ec.EllipticCurvePrivateKey):
        raise _bad_key("private_key_pem", "an APNs .p8 key must be an EC P-256 private key")
    try:
        chosen = ApnsEnvironment(environment or ApnsEnvironment.PRODUCTION)
    except ValueError:
        raise invalid_field("environment", "INVALID_CREDENTIALS", "unknown environment") from None
    return ApnsCredentials(key_id, team_id, topic, private_key_pem, chosen)


def fcm_credentials(service_account_json: str) -> FcmCredentials:
    field_name = "service_account_json"
    try:
        account = json.loads(service_account_json)
    except ValueError:
        raise _bad_key(field_name, "service_account_json is not JSON") from None
    if not isinstance(account, dict) or account.get("type") != "service_account":
        raise _bad_key(field_name, 'the JSON must be a service account ("type": "service_account")')
    for key in ("project_id", "private_key", "client_email"):
        if not isinstance(account.get(key), str) or not account[key]:
            raise _bad_key(field_name, f"the service account lacks {key}")
    if not isinstance(_private_key(field_name, account["private_key"]), rsa.RSAPrivateKey):
        raise _bad_key(field_name, "the service account's private_key must be an RSA key")
    return FcmCredentials(account)


def _private_key(field_name: str, pem: str) -> object:
    try:
        return load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        # Deliberately vague: the message must not echo any part of the key.
        raise _bad_key(field_name, f"{field_name} is not a readable PEM private key") from None


def _bad_key(field_name: str, message: str) -> PushHubError:
    return invalid_field(field_name, "INVALID_CREDENTIALS", message)


class SecretBox:
    """Seals stored secrets with Fernet (AES-128-CBC + HMAC) when a secret key is set.

    Without PUSHHUB_SECRET_KEY values are stored marked as plain, so turning
    the key on later still reads them (and seals them on the next write).
    """

    def __init__(self, secret_key: str | None) -> None:
        self._fernet = Fernet(_fernet_key(secret_key)) if secret_key else None

    def seal(self, value: str) -> str:
        if self._fernet is None:
            return _PLAIN + value
        return _SEALED + self._fernet.encrypt(value.encode()).decode()

    def open(self, stored: str) -> str:
        if stored.startswith(_PLAIN):
            return stored[len(_PLAIN) :]
        if self._fernet is None:
            raise _unreadable("credentials are encrypted; set PUSHHUB_SECRET_KEY to read them")
        try:
            return self._fernet.decrypt(stored[len(_SEALED) :].encode()).decode()
        except InvalidToken:
            raise _unreadable("credentials were sealed with another PUSHHUB_SECRET_KEY") from None


def _fernet_key(secret_key: str) -> bytes:
    # Any passphrase works: derive the 32-byte Fernet key from it.
    return base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest())


def _unreadable(message: str) -> PushHubError:
    return PushHubError(ErrorCode.FAILED_PRECONDITION, "CREDENTIALS_UNREADABLE", message)


def dump_apns(credentials: ApnsCredentials) -> str:
    values = asdict(credentials)
    values["environment"] = int(credentials.environment)
    return json.dumps(values)


def load_apns(text: str) -> ApnsCredentials:
    values = json.loads(text)
    values["environment"] = ApnsEnvironment(values["environment"])
    return ApnsCredentials(**values)


def dump_fcm(credentials: FcmCredentials) -> str:
    return json.dumps(credentials.service_account)


def load_fcm(text: str) -> FcmCredentials:
    return FcmCredentials(json.loads(text))
