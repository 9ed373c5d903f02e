"""How each platform is stored: a SMALLINT code, the same in every table and document.

Codes are stored data (registrations, inbox, message_platform_counts, message
audiences), so one is never changed or reused. A new platform is one new line.
"""

from __future__ import annotations

from pushhub_server.core.models import Platform

PLATFORM_CODES: dict[Platform, int] = {
    Platform.APNS: 1,
    Platform.FCM: 2,
    Platform.WEB_PUSH: 3,
    Platform.HMS: 4,
}
PLATFORMS_BY_CODE: dict[int, Platform] = {code: p for p, code in PLATFORM_CODES.items()}
