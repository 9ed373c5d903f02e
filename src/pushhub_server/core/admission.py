"""Admission control: how many calls run at once, how fast one address may call,
and how many imported items are in flight. Pure Python; the api layer decides
what each call counts against (docs/admission.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class Slots:
    """At most `limit` holders at once. Nobody waits: a caller over the limit is
    refused and told to retry, so a refused call holds nothing while it waits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken = 0

    def take(self) -> bool:
        if self._taken >= self.limit:
            return False
        self._taken += 1
        return True

    def give_back(self) -> None:
        self._taken -= 1


class KeyedSlots:
    """Slots per key (a client address): at most `limit` holders per key. Keys
    without holders are dropped, so the table only holds addresses with calls open."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken: dict[str, int] = {}

    def take(self, key: str) -> bool:
        taken = self._taken.get(key, 0)
        if taken >= self.limit:
            return False
        self._taken[key] = taken + 1
        return True

    def give_back(self, key: str) -> None:
        left = self._taken[key] - 1
        if left:
            self._taken[key] = left
        else:
            del self._taken[key]


class TokenBuckets:
    """A token bucket per key (a client address): `rate` tokens a second, holding
    at most `burst`. A call takes one token, or is told how long until one is due.

    The table holds at most `max_keys` buckets: when full, buckets that have
    refilled are dropped (they are indistinguishable from new ones), then the
    oldest, so a flood from many addresses costs bounded memory and, at worst,
    gives an evicted address a full bucket again.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        # key -> (tokens left, when they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0.0 when a token was taken, else the seconds until the next one."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._prune(now)
            tokens = self.burst
        else:
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0

    def _prune(self, now: float) -> None:
        refill = self.burst / self.rate
        full = [key for key, (_, counted) in self._buckets.items() if now - counted >= refill]
        for key in full:
            del self._buckets[key]
        # Still full: drop the oldest tenth (dicts keep insertion order).
        excess = len(self._buckets) - self._max_keys + max(1, self._max_keys // 10)
        for key in list(self._buckets)[: max(0, excess)]:
            del self._buckets[key]


class Credits:
    """A budget of units (imported items) shared by many holders.

    acquire(n) waits until n units are free, first come first served, so a big
    request is not starved by a stream of small ones; a request for more than
    the whole budget takes all of it.
    """

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError("the budget must hold at least one unit")
        self.total = total
        self._free = total
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def free(self) -> int:
        return self._free

    async def acquire(self, units: int) -> int:
        """Takes min(units, total) units, waiting for them; returns how many it took."""
        units = min(units, self.total)
        if not self._waiting and self._free >= units:
            self._free -= units
            return units
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (units, granted)
        self._waiting.append(entry)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(units)  # granted just as the waiter gave up
            else:
                self._waiting.remove(entry)
                self._grant()  # a smaller request behind it may fit now
            raise
        return units

    def release(self, units: int) -> None:
        self._free += units
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self._free:
            units, granted = self._waiting.popleft()
            self._free -= units
            granted.set_result(None)

    def holding(self) -> Holding:
        return Holding(self)


class Holding:
    """One holder's share of Credits (a stream's items in flight): whatever it
    still holds when it closes goes back, however the holder ended."""

    def __init__(self, credits: Credits) -> None:
        self._credits = credits
        self.held = 0

    async def acquire(self, units: int) -> int:
        taken = await self._credits.acquire(units)
        self.held += taken
        return taken

    def release(self, units: int) -> None:
        units = min(units, self.held)
        self.held -= units
        self._credits.release(units)

    def close(self) -> None:
        self.release(self.held)
