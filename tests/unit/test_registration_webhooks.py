"""core.registration_webhooks: how a callback knows the call came from PushHub."""

from __future__ import annotations

import hashlib
import hmac

from pushhub_server.core.registration_webhooks import webhook_signature


def test_webhook_signature_is_hmac_sha256_of_the_url_keyed_by_the_api_key() -> None:
    url = "https://hooks.example.com/pushhub?x=1"
    expected = hmac.new(b"phs_key", url.encode(), hashlib.sha256).hexdigest()
    assert webhook_signature("phs_key", url) == expected
    assert webhook_signature("phd_key", url) != expected
    assert len(expected) == 64
