"""In-process StatusSignal: wakes WatchMessageStatus streams when the dispatcher moves."""

from __future__ import annotations

import asyncio
import contextlib


class InProcessStatusSignal:
    """Implements core.ports.StatusSignal for one server process.

    Another process's changes reach it through the change feed (docs/fleet.md);
    while the feed is down, watchers fall back to their poll timeout for those.
    Per-id state lives only while someone listens.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, set[_Listener]] = {}

    def notify(self, message_id: str) -> None:
        """Wakes every current listener of message_id; a notify nobody listens to is dropped."""
        for listener in tuple(self._waiters.get(message_id, ())):
            listener.wake()

    def notify_all(self) -> None:
        """Wakes every listener: changes may have gone unheard (the change feed was down)."""
        for listeners in tuple(self._waiters.values()):
            for listener in tuple(listeners):
                listener.wake()

    def listen(self, message_id: str) -> _Listener:
        listener = _Listener(self, message_id)
        self._waiters.setdefault(message_id, set()).add(listener)
        return listener

    async def wait(self, message_id: str, timeout: float) -> None:
        """Returns on the next notify of message_id, or after timeout seconds."""
        listener = self.listen(message_id)
        try:
            await listener.wait(timeout)
        finally:
            listener.close()

    def _forget(self, message_id: str, listener: _Listener) -> None:
        listeners = self._waiters.get(message_id)
        if listeners is None or listener not in listeners:
            return
        listeners.discard(listener)
        if not listeners:
            del self._waiters[message_id]


class _Listener:
    """Remembers a notify until its next wait, so none is lost between waits."""

    __slots__ = ("_future", "_message_id", "_notified", "_signal")

    def __init__(self, signal: InProcessStatusSignal, message_id: str) -> None:
        self._signal = signal
        self._message_id = message_id
        self._notified = False
        self._future: asyncio.Future[None] | None = None

    def wake(self) -> None:
        self._notified = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    async def wait(self, timeout: float) -> None:
        if not self._notified:
            self._future = asyncio.get_running_loop().create_future()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._future, timeout)
            finally:
                self._future = None
        self._notified = False

    def close(self) -> None:
        self._signal._forget(self._message_id, self)
