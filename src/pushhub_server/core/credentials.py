"""Provider credentials: validated when set, sealed at rest, never shown again.

The checks here are the providers' own: the APNs provider loads its signing key
with apns_signing_key and the FCM provider reads its service account with
service_account_fields, so whatever SetApnsCredentials and SetFcmCredentials
accept, the providers can use.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import re
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .errors import ErrorCode, PushHubError, invalid_field, required
from .json_documents import parse_json
from .web_push import WebPushCredentials, check_subject, vapid_public_key, vapid_signing_key

_APPLE_ID = re.compile(r"[A-Z0-9]{10}")
# Text that goes into a header line or a URL (the APNs topic, the token_uri):
# visible ASCII only, so no space or line break can split or end the line.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
# What the FCM provider's token exchange reads from a service account.
SERVICE_ACCOUNT_FIELDS = (
    "project_id",
    "private_key_id",
    "private_key",
    "client_email",
    "token_uri",
)
_ACCOUNT = "service_account_json"
# Characters of a service account's JSON: one with a 4,096-bit key is about 3.5 KB.
MAX_SERVICE_ACCOUNT = 16384
# Characters of an APNs .p8 key: one is about 240.
MAX_PEM = 8192
# A bundle id is at most 155 characters; topics add suffixes such as ".voip".
MAX_TOPIC = 255
# Google Cloud project ids: 6-30 lowercase letters, digits and hyphens, starting
# with a letter, not ending with a hyphen; legacy domain-scoped projects carry a
# "example.com:" prefix. The id goes into the FCM URL path, so nothing else passes.
_PROJECT_ID = re.compile(
    r"(?:(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]"
)
# An AppGallery Connect app's OAuth client id is its numeric App ID; it goes into
# the Push Kit URL path (/v1/<client_id>/messages:send), so nothing else passes.
_HMS_CLIENT_ID = re.compile(r"[0-9]{1,32}")
# Client secrets are 64 hex digits today; any visible ASCII up to this length passes.
MAX_HMS_SECRET = 512
# NIST SP 800-131A: RSA keys under 2048 bits no longer sign anything (Google's own are 2048).
MIN_RSA_BITS = 2048
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

    def same_signing_key(self, other: ApnsCredentials) -> bool:
        """A provider token made for one is valid for the other: it depends on the
        key alone, not on the topic or the environment."""
        mine = (self.key_id, self.team_id, self.private_key_pem)
        return mine == (other.key_id, other.team_id, other.private_key_pem)


@dataclass(frozen=True)
class FcmCredentials:
    service_account: dict[str, Any] = field(repr=False)

    @property
    def project_id(self) -> str:
        return str(self.service_account["project_id"])


@dataclass(frozen=True)
class HmsCredentials:
    """An AppGallery Connect app's OAuth 2.0 client (client credentials grant)."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class UnreadableCredentials:
    """Stored credentials this process cannot open (sealed with another key, or corrupt)."""

    reason: str


def apns_credentials(
    key_id: str, team_id: str, topic: str, private_key_pem: str, environment: int
) -> ApnsCredentials:
    for name, value in (("key_id", key_id), ("team_id", team_id)):
        if not _APPLE_ID.fullmatch(value):
            raise invalid_field(name, "INVALID_CREDENTIALS", f"{name} must be 10 characters A-Z0-9")
    if not topic:
        raise required("topic")
    if len(topic) > MAX_TOPIC or not _VISIBLE_ASCII.fullmatch(topic):
        raise invalid_field(
            "topic",
            "INVALID_CREDENTIALS",
            f"topic must be a bundle id: at most {MAX_TOPIC} characters of visible ASCII",
        )
    if len(private_key_pem) > MAX_PEM:
        raise _bad_key("private_key_pem", f"private_key_pem is over {MAX_PEM} characters")
    apns_signing_key(private_key_pem)
    try:
        chosen = ApnsEnvironment(environment or ApnsEnvironment.PRODUCTION)
    except ValueError:
        raise invalid_field("environment", "INVALID_CREDENTIALS", "unknown environment") from None
    return ApnsCredentials(key_id, team_id, topic, private_key_pem, chosen)


def hms_credentials(client_id: str, client_secret: str) -> HmsCredentials:
    """SetHmsCredentials' check: what the HMS provider puts in its URL and token form."""
    if not client_id:
        raise required("client_id")
    if not _HMS_CLIENT_ID.fullmatch(client_id):
        raise invalid_field(
            "client_id",
            "INVALID_CREDENTIALS",
            "client_id must be the AppGallery Connect app's numeric App ID (1-32 digits)",
        )
    if not client_secret:
        raise required("client_secret")
    if len(client_secret) > MAX_HMS_SECRET or not _VISIBLE_ASCII.fullmatch(client_secret):
        # Deliberately vague: the message must not echo any part of the secret.
        raise invalid_field(
            "client_secret",
            "INVALID_CREDENTIALS",
            f"client_secret must be at most {MAX_HMS_SECRET} characters of visible ASCII",
        )
    return HmsCredentials(client_id, client_secret)


def apns_signing_key(private_key_pem: str) -> ec.EllipticCurvePrivateKey:
    """The .p8 key, as ES256 provider tokens need it: EC on the P-256 curve."""
    key = _private_key("private_key_pem", private_key_pem)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _bad_key("private_key_pem", "an APNs .p8 key must be an EC P-256 private key")
    return key


def fcm_credentials(service_account_json: str) -> FcmCredentials:
    if len(service_account_json) > MAX_SERVICE_ACCOUNT:
        raise _bad_key(_ACCOUNT, f"service_account_json is over {MAX_SERVICE_ACCOUNT} characters")
    try:
        account = parse_json(service_account_json)
    except ValueError as error:
        raise _bad_key(_ACCOUNT, f"service_account_json is not JSON: {error}") from None
    service_account_fields(account)
    return FcmCredentials(account)


def service_account_fields(account: object) -> dict[str, str]:
    """The fields the OAuth2 token exchange uses, once each is checked usable."""
    if not isinstance(account, dict) or account.get("type") != "service_account":
        raise _bad_key(_ACCOUNT, 'the JSON must be a service account ("type": "service_account")')
    for name in SERVICE_ACCOUNT_FIELDS:
        if not isinstance(account.get(name), str) or not account[name]:
            raise _bad_key(_ACCOUNT, f"the service account lacks {name}")
    if not _PROJECT_ID.fullmatch(account["project_id"]):
        raise _bad_key(
            _ACCOUNT,
            "the service account's project_id must be a Google Cloud project id "
            "(6-30 characters a-z, 0-9 and -, starting with a letter)",
        )
    key = _private_key(_ACCOUNT, account["private_key"])
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _bad_key(_ACCOUNT, "the service account's private_key must be an RSA key")
    if key.key_size < MIN_RSA_BITS:
        raise _bad_key(
            _ACCOUNT,
            f"the service account's private_key has {key.key_size} bits; "
            f"at least {MIN_RSA_BITS} are required",
        )
    # The signed assertion is as good as a password for an hour: TLS only.
    if not _https_url(account["token_uri"]):
        raise _bad_key(_ACCOUNT, "the service account's token_uri must be an https URL")
    return {name: account[name] for name in SERVICE_ACCOUNT_FIELDS}


def _https_url(text: str) -> bool:
    if not _VISIBLE_ASCII.fullmatch(text):
        return False
    try:
        url = urllib.parse.urlsplit(text)
        # .port raises ValueError for a port out of range, as urllib would when posting.
        return url.scheme == "https" and bool(url.hostname) and url.port != 0
    except ValueError:  # an unparsable host or port
        return False


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
    the key on later still reads them; core.apps seals provider credentials on
    the app's next credentials write, and signing secrets when a server starts.
    """

    def __init__(self, secret_key: str | None) -> None:
        self._fernet = Fernet(_fernet_key(secret_key)) if secret_key else None

    @property
    def has_key(self) -> bool:
        return self._fernet is not None

    def needs_sealing(self, stored: str) -> bool:
        """A value stored plain although this box has a key to seal it."""
        return self.has_key and stored.startswith(_PLAIN)

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


def dump_web_push(credentials: WebPushCredentials) -> str:
    return json.dumps(asdict(credentials))


def load_web_push(text: str) -> WebPushCredentials:
    values = json.loads(text)
    credentials = WebPushCredentials(**values)
    # The public key is derived again: a stored one that does not match is a corrupt row.
    if vapid_public_key(vapid_signing_key(credentials.private_key_pem)) != credentials.public_key:
        raise ValueError("the stored VAPID public key does not match its private key")
    check_subject(credentials.subject)
    return credentials


def dump_hms(credentials: HmsCredentials) -> str:
    return json.dumps(asdict(credentials))


def load_hms(text: str) -> HmsCredentials:
    return HmsCredentials(**json.loads(text))
