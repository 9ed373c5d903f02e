"""Ordered concurrency for streams: the next item starts before this one's result is out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
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
