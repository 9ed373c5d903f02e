"""The webhook call that tells a tracked registration request's callback_url how it ended."""

from __future__ import annotations

import hashlib
import hmac

from .models import Principal, TrackedRequest
from .ports import WebhookSender


def webhook_signature(api_key: str, callback_url: str) -> str:
    """HMAC-SHA256 of the callback URL keyed by the presenting API key, hex-encoded."""
    return hmac.new(api_key.encode(), callback_url.encode(), hashlib.sha256).hexdigest()


def call_back(webhooks: WebhookSender, principal: Principal, request: TrackedRequest) -> None:
    """Queues the call, when the request named a callback_url; never blocks or raises."""
    if not request.callback_url:
        return
    body = {
        "status": request.state.name,
        "signature": webhook_signature(principal.api_key, request.callback_url),
        "failure_reason": request.failure_reason.name if request.failure_reason else None,
    }
    webhooks.send(request.callback_url, request.callback_headers, body)
