"""The RFC 8030 headers of a Web Push message, from a publish's ttl, priority and collapse_key.

Built once per message: every recipient of a broadcast shares the one mapping, as
APNs deliveries share theirs, and the provider adds ``Authorization``,
``Content-Encoding`` and ``Content-Type``.

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
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType

from pushhub_server.core.notifications import MAX_TTL, Priority

DEFAULT_TTL = MAX_TTL
TOPIC_LENGTH = 32
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


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
