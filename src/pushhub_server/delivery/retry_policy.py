"""The retry policy: backoff for the retryable results of any provider.

Providers answer a transient failure (429, 5xx, a dropped connection, GOAWAY
they could not resend) with DeliveryOutcome.RETRY and, when the service said
so, retry_after seconds. Apart from one resend with a fresh token (APNs
ExpiredProviderToken, FCM 401) they never sleep or retry themselves: the
dispatcher and the dry-run verifier call RetryPolicy.send, so backoff is
decided in one place for every provider.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.ports import DeliveryProvider


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring Retry-After, over a bounded number of sends.

    Before retry n (0-based) it waits a random time in [d/2, d] with
    d = min(base_delay * 2**n, max_delay), or the longest retry_after among the
    pending results when that is longer: a delivery is never retried before its
    provider allows. A retry_after over max_retry_after (5 minutes) is not waited
    for: that delivery is not retried. What is still RETRY after `attempts` sends,
    or was not retried, is returned as is and counted as failed under its reason.
    The dispatcher's heartbeat keeps the run's lease while a chunk waits, and sets
    `stop` when the run is no longer its own (cancelled, claimed again): waiting and
    retrying end at once, since nothing more may go out for that run.
    """

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 10.0
    # Longer than APNs and FCM ask for when merely busy; one that asks for more is
    # down for longer than a chunk should wait.
    max_retry_after: float = 300.0
    # Injectable so tests neither really sleep nor depend on randomness.
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, retry: int, retry_after: float = 0.0) -> float:
        """Seconds to wait before retry number `retry` (0 is the first retry)."""
        backoff = min(self.base_delay * 2.0**retry, self.max_delay)
        jittered = backoff * (0.5 + self.jitter() / 2)
        return max(jittered, retry_after)

    async def send(
        self,
        provider: DeliveryProvider,
        deliveries: Sequence[Delivery],
        stop: asyncio.Event | None = None,
        *,
        validate_only: bool = False,
        on_retry: Callable[[Sequence[Delivery]], None] | None = None,
    ) -> list[DeliveryResult]:
        """One result per delivery, in order; only the RETRY subset is sent again,
        until `stop` (if given) is set: the results so far are returned then.
        ``validate_only`` goes with every send, retries included; on_retry (if
        given) is told what each retry sends again, before it is sent."""
        # Without one (a credentials check, not a run), nothing ever stops it.
        stop = stop or asyncio.Event()
        results = await provider.send(deliveries, validate_only=validate_only)
        pending = self._retryable(results, range(len(results)))
        for retry in range(self.attempts - 1):
            if not pending:
                break
            delay = self.delay(retry, _longest_retry_after(results, pending))
            if not await self._wait(delay, stop):
                break
            resent = [deliveries[index] for index in pending]
            if on_retry is not None:
                on_retry(resent)
            retried = await provider.send(resent, validate_only=validate_only)
            for index, result in zip(pending, retried, strict=True):
                results[index] = result
            pending = self._retryable(results, pending)
        return results

    async def _wait(self, seconds: float, stop: asyncio.Event) -> bool:
        """Sleeps `seconds`, or until `stop` is set; whether to go on retrying."""
        sleeping = asyncio.ensure_future(self.sleep(seconds))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((sleeping, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            stopping.cancel()
        return not stop.is_set()

    def _retryable(self, results: Sequence[DeliveryResult], indexes: Sequence[int]) -> list[int]:
        """The RETRY results whose Retry-After, if any, is worth waiting for."""
        return [
            index
            for index in indexes
            if results[index].outcome is DeliveryOutcome.RETRY
            and (results[index].retry_after or 0.0) <= self.max_retry_after
        ]


def _longest_retry_after(results: Sequence[DeliveryResult], indexes: Sequence[int]) -> float:
    return max((results[index].retry_after or 0.0 for index in indexes), default=0.0)
