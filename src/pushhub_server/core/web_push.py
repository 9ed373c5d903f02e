"""Web Push subscriptions' keys and VAPID credentials: the checks every caller shares.

A browser's ``PushSubscription.toJSON()`` gives an ``endpoint`` (see
core.web_push_endpoints) and two keys, base64url without padding:

- ``p256dh``: the user agent's ECDH public key, an uncompressed P-256 point
  (65 bytes, ``0x04 || X || Y``), which each message is encrypted to (RFC 8291);
- ``auth``: the 16-byte authentication secret mixed into the key derivation.

VAPID (RFC 8292) identifies the application server with a P-256 key pair; its
public half, base64url of the uncompressed point, is the ``applicationServerKey``
a page passes to ``pushManager.subscribe``. An app's private key is given as PEM
or as the raw 32-byte scalar in base64url (what web-push libraries print), or
generated here.

Like core.credentials, these rules load keys with ``cryptography``: what the
admin path and registration accept is exactly what the provider can use.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .errors import PushHubError, invalid_field, required

P256DH_BYTES = 65
AUTH_BYTES = 16
VAPID_SCALAR_BYTES = 32
# A subject goes into every VAPID token; push services read it to contact the sender.
SUBJECT_LENGTH = 1024
# Characters of a VAPID private key: a P-256 PKCS#8 PEM is about 240.
VAPID_KEY_LENGTH = 8192
INVALID_WEB_PUSH_KEYS = "INVALID_WEB_PUSH_KEYS"

_CURVE = ec.SECP256R1()
# Strict base64url: urlsafe_b64decode alone skips characters outside the alphabet.
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class WebPushKeys:
    """A subscription's keys, base64url as the browser gives them (and as stored)."""

    p256dh: str
    auth: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SubscriptionKeys:
    """WebPushKeys decoded: what the encryption takes."""

    p256dh: bytes
    auth: bytes


def decode_base64url(text: str) -> bytes:
    """Bytes of base64url text, padded or not; ValueError for anything else."""
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None


def encode_base64url(data: bytes) -> str:
    """base64url without padding, as Web Push and JOSE write it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def subscription_keys(keys: WebPushKeys, *, check_point: bool = True) -> SubscriptionKeys:
    """The decoded keys, once each is usable; PushHubError INVALID_ARGUMENT naming the field.

    p256dh must be a point on P-256, not merely 65 bytes: a point off the curve
    could never be encrypted to, so the registration would be dead on arrival.
    ``check_point=False`` leaves that check to the encryption, which loads the
    point anyway (the provider, per recipient).
    """
    p256dh = _decoded_key("web_push_keys.p256dh", keys.p256dh, P256DH_BYTES)
    # 0x04: uncompressed; the 65-byte hybrid forms (0x06, 0x07) are not what browsers send.
    if p256dh[0] != 4 or (check_point and not _on_curve(p256dh)):
        raise _bad_keys("web_push_keys.p256dh", "is not an uncompressed P-256 point")
    auth = _decoded_key("web_push_keys.auth", keys.auth, AUTH_BYTES)
    return SubscriptionKeys(p256dh, auth)


def _on_curve(point: bytes) -> bool:
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, point)
    except ValueError:
        return False
    return True


def _decoded_key(field_name: str, text: str, size: int) -> bytes:
    if not text:
        raise _bad_keys(field_name, "is required for Web Push")
    try:
        data = decode_base64url(text)
    except ValueError:
        raise _bad_keys(field_name, "is not base64url") from None
    if len(data) != size:
        raise _bad_keys(field_name, f"must be {size} bytes, not {len(data)}")
    return data


def _bad_keys(field_name: str, problem: str) -> PushHubError:
    return invalid_field(field_name, INVALID_WEB_PUSH_KEYS, f"{field_name} {problem}")


# ------------------------------------------------------------------ VAPID


@dataclass(frozen=True)
class WebPushCredentials:
    """An app's VAPID key pair and subject."""

    # PKCS#8 PEM, however it was given. repr=False: never in a log line.
    private_key_pem: str = field(repr=False)
    subject: str
    # base64url of the uncompressed public point: the applicationServerKey.
    public_key: str


def web_push_credentials(private_key: str, subject: str) -> WebPushCredentials:
    """SetWebPushCredentials' check: the key (PEM, raw base64url, or empty to
    generate one) and the subject (``mailto:`` or ``https:``)."""
    check_subject(subject)
    key = ec.generate_private_key(_CURVE) if not private_key.strip() else _vapid_key(private_key)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return WebPushCredentials(pem, subject, vapid_public_key(key))


def vapid_signing_key(private_key_pem: str) -> ec.EllipticCurvePrivateKey:
    """The stored key as the provider signs with it (stored credentials passed
    web_push_credentials, so this fails only on a corrupt row)."""
    return _vapid_key(private_key_pem)


def vapid_public_key(key: ec.EllipticCurvePrivateKey) -> str:
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return encode_base64url(point)


def check_subject(subject: str) -> str:
    """RFC 8292's ``sub``: a contact URI, ``mailto:`` or ``https:``."""
    if not subject:
        raise required("subject")
    if len(subject) > SUBJECT_LENGTH or not _VISIBLE_ASCII.fullmatch(subject):
        raise _bad_subject()
    if subject.startswith("mailto:"):
        if "@" not in subject[len("mailto:") :]:
            raise _bad_subject()
        return subject
    try:
        url = urllib.parse.urlsplit(subject)
    except ValueError:
        raise _bad_subject() from None
    if url.scheme != "https" or not url.hostname:
        raise _bad_subject()
    return subject


def _bad_subject() -> PushHubError:
    return invalid_field(
        "subject",
        "INVALID_CREDENTIALS",
        "subject must be a mailto: address or an https: URL (visible ASCII, "
        f"at most {SUBJECT_LENGTH} characters)",
    )


def _vapid_key(text: str) -> ec.EllipticCurvePrivateKey:
    if len(text) > VAPID_KEY_LENGTH:
        raise _bad_vapid_key(f"is over {VAPID_KEY_LENGTH} characters")
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(stripped.encode(), password=None)
        except (ValueError, TypeError):
            # Deliberately vague: the message must not echo any part of the key.
            raise _bad_vapid_key("is not a readable PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise _bad_vapid_key("must be an EC P-256 private key")
        return key
    try:
        scalar = decode_base64url(stripped)
    except ValueError:
        raise _bad_vapid_key("is neither PEM nor base64url") from None
    if len(scalar) != VAPID_SCALAR_BYTES:
        raise _bad_vapid_key(f"in base64url must be the {VAPID_SCALAR_BYTES}-byte P-256 scalar")
    try:
        return ec.derive_private_key(int.from_bytes(scalar, "big"), _CURVE)
    except ValueError:  # zero, or not below the curve's order
        raise _bad_vapid_key("is not a valid P-256 scalar") from None


def _bad_vapid_key(problem: str) -> PushHubError:
    return invalid_field("vapid_private_key", "INVALID_CREDENTIALS", f"vapid_private_key {problem}")
