"""Ordered concurrency for streams: the next item starts before this one's result is out,
and writes overlap where they touch different things (KeyedOrder)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Hashable
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def ordered_pipeline(
    source: AsyncIterable[T], start: Callable[[T], Awaitable[R]], depth: int
) -> AsyncIterator[R]:
    """start(item) for each item of source, several at once; results in source order.

    Up to depth + 2 run at once: the one whose result is awaited, depth started
    after it, and one more the reader has started while it waits for room. The
    source is read by a task of its own, so each result goes out as soon as it
    is ready, even to a client that sends nothing more until it has it.
    """
    started: asyncio.Queue[asyncio.Future[R] | None] = asyncio.Queue(maxsize=depth)
    feeder = asyncio.create_task(_feed(source, start, started))
    current: asyncio.Future[R] | None = None
    try:
        while (current := await started.get()) is not None:
            yield await current
        await feeder
    finally:
        feeder.cancel()
        _discard(current)
        while not started.empty():
            _discard(started.get_nowait())


def _discard(work: asyncio.Future[Any] | None) -> None:
    """Stops work nobody will collect; a failure it already had is not reported twice."""
    if work is None:
        return
    if not work.done():
        work.cancel()
    elif not work.cancelled():
        work.exception()  # marks it retrieved: the consumer's own error says enough


async def _feed(
    source: AsyncIterable[T],
    start: Callable[[T], Awaitable[R]],
    started: asyncio.Queue[asyncio.Future[R] | None],
) -> None:
    try:
        async for item in source:
            work = asyncio.ensure_future(start(item))
            try:
                await started.put(work)
            except asyncio.CancelledError:
                work.cancel()  # Started, but nobody will ever collect it.
                raise
    except BaseException as error:
        this = asyncio.current_task()
        if this is not None and this.cancelling():
            raise  # the consumer is done with us
        # The reader's failure (a broken or cancelled stream) reaches the consumer
        # in its turn, instead of leaving it waiting for an item that never comes.
        failed: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        failed.set_exception(error)
        await started.put(failed)
        return
    await started.put(None)


class KeyedOrder:
    """Turns for concurrent writes, in the order they were asked for.

    A turn waits for every earlier unfinished turn it shares a key with; a turn
    without keys (None) shares with all. So writes of disjoint keys run side by
    side, and any two that could interfere happen in the order asked for.
    """

    def __init__(self) -> None:
        self._unfinished: list[_Turn] = []

    def turn(self, keys: frozenset[Hashable] | None) -> _Turn:
        """Takes a place in the order now; ``async with`` waits for it."""
        earlier = [other for other in self._unfinished if other.overlaps(keys)]
        turn = _Turn(self._unfinished, keys, earlier)
        self._unfinished.append(turn)
        return turn


class _Turn:
    def __init__(
        self, unfinished: list[_Turn], keys: frozenset[Hashable] | None, earlier: list[_Turn]
    ) -> None:
        self._unfinished = unfinished
        self._keys = keys
        self._earlier = earlier
        self._done = asyncio.Event()

    def overlaps(self, keys: frozenset[Hashable] | None) -> bool:
        if self._keys is None or keys is None:
            return True
        return not self._keys.isdisjoint(keys)

    async def __aenter__(self) -> None:
        try:
            for other in self._earlier:
                await other._done.wait()
        except BaseException:
            self._finish()
            raise

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish()

    def _finish(self) -> None:
        self._done.set()
        self._unfinished.remove(self)
