"""UpsertBatcher: group commit never mixes two writes of one registration."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from pushhub_server.core.batching import ItemResult, UpsertBatcher
from pushhub_server.core.errors import registration_gone
from pushhub_server.core.models import Platform, RegistrationInput


def item(token: str, registration_id: str | None = None) -> RegistrationInput:
    base = RegistrationInput(Platform.APNS, token, ("default",), (), None, None, {}, {}, None)
    return replace(base, registration_id=registration_id)


async def test_a_batch_never_holds_two_items_of_one_registration() -> None:
    batches: list[list[str]] = []

    async def upsert_many(app_id: str, items: Sequence[RegistrationInput]) -> list[ItemResult]:
        batches.append([i.device_token for i in items])
        return [registration_gone(i.device_token) for i in items]

    batcher = UpsertBatcher(upsert_many, max_items=10)
    queued = [
        item("a"),
        item("b"),
        item("a"),  # same token as the first: the next batch
        item("c", "r1"),
        item("d", "r1"),  # same registration id: the next batch
        item("e"),
        item("f"),
    ]
    results = await asyncio.gather(*(batcher.upsert("app", i) for i in queued))
    assert batches == [["a", "b"], ["a", "c"], ["d", "e", "f"]]
    assert [r.metadata["registration_id"] for r in results] == list("abacdef")


async def test_distinct_items_still_share_a_batch_up_to_its_size() -> None:
    batches: list[int] = []

    async def upsert_many(app_id: str, items: Sequence[RegistrationInput]) -> list[ItemResult]:
        batches.append(len(items))
        return [registration_gone("x") for _ in items]

    batcher = UpsertBatcher(upsert_many, max_items=3)
    await asyncio.gather(*(batcher.upsert("app", item(f"t{n}")) for n in range(7)))
    assert batches == [3, 3, 1]
