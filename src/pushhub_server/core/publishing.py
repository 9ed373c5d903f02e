"""Publishing rules. The publish use case itself arrives with the delivery pipeline."""

from __future__ import annotations

from .errors import permission_denied
from .models import Principal


def require_publisher(principal: Principal) -> None:
    """Only server keys publish or cancel (Backendless error 5007 otherwise)."""
    if not principal.is_server:
        raise permission_denied(
            "PUBLISH_NOT_ALLOWED", "a device key may not publish", legacy_code="5007"
        )
