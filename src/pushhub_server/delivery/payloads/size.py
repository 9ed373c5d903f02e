"""The size rule: a rendered payload is at most 4,096 bytes of UTF-8.

Each platform counts it its own way (apns.py, fcm.py, hms.py say how); over the
limit is PushHubError INVALID_ARGUMENT, reason ``PAYLOAD_TOO_LARGE``, metadata
``field``, ``limit``, ``platform`` and ``size``.
"""

from __future__ import annotations

from pushhub_server.core.errors import PushHubError, invalid_field

PAYLOAD_LIMIT = 4096
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


def payload_too_large(field_name: str, platform: str, size: int, limit: int) -> PushHubError:
    """The error for a payload of `size` bytes; `platform` as users read it ("APNs")."""
    error = invalid_field(
        field_name,
        PAYLOAD_TOO_LARGE,
        f"the rendered {platform} payload is {size} bytes, over the limit of {limit} bytes",
        limit=limit,
    )
    error.metadata["platform"] = platform
    error.metadata["size"] = str(size)
    return error
