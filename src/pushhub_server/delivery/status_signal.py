"""In-process StatusSignal: wakes WatchMessageStatus streams when the dispatcher moves."""

from __future__ import annotations

import asyncio
import contextlib


class InProcessStatusSignal:
    """Implements core.publishing.StatusSignal for one server process.

    Another process's changes are not seen here; watchers fall back to their
    poll timeout for those. Per-id state lives only while someone waits.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def notify(self, message_id: str) -> None:
        """Wakes every current waiter of message_id; later waiters wait for the next notify."""
        for waiter in self._waiters.pop(message_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, message_id: str, timeout: float) -> None:
        """Returns on the next notify of message_id, or after timeout seconds."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(message_id, set()).add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            self._forget(message_id, waiter)

    def _forget(self, message_id: str, waiter: asyncio.Future[None]) -> None:
        # notify() may already have replaced the set; only this waiter's set is touched.
        waiters = self._waiters.get(message_id)
        if waiters is None or waiter not in waiters:
            return
        waiters.discard(waiter)
        if not waiters:
            del self._waiters[message_id]
