"""Ordered concurrency for streams: the next item starts before this one's result is out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def ordered_pipeline(
    source: AsyncIterable[T], start: Callable[[T], Awaitable[R]], depth: int
) -> AsyncIterator[R]:
    """start(item) for each item of source, run up to depth + 1 at once; results in order.

    The source is read by a task of its own, so each result goes out as soon
    as it is ready, even to a client that sends nothing more until it has it.
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
        if current is not None:
            current.cancel()
        while not started.empty():
            if (pending := started.get_nowait()) is not None:
                pending.cancel()


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
    except Exception as error:
        # The reader's failure (a broken stream) reaches the consumer in its turn.
        failed: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        failed.set_exception(error)
        await started.put(failed)
        return
    await started.put(None)
