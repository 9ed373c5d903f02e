"""Web Push wire format: a message's RFC 8030 headers and its RFC 8291 encrypted body.

The payload itself is plaintext JSON, the object a service worker reads; what goes
on the wire is these headers and that payload encrypted to each subscription. The
provider adds ``Authorization`` (VAPID, providers/vapid.py), ``Content-Encoding``
and ``Content-Type``.

Payload (``webpush_payload``; empty fields left out)::

    {"title": ..., "body": ..., "image": ..., "tag": ..., "data": {str: str}}

- ``title``; ``body`` (or the plain ``message`` when ``body`` is empty);
  ``image_url`` → ``image``, which a service worker passes to
  ``showNotification`` as ``image`` (or ``icon``); ``collapse_key`` → ``tag``,
  so a newer notification replaces the shown one, as ``Topic`` replaces an
  undelivered one.
- ``data``: ``notification.data``, ``headers``, ``publisher_id`` (and
  ``message`` when ``body`` is also set), as FCM's data (content.custom_data).
- Templates (Azure): the rendered template object *is* the payload.
- Not mapped: ``badge``, ``sound``, ``subtitle``, ``category``, ``thread_id``
  (the Notifications API has no such options, or browsers ignore them), and the
  ``apns_json``/``fcm_json`` overrides.

Headers, built once per message (``webpush_headers``): every recipient of a
broadcast shares the one mapping, as APNs deliveries share theirs.

- ``TTL`` (required by RFC 8030 §5.2): the ttl in whole seconds; ``0`` means
  "deliver now or drop". Without a ttl: four weeks (2,419,200 s), PushHub's
  longest ttl and FCM's default, so a browser that is offline at send time still
  gets the notification later, as APNs and FCM deliveries do without a ttl.
  Push services cap it at their own maximum.
- ``Urgency`` (§5.3): ``high`` or ``normal`` from the priority; left out without
  one (the push service then assumes ``normal``). RFC 8030's ``low`` and
  ``very-low`` (deliver when the device is on power or Wi-Fi) have no PushHub
  priority to come from; a lower priority would map to them.
- ``Topic`` (§5.4): the collapse_key, which replaces an undelivered message with
  the same topic. A topic is at most 32 characters of the base64url alphabet; a
  collapse_key that is not (collapse keys may be 64 bytes of any text) becomes the
  first 32 base64url characters of its SHA-256, so equal keys still collapse and
  different ones (with overwhelming odds) do not.

Body (``encrypt``): the ``aes128gcm`` content coding of RFC 8188, per recipient,
with ``cryptography`` (OpenSSL) for every primitive:

1. a new ephemeral P-256 key pair (RFC 8291 §2: one per message; the public half
   travels as the header's ``keyid``);
2. ECDH with the subscription's ``p256dh`` → shared secret;
3. HKDF-SHA256(salt = ``auth``, info = ``"WebPush: info\\0" || ua_public ||
   as_public``) → 32-byte IKM;
4. a random 16-byte salt; HKDF-SHA256(salt, IKM) → the 16-byte content key
   (info ``"Content-Encoding: aes128gcm\\0"``) and 12-byte nonce (info
   ``"Content-Encoding: nonce\\0"``);
5. AES-128-GCM over ``plaintext || 0x02`` (the last, and only, record's delimiter);
6. body = salt || rs (4096, 4 bytes) || idlen (65) || as_public || ciphertext.

Why not ``http_ece.encrypt`` (pywebpush's): it derives through three full HKDFs
and builds a Cipher context per record, for no gain with a single record, and
cost markedly more CPU per recipient than these same primitives called directly
(docs/performance.md, "Web Push encryption"; benchmarks/webpush_crypto.py). ECDH,
about half of a recipient's cost, releases the GIL, so the provider encrypts on
worker threads.

Size: one record only. A push service need not accept bodies over 4,096 bytes
(RFC 8030 §7.2), so the plaintext is at most 4096 - 86 (header) - 17 (delimiter,
tag) = 3,993 bytes (``PLAINTEXT_LIMIT``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pushhub_server.core.notifications import MAX_TTL, NotificationContent, Priority
from pushhub_server.core.web_push import SubscriptionKeys

from .content import custom_data
from .json_text import dumps

DEFAULT_TTL = MAX_TTL
TOPIC_LENGTH = 32
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")

RECORD_SIZE = 4096
BODY_LIMIT = 4096
_PUBLIC_KEY_BYTES = 65
_TAG_BYTES = 16
# salt (16) + rs (4) + idlen (1) + keyid (the 65-byte public key)
HEADER_BYTES = 16 + 4 + 1 + _PUBLIC_KEY_BYTES
PLAINTEXT_LIMIT = BODY_LIMIT - HEADER_BYTES - 1 - _TAG_BYTES

_CURVE = ec.SECP256R1()
_ECDH = ec.ECDH()
_SHA256 = hashes.SHA256()
_KEY_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00"
_NONCE_INFO = b"Content-Encoding: nonce\x00"
_RS_IDLEN = RECORD_SIZE.to_bytes(4, "big") + bytes([_PUBLIC_KEY_BYTES])
_LAST_RECORD = b"\x02"
_X962 = serialization.Encoding.X962
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint


# A dry run's plaintext: encrypted like any payload, and never posted (providers/webpush.py).
DRY_RUN_BODY = dumps({}).encode()


# ------------------------------------------------------------------ payload


def webpush_payload(content: NotificationContent, message: str) -> dict[str, Any]:
    """The JSON object a service worker reads (module docstring); ``message`` stands
    for the plain message (the renderer passes a placeholder)."""
    payload: dict[str, Any] = {}
    if content.title:
        payload["title"] = content.title
    if content.body or message:
        payload["body"] = content.body or message
    if content.image_url:
        payload["image"] = content.image_url
    if content.collapse_key:
        payload["tag"] = content.collapse_key
    data = custom_data(content, message)
    if data:
        payload["data"] = data
    return payload


# ------------------------------------------------------------------ headers


def webpush_headers(
    ttl: timedelta | None, priority: Priority | None, collapse_key: str
) -> Mapping[str, str]:
    """Header name -> value for every recipient of one message (read-only, shared)."""
    seconds = int((DEFAULT_TTL if ttl is None else ttl).total_seconds())
    headers = {"TTL": str(max(seconds, 0))}
    if priority is not None:
        headers["Urgency"] = priority  # "high" and "normal" are RFC 8030's own words
    if collapse_key:
        headers["Topic"] = topic(collapse_key)
    return MappingProxyType(headers)


def topic(collapse_key: str) -> str:
    """The collapse_key as an RFC 8030 Topic (module docstring)."""
    if _TOPIC.fullmatch(collapse_key):
        return collapse_key
    digest = hashlib.sha256(collapse_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:TOPIC_LENGTH]


# ------------------------------------------------------------------ body


def encrypt(plaintext: bytes, keys: SubscriptionKeys) -> bytes:
    """The aes128gcm body for one subscription. ValueError: p256dh is not a point on
    P-256, or the plaintext is over PLAINTEXT_LIMIT."""
    if len(plaintext) > PLAINTEXT_LIMIT:
        raise ValueError(f"plaintext over {PLAINTEXT_LIMIT} bytes")
    ua_public = keys.p256dh
    peer = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, ua_public)
    ephemeral = ec.generate_private_key(_CURVE)
    as_public = ephemeral.public_key().public_bytes(_X962, _UNCOMPRESSED)
    shared = ephemeral.exchange(_ECDH, peer)
    ikm = HKDF(_SHA256, 32, keys.auth, _KEY_INFO + ua_public + as_public).derive(shared)
    salt = os.urandom(16)
    key = HKDF(_SHA256, 16, salt, _CEK_INFO).derive(ikm)
    nonce = HKDF(_SHA256, 12, salt, _NONCE_INFO).derive(ikm)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext + _LAST_RECORD, None)
    return salt + _RS_IDLEN + as_public + ciphertext
