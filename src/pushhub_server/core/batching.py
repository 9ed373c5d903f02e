"""Group commit: concurrent single-item upserts share one write transaction.

A write transaction costs milliseconds of fixed overhead (on SQLite mostly
thread hops, behind a single writer), while one more row costs microseconds.
So callers queue their item; one drain task takes the queue, per app, in
batches, and answers each caller with its own item's result. Items of a batch
replay in arrival order (upsert_many resolves them as sequential calls).

No batch holds two items touching the same registration (same token, or same
registration id): the second waits for the next batch. Each caller then writes
in a transaction of its own callers only, and never shares a row's outcome
(timestamps, "unchanged", subscription ids) with a stranger's call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from .errors import PushHubError
from .models import RegistrationInput, TokenKey, UpsertResult

ItemResult = UpsertResult | PushHubError
UpsertMany = Callable[[str, Sequence[RegistrationInput]], Awaitable[list[ItemResult]]]
_Waiting = tuple[RegistrationInput, "asyncio.Future[ItemResult]"]
# A registration as an item names it: by its token key or by id.
_Touched = TokenKey | str


class UpsertBatcher:
    """Coalesces upsert(app_id, item) calls into upsert_many calls of at most max_items."""

    def __init__(self, upsert_many: UpsertMany, max_items: int) -> None:
        self._upsert_many = upsert_many
        self._max_items = max_items
        # Insertion-ordered: apps take turns, so a busy app cannot starve the others.
        self._queues: dict[str, list[_Waiting]] = {}
        self._drainer: asyncio.Task[None] | None = None

    async def upsert(self, app_id: str, item: RegistrationInput) -> ItemResult:
        future: asyncio.Future[ItemResult] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(app_id, []).append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        # A caller that gives up cancels only its own wait: the batch runs on.
        return await future

    async def _drain(self) -> None:
        try:
            while self._queues:
                app_id, batch = self._take()
                await self._run(app_id, batch)
        except BaseException:
            # The drain task itself was cancelled (loop shutdown): so is every wait.
            for queue in self._queues.values():
                for _, future in queue:
                    future.cancel()
            self._queues.clear()
            raise
        finally:
            self._drainer = None

    def _take(self) -> tuple[str, list[_Waiting]]:
        app_id = next(iter(self._queues))
        queue = self._queues.pop(app_id)
        size = _disjoint_prefix(queue, self._max_items)
        batch, rest = queue[:size], queue[size:]
        if rest:
            self._queues[app_id] = rest
        return app_id, batch

    async def _run(self, app_id: str, batch: list[_Waiting]) -> None:
        futures = [future for _, future in batch]
        try:
            results = await self._upsert_many(app_id, [item for item, _ in batch])
        except Exception as error:  # noqa: BLE001 - the batch's callers each receive it
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        for future, result in zip(futures, results, strict=True):
            if not future.done():
                future.set_result(result)


def _touched(item: RegistrationInput) -> set[_Touched]:
    touched: set[_Touched] = {item.token_key}
    if item.registration_id is not None:
        touched.add(item.registration_id)
    return touched


def _disjoint_prefix(queue: Sequence[_Waiting], max_items: int) -> int:
    """How many leading items (at most max_items) touch no registration twice."""
    seen: set[_Touched] = set()
    for index, (item, _) in enumerate(queue[:max_items]):
        touched = _touched(item)
        if not seen.isdisjoint(touched):
            return index
        seen |= touched
    return min(len(queue), max_items)
