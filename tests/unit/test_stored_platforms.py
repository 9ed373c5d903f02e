"""store.platforms: the codes platforms are stored under."""

from __future__ import annotations

from pushhub_server.core.models import Platform
from pushhub_server.store.platforms import PLATFORM_CODES, PLATFORMS_BY_CODE


def test_every_platform_has_its_own_code() -> None:
    assert set(PLATFORM_CODES) == set(Platform)
    assert len(set(PLATFORM_CODES.values())) == len(PLATFORM_CODES)
    assert all(PLATFORMS_BY_CODE[code] is platform for platform, code in PLATFORM_CODES.items())


def test_the_codes_already_stored_never_change() -> None:
    assert PLATFORM_CODES[Platform.APNS] == 1
    assert PLATFORM_CODES[Platform.FCM] == 2
    assert PLATFORM_CODES[Platform.WEB_PUSH] == 3
    assert PLATFORM_CODES[Platform.HMS] == 4
