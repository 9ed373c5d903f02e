"""Time source. Everything that asks "what time is it" goes through a Clock, and a
loop that waits for time to pass goes through a Timer, so tests move both by hand."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock the tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, moment: datetime) -> None:
        self._now = moment


class Timer(Protocol):
    async def wait(self, wake: asyncio.Event, seconds: float) -> None:
        """Returns once wake is set, or once seconds have passed."""


class SystemTimer:
    async def wait(self, wake: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)


class ManualTimer:
    """A timer the tests run out by hand: each wait lasts until wake is set or
    elapse() is called, and the seconds asked for are kept in `requested`."""

    def __init__(self) -> None:
        self.requested: list[float] = []
        self._elapsed: asyncio.Event | None = None
        self._in_wait = False
        # Set when the next wait begins (then replaced).
        self._began = asyncio.Event()

    async def wait(self, wake: asyncio.Event, seconds: float) -> None:
        self.requested.append(seconds)
        elapsed = self._elapsed = asyncio.Event()
        self._in_wait = True
        began, self._began = self._began, asyncio.Event()
        began.set()
        waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(elapsed.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._in_wait = False
            for pending in waits:
                pending.cancel()

    async def waiting(self, count: int = 1) -> None:
        """Returns once `count` waits have begun and one is in progress."""
        while len(self.requested) < count or not self._in_wait:
            await self._began.wait()

    def elapse(self) -> None:
        """The wait in progress times out."""
        if self._elapsed is not None:
            self._elapsed.set()


def to_micros(moment: datetime) -> int:
    """Stored form of a moment: integer microseconds since the Unix epoch (UTC)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
