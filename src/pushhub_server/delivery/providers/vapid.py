"""VAPID (RFC 8292): the ``Authorization: vapid t=<JWT>, k=<public key>`` header line.

The JWT is ES256 over ``{"aud": <the endpoint's origin>, "exp": ..., "sub":
<the app's subject>}``; push services refuse an ``exp`` more than 24 hours ahead.
Signing costs about as much as one recipient's encryption, so each origin's line
is kept: signed with a 12-hour ``exp`` and re-signed once it is 6 hours old, so
every token sent has at least 6 hours left (room for clock skew either way) and
at most 12. PyJWT signs (already used for APNs provider tokens); py-vapid would
add a dependency for the same ten lines.

Origins are few (the push services' hosts), but a device key chooses the
endpoints, so the cache is bounded: the least recently used origin goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

import jwt

from pushhub_server.core.clock import Clock
from pushhub_server.core.web_push import WebPushCredentials, vapid_signing_key

LIFETIME = timedelta(hours=12)
REFRESH_AFTER = timedelta(hours=6)
_ORIGINS = 1024


class VapidTokens:
    """One app's VAPID header lines, per origin."""

    def __init__(self, credentials: WebPushCredentials, clock: Clock) -> None:
        self._key = vapid_signing_key(credentials.private_key_pem)
        self._subject = credentials.subject
        self._public_key = credentials.public_key
        self._clock = clock
        # origin -> (header line, signed at)
        self._lines: OrderedDict[str, tuple[str, datetime]] = OrderedDict()

    def header(self, origin: str) -> str:
        """``Authorization: vapid t=…, k=…`` for requests to ``origin``."""
        now = self._clock.now()
        cached = self._lines.get(origin)
        if cached is not None and now - cached[1] < REFRESH_AFTER:
            self._lines.move_to_end(origin)
            return cached[0]
        line = f"Authorization: vapid t={self._sign(origin, now)}, k={self._public_key}"
        self._lines[origin] = (line, now)
        self._lines.move_to_end(origin)
        if len(self._lines) > _ORIGINS:
            self._lines.popitem(last=False)
        return line

    def _sign(self, origin: str, now: datetime) -> str:
        claims = {"aud": origin, "exp": int((now + LIFETIME).timestamp()), "sub": self._subject}
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"typ": "JWT"})
