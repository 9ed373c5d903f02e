"""The SQL registration store beyond the contract that every store passes
(tests/contract/test_registration_repository.py): its rows and child rows,
concurrency, large batches, index plans, and the services' unregister and sweep
on it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from pushhub_server.core.clock import ManualClock, to_micros
from pushhub_server.core.errors import PushHubError
from pushhub_server.core.ids import new_id
from pushhub_server.core.limits import Limits
from pushhub_server.core.models import (
    CleanupTarget,
    DeviceActor,
    KeyKind,
    Platform,
    Principal,
    Registration,
    RegistrationFilter,
    UpsertResult,
)
from pushhub_server.core.registrations import INVALIDATED_RETENTION, RegistrationService
from pushhub_server.store import Database, SqlAppRepository, SqlRegistrationRepository, upsert
from pushhub_server.store.children import delete_registrations
from pushhub_server.store.memory import MemoryStore, MemoryTrackingRepository
from pushhub_server.store.schema import registration_tags, subscriptions
from pushhub_server.store.schema import registrations as registrations_table
from tests.fakes.webhooks import RecordingWebhookSender
from tests.store_records import device, upsert_one

from .conftest import create_app

NOW = datetime(2030, 1, 1, tzinfo=UTC)
MAX_TAGS = 60


def assert_gone(result: object, registration_id: str) -> None:
    assert isinstance(result, PushHubError)
    assert result.reason == "REGISTRATION_GONE"
    assert result.metadata["registration_id"] == registration_id


async def count_rows(db: Database, table: str, registration_id: str) -> int:
    import sqlalchemy as sa

    column = "id" if table == "registrations" else "registration_id"
    async with db.read() as conn:
        query = sa.text(f"SELECT COUNT(*) FROM {table} WHERE {column} = :id")
        return (await conn.execute(query, {"id": registration_id})).scalar_one()


async def test_reregistration_updates_in_place_with_stable_channel_ids(
    db: Database, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    first = (await upsert_one(registrations, app_id, device("tok-1"))).registration
    later = NOW + timedelta(minutes=5)
    item = device("tok-1", channels=("sports", "weather"), tags=("gold",), user_id="bob")
    result = await upsert_one(registrations, app_id, item, later)
    second = result.registration

    assert not result.unchanged
    assert second.registration_id == first.registration_id
    assert second.channels == ("sports", "weather")
    sports_id = first.channel_registration_ids["sports"]
    assert second.channel_registration_ids["sports"] == sports_id
    assert second.tags == ("gold",)
    assert (second.created_at, second.updated_at) == (NOW, later)
    assert await registrations.get(app_id, first.registration_id, later) == second
    assert await count_rows(db, "registrations", first.registration_id) == 1
    assert await count_rows(db, "subscriptions", first.registration_id) == 2
    assert await count_rows(db, "registration_tags", first.registration_id) == 1


async def test_reserved_id_flow(registrations: SqlRegistrationRepository, app_id: str) -> None:
    reserved = new_id()
    await registrations.reserve_id(app_id, reserved, NOW)
    created = await upsert_one(registrations, app_id, device("tok-r", registration_id=reserved))
    assert created.registration.registration_id == reserved

    moved = device("tok-r2", registration_id=reserved, channels=("alerts",))
    updated = await upsert_one(registrations, app_id, moved)
    assert updated.registration.registration_id == reserved
    assert updated.registration.device_token == "tok-r2"
    assert await registrations.find_by_token(app_id, Platform.APNS, "tok-r", NOW) is None

    await registrations.delete(app_id, reserved, None, NOW)
    [gone] = await registrations.upsert_many(app_id, [moved], NOW)
    assert_gone(gone, reserved)


async def test_large_batch_keeps_results_in_order(
    registrations: SqlRegistrationRepository, app_id: str
) -> None:
    items = [device(f"bulk-{index}", channels=(f"c{index % 7}", "all")) for index in range(1500)]
    results = await registrations.upsert_many(app_id, items, NOW)
    assert [r.registration.device_token for r in results if isinstance(r, UpsertResult)] == [
        item.device_token for item in items
    ]
    again = await registrations.upsert_many(app_id, items, NOW)
    assert all(isinstance(r, UpsertResult) and r.unchanged for r in again)
    assert [r.registration for r in again] == [r.registration for r in results]  # type: ignore[union-attr]


async def test_list_paginates_and_filters(
    registrations: SqlRegistrationRepository, app_id: str
) -> None:
    items = [
        device(
            f"list-{index}",
            platform=Platform.FCM if index % 2 else Platform.APNS,
            user_id="dave" if index < 6 else None,
            channels=("odd",) if index % 2 else ("even",),
            tags=("t3",) if index % 3 == 0 else ("other",),
        )
        for index in range(10)
    ]
    stored = [r.registration for r in await registrations.upsert_many(app_id, items, NOW)]  # type: ignore[union-attr]
    ids = sorted(r.registration_id for r in stored)

    seen: list[Registration] = []
    after = None
    while True:
        page = await registrations.list(app_id, RegistrationFilter(), 4, after, NOW)
        seen += page.items
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert [r.registration_id for r in seen] == ids
    assert seen[0] == next(r for r in stored if r.registration_id == ids[0])

    exact = await registrations.list(app_id, RegistrationFilter(), 10, None, NOW)
    assert exact.next_cursor is None and len(exact.items) == 10

    where = RegistrationFilter(user_id="dave", channel="odd", tag="t3", platform=Platform.FCM)
    page = await registrations.list(app_id, where, 10, None, NOW)
    assert [r.device_token for r in page.items] == ["list-3"]
    missing = RegistrationFilter(channel="no-such-channel")
    assert (await registrations.list(app_id, missing, 10, None, NOW)).items == []


async def test_update_tags_by_id_user_and_tag(
    registrations: SqlRegistrationRepository, app_id: str
) -> None:
    a = (await upsert_one(registrations, app_id, device("ut-a", user_id="erin"))).registration
    b = (await upsert_one(registrations, app_id, device("ut-b", user_id="erin"))).registration
    c = (await upsert_one(registrations, app_id, device("ut-c", tags=("solo",)))).registration

    by_user = RegistrationFilter(user_id="erin")
    assert (
        await registrations.update_tags(app_id, None, by_user, ["vip"], ["beta"], MAX_TAGS, NOW)
        == 2
    )
    for registration in (a, b):
        stored = await registrations.get(app_id, registration.registration_id, NOW)
        assert stored is not None and stored.tags == ("lang:en", "vip")

    by_tag = RegistrationFilter(tag="solo")
    assert (
        await registrations.update_tags(app_id, None, by_tag, ["x", "y"], ["solo"], MAX_TAGS, NOW)
        == 1
    )
    stored_c = await registrations.get(app_id, c.registration_id, NOW)
    assert stored_c is not None and stored_c.tags == ("x", "y")

    assert (
        await registrations.update_tags(
            app_id, a.registration_id, RegistrationFilter(), ["vip", "z"], [], MAX_TAGS, NOW
        )
        == 1
    )
    stored_a = await registrations.get(app_id, a.registration_id, NOW)
    assert stored_a is not None and stored_a.tags == ("lang:en", "vip", "z")
    assert (
        await registrations.update_tags(
            app_id, new_id(), RegistrationFilter(), ["q"], [], MAX_TAGS, NOW
        )
        == 0
    )


async def test_deletes_cleanup_and_expiry_sweep(
    registrations: SqlRegistrationRepository, app_id: str
) -> None:
    items = [
        device("cl-1", user_id="frank"),
        device("cl-2", user_id="frank"),
        device("cl-3", user_id="gina"),
        device("cl-4", user_id="gina"),
        device("cl-5", user_id="hal"),
    ]
    stored = [r.registration for r in await registrations.upsert_many(app_id, items, NOW)]  # type: ignore[union-attr]
    targets = [
        CleanupTarget("frank"),
        CleanupTarget("gina", "cl-3"),
        CleanupTarget("gina", "cl-5"),
    ]
    assert await registrations.cleanup(app_id, targets, NOW) == 3
    left = await registrations.list(app_id, RegistrationFilter(), 10, None, NOW)
    assert sorted(r.device_token for r in left.items) == ["cl-4", "cl-5"]

    assert await registrations.delete(app_id, stored[3].registration_id, None, NOW) == 1
    assert await registrations.delete_by_token(app_id, Platform.APNS, "cl-5", None, NOW) == 1
    assert await registrations.delete(app_id, stored[4].registration_id, None, NOW) == 0

    await upsert_one(registrations, app_id, device("sweep", expires_at=NOW + timedelta(seconds=1)))
    assert await registrations.delete_stale(NOW + timedelta(seconds=1), NOW) >= 1
    assert await registrations.find_by_token(app_id, Platform.APNS, "sweep", NOW) is None


async def test_no_data_crosses_apps(
    apps: SqlAppRepository, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    other = (await create_app(apps)).app_id
    mine = (await upsert_one(registrations, app_id, device("shared", user_id="ivy"))).registration
    theirs = (await upsert_one(registrations, other, device("shared", user_id="ivy"))).registration
    assert mine.registration_id != theirs.registration_id
    assert mine.channel_registration_ids["news"] != theirs.channel_registration_ids["news"]

    assert await registrations.get(other, mine.registration_id, NOW) is None
    [result] = await registrations.upsert_many(
        other, [device("x", registration_id=mine.registration_id)], NOW
    )
    assert_gone(result, mine.registration_id)
    assert await registrations.delete(other, mine.registration_id, None, NOW) == 0
    by_user = RegistrationFilter(user_id="ivy")
    assert await registrations.update_tags(other, None, by_user, ["t"], [], MAX_TAGS, NOW) == 1
    assert (await registrations.get(app_id, mine.registration_id, NOW)) == mine
    page = await registrations.list(other, by_user, 10, None, NOW)
    assert [r.registration_id for r in page.items] == [theirs.registration_id]


async def test_concurrent_batches_never_lock_or_duplicate(
    registrations: SqlRegistrationRepository, app_id: str
) -> None:
    """20 writers at once, overlapping tokens: no "database is locked", no duplicate rows."""

    async def batch(worker: int) -> list[UpsertResult | PushHubError]:
        items = [device(f"conc-{(worker * 50 + i) % 600}") for i in range(100)]
        return await registrations.upsert_many(app_id, items, NOW)

    results = await asyncio.gather(*(batch(worker) for worker in range(20)))
    assert all(isinstance(r, UpsertResult) for batch_results in results for r in batch_results)
    page = await registrations.list(app_id, RegistrationFilter(), 1000, None, NOW)
    tokens = [r.device_token for r in page.items]
    assert len(tokens) == len(set(tokens)) == 600


@pytest.mark.parametrize("channels", [("default",), tuple(f"ch-{i}" for i in range(64))])
async def test_channel_counts(
    registrations: SqlRegistrationRepository, app_id: str, channels: tuple[str, ...]
) -> None:
    stored = (await upsert_one(registrations, app_id, device(channels=channels))).registration
    assert stored.channels == channels
    found = await registrations.get(app_id, stored.registration_id, NOW)
    assert found == stored


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        (upsert.ROWS_BY_TOKEN.sqlite_sql, "sqlite_autoindex_registrations_2"),
        ("SELECT id FROM registrations WHERE expires_at <= 1", "ix_registrations_expires_at"),
        (
            "SELECT id FROM registrations WHERE invalidated_at < 1",
            "ix_registrations_invalidated_at",
        ),
        (
            "SELECT id FROM registrations WHERE app_id = 'a' AND user_id = 'u'",
            "ix_registrations_app_user",
        ),
    ],
    ids=["batch-token-lookup", "expiry-sweep", "invalidated-sweep", "user-lookup"],
)
async def test_lookups_seek_an_index(db: Database, sql: str, index: str) -> None:
    """A batch's token lookup once walked every registration of the app (ORDER BY id),
    and the user and expiry indexes are partial: each lookup must still seek its index."""
    if db.dialect != "sqlite":
        pytest.skip("SQLite's plan; PostgreSQL's audience plans are guarded elsewhere")
    async with db.read() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        placeholders = sql.count("?")
        rows = await driver.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", ["x"] * placeholders)
    plan = "\n".join(row[-1] for row in rows)
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan


async def _children(db: Database, app_id: str, ids: Sequence[str]) -> tuple[int, int]:
    """Subscriptions and tags of the registrations ids, live or orphaned (channel or app gone)."""
    tag_count = sa.select(sa.func.count()).where(registration_tags.c.app_id == app_id)
    subscription_count = sa.select(sa.func.count()).where(subscriptions.c.registration_id.in_(ids))
    async with db.read() as conn:
        return (
            (await conn.execute(subscription_count)).scalar_one(),
            (await conn.execute(tag_count)).scalar_one(),
        )


async def test_every_delete_takes_the_subscriptions_and_tags_along(
    db: Database, apps: SqlAppRepository, registrations: SqlRegistrationRepository
) -> None:
    """They have no foreign key to their registration: no delete may leave them behind."""
    app_id = (await create_app(apps)).app_id
    # Two subscriptions and two tags per device (see device()).
    items = [
        device("by-id"),
        device("cleanup", user_id="ivy"),
        device("expires", expires_at=NOW + timedelta(seconds=1)),
        device("moved"),
        device("mover"),
        device("stays"),
    ]
    results = await registrations.upsert_many(app_id, items, NOW)
    stored = {r.registration.device_token: r.registration for r in results}  # type: ignore[union-attr]
    ids = [registration.registration_id for registration in stored.values()]
    assert await _children(db, app_id, ids) == (12, 12)
    await registrations.delete(app_id, stored["by-id"].registration_id, None, NOW)
    await registrations.cleanup(app_id, [CleanupTarget("ivy")], NOW)
    await registrations.delete_stale(NOW + timedelta(seconds=1), NOW)
    mover = device("moved", registration_id=stored["mover"].registration_id)
    await upsert_one(registrations, app_id, mover)  # the holder of "moved" is deleted
    assert await _children(db, app_id, ids) == (4, 4)  # "mover" (now holding "moved"), "stays"

    assert await apps.delete_app(app_id)
    assert await _children(db, app_id, ids) == (0, 0)


async def test_tags_added_while_the_registration_is_deleted_do_not_outlive_it(
    db: Database, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    """A delete holding the row while update_tags runs: the tags wait, then find nothing."""
    stored = (await upsert_one(registrations, app_id, device())).registration
    row = registrations_table.c.id == stored.registration_id
    async with db.write() as conn:
        await conn.execute(sa.select(registrations_table.c.id).where(row).with_for_update())
        adding = asyncio.create_task(
            registrations.update_tags(
                app_id, stored.registration_id, RegistrationFilter(), ["late"], [], MAX_TAGS, NOW
            )
        )
        await asyncio.sleep(0.3)  # update_tags runs as far as it can meanwhile
        assert await delete_registrations(conn, row) == 1
    assert await adding == 0
    assert await _children(db, app_id, [stored.registration_id]) == (0, 0)


async def test_subscriptions_added_while_the_app_is_deleted_do_not_outlive_it(
    db: Database, apps: SqlAppRepository, registrations: SqlRegistrationRepository
) -> None:
    """A writer holding a registration (as an upsert does) adds a subscription meanwhile."""
    app_id = (await create_app(apps)).app_id
    stored = (await upsert_one(registrations, app_id, device())).registration
    other = (await upsert_one(registrations, app_id, device(channels=("weather",)))).registration
    weather = subscriptions.c.id == other.channel_registration_ids["weather"]
    row = registrations_table.c.id == stored.registration_id
    async with db.write() as conn:
        await conn.execute(sa.select(registrations_table.c.id).where(row).with_for_update())
        channel = await conn.execute(sa.select(subscriptions.c.channel_id).where(weather))
        added = {"id": new_id(), "registration_id": stored.registration_id, "position": 2}
        added["channel_id"] = channel.scalar_one()
        deleting = asyncio.create_task(apps.delete_app(app_id))
        await asyncio.sleep(0.3)  # the delete runs as far as it can meanwhile
        await conn.execute(subscriptions.insert().values(added))
    assert await deleting
    ids = [stored.registration_id, other.registration_id]
    assert await _children(db, app_id, ids) == (0, 0)


async def _invalidate(db: Database, registration_id: str, at: datetime = NOW) -> None:
    """As delivery does when a provider answers that the token is invalid."""
    async with db.write() as conn:
        await conn.execute(
            sa.update(registrations_table)
            .where(registrations_table.c.id == registration_id)
            .values(invalidated_at=to_micros(at))
        )


async def test_a_device_actor_never_takes_another_users_registration(
    db: Database, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    alice = (
        await upsert_one(registrations, app_id, device("dc-alice", user_id="alice"))
    ).registration
    dead = (
        await upsert_one(registrations, app_id, device("dc-dead", user_id="alice"))
    ).registration
    await _invalidate(db, dead.registration_id)
    mine = (await upsert_one(registrations, app_id, device("dc-mine"))).registration
    reserved = new_id()
    await registrations.reserve_id(app_id, reserved, NOW)
    anonymous = DeviceActor(None)
    results = await registrations.upsert_many(
        app_id,
        [
            device("dc-alice", device_actor=anonymous),
            device("dc-alice", registration_id=reserved, device_actor=anonymous),
            device("dc-alice", registration_id=mine.registration_id, device_actor=anonymous),
            # An invalidated registration is nobody's: any device may take its token.
            device("dc-dead", device_actor=anonymous),
            # Earlier items of the same batch count: bob's token is his by then.
            device("dc-bob", user_id="bob"),
            device("dc-bob", device_actor=DeviceActor("alice")),
            device("dc-mine", channels=("mine",), device_actor=anonymous),
        ],
        NOW,
    )
    refused = [
        (r.reason, r.metadata["registration_id"])
        for r in results[:6]
        if isinstance(r, PushHubError)
    ]
    bob = results[4]
    assert isinstance(bob, UpsertResult)
    assert refused == [
        ("NOT_DEVICE_OWNER", alice.registration_id),
        ("NOT_DEVICE_OWNER", alice.registration_id),
        ("NOT_DEVICE_OWNER", alice.registration_id),
        ("NOT_DEVICE_OWNER", bob.registration.registration_id),
    ]
    revived = results[3]
    assert isinstance(revived, UpsertResult)
    assert revived.registration.registration_id == dead.registration_id
    assert revived.registration.user_id is None
    assert isinstance(results[6], UpsertResult), "its own anonymous registration is the device's"
    assert await registrations.get(app_id, alice.registration_id, NOW) == alice
    assert await count_rows(db, "registrations", dead.registration_id) == 1

    # Alice's user token lets the device move her token onto the reserved id.
    taken = device("dc-alice", registration_id=reserved, device_actor=DeviceActor("alice"))
    moved = await upsert_one(registrations, app_id, taken)
    assert moved.registration.registration_id == reserved
    assert await registrations.get(app_id, alice.registration_id, NOW) is None


async def test_invalidated_registrations_are_not_live(
    db: Database, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    dead = (await upsert_one(registrations, app_id, device("iv-dead", user_id="ina"))).registration
    await upsert_one(registrations, app_id, device("iv-live", user_id="ina"))
    await _invalidate(db, dead.registration_id)
    assert await registrations.get(app_id, dead.registration_id, NOW) is None
    assert await registrations.find_by_token(app_id, Platform.APNS, "iv-dead", NOW) is None
    page = await registrations.list(app_id, RegistrationFilter(user_id="ina"), 10, None, NOW)
    assert [r.device_token for r in page.items] == ["iv-live"]
    by_user = RegistrationFilter(user_id="ina")
    assert await registrations.update_tags(app_id, None, by_user, ["x"], [], MAX_TAGS, NOW) == 1
    revived = await upsert_one(registrations, app_id, device("iv-dead", user_id="ina"))
    assert revived.registration.registration_id == dead.registration_id
    assert await registrations.get(app_id, dead.registration_id, NOW) == revived.registration


async def test_cleanup_deletes_invisible_registrations_without_counting_them(
    db: Database, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    soon = NOW + timedelta(seconds=1)
    later = NOW + timedelta(seconds=2)
    items = [
        device("inv-expired", user_id="jo", expires_at=soon),
        device("inv-dead", user_id="jo"),
        device("inv-live", user_id="jo"),
        device("inv-other", user_id="jo", expires_at=soon),
    ]
    stored = [r.registration for r in await registrations.upsert_many(app_id, items, NOW)]  # type: ignore[union-attr]
    await _invalidate(db, stored[1].registration_id)
    assert await registrations.cleanup(app_id, [CleanupTarget("jo", "inv-other")], later) == 0
    assert await registrations.cleanup(app_id, [CleanupTarget("jo")], later) == 1
    for registration in stored:
        assert await count_rows(db, "registrations", registration.registration_id) == 0


async def test_update_tags_past_the_limit_changes_nothing(
    registrations: SqlRegistrationRepository, app_id: str
) -> None:
    full_item = device("lim-full", user_id="kim", tags=tuple(f"t{i}" for i in range(5)))
    full = (await upsert_one(registrations, app_id, full_item)).registration
    small = (
        await upsert_one(registrations, app_id, device("lim-small", user_id="kim"))
    ).registration
    by_user = RegistrationFilter(user_id="kim")
    for add, remove in ((["a", "b"], []), (["a", "b", "c"], ["t0"])):
        with pytest.raises(PushHubError) as caught:
            await registrations.update_tags(app_id, None, by_user, add, remove, 6, NOW)
        assert (caught.value.reason, caught.value.metadata["limit"]) == ("TOO_MANY_VALUES", "6")
        assert await registrations.get(app_id, full.registration_id, NOW) == full
        assert await registrations.get(app_id, small.registration_id, NOW) == small
    with pytest.raises(PushHubError):
        await registrations.update_tags(app_id, None, by_user, list("abcdefg"), [], 6, NOW)
    assert await registrations.update_tags(app_id, None, by_user, ["a", "t1"], ["t0"], 6, NOW) == 2
    stored = await registrations.get(app_id, full.registration_id, NOW)
    assert stored is not None and stored.tags == ("t1", "t2", "t3", "t4", "a")
    # Removing alone passes even where a lower limit is already exceeded.
    assert await registrations.update_tags(app_id, None, by_user, [], ["a"], 2, NOW) == 2


async def test_each_item_is_answered_with_its_own_content(
    registrations: SqlRegistrationRepository, app_id: str
) -> None:
    """Two items of one batch write the same registration: neither sees the other's."""
    device_item = device(
        "own-t",
        channels=("news", "mine"),
        metadata={"who": "device"},
        device_actor=DeviceActor(None),
    )
    alice_item = device("own-t", user_id="alice", metadata={"email": "alice@example.com"})
    first, second = await registrations.upsert_many(app_id, [device_item, alice_item], NOW)
    assert isinstance(first, UpsertResult) and isinstance(second, UpsertResult)
    mine, alices = first.registration, second.registration
    assert mine.registration_id == alices.registration_id
    assert (mine.user_id, mine.metadata, mine.channels) == (
        None,
        {"who": "device"},
        ("news", "mine"),
    )
    # Only the subscriptions that outlived the batch have an id to name.
    assert mine.channel_registration_ids == {"news": alices.channel_registration_ids["news"]}
    assert (alices.user_id, alices.metadata) == ("alice", {"email": "alice@example.com"})
    assert await registrations.get(app_id, alices.registration_id, NOW) == alices


async def test_a_device_actor_deletes_only_what_it_may_take(
    db: Database, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    alice = (await upsert_one(registrations, app_id, device("del-a", user_id="alice"))).registration
    anonymous = (await upsert_one(registrations, app_id, device("del-anon"))).registration
    for actor in (DeviceActor(None), DeviceActor("bob")):
        with pytest.raises(PushHubError) as by_id:
            await registrations.delete(app_id, alice.registration_id, actor, NOW)
        with pytest.raises(PushHubError) as by_token:
            await registrations.delete_by_token(app_id, Platform.APNS, "del-a", actor, NOW)
        for caught in (by_id, by_token):
            assert caught.value.reason == "NOT_DEVICE_OWNER"
            assert caught.value.metadata["registration_id"] == alice.registration_id
    assert await registrations.get(app_id, alice.registration_id, NOW) == alice
    by_bob = DeviceActor("bob")
    assert await registrations.delete(app_id, anonymous.registration_id, by_bob, NOW) == 1
    assert await registrations.delete(app_id, alice.registration_id, DeviceActor("alice"), NOW) == 1


async def test_unregister_never_deletes_a_registration_another_user_just_took(
    registrations: SqlRegistrationRepository, app_id: str
) -> None:
    """Alice's backend registers the device's anonymous token as hers just before
    the device key's delete runs: the delete must leave her registration alone."""
    anonymous_item = device("race-t", platform=Platform.FCM)
    alices_item = replace(anonymous_item, user_id="alice")
    anonymous = (await upsert_one(registrations, app_id, anonymous_item)).registration

    class AliceFirst:
        """The real repository; alice's registration lands before each delete."""

        def __getattr__(self, name: str) -> object:
            return getattr(registrations, name)

        async def delete(self, *args: object) -> int:
            await upsert_one(registrations, app_id, alices_item)
            return await registrations.delete(*args)  # type: ignore[arg-type]

        async def delete_by_token(self, *args: object) -> int:
            await upsert_one(registrations, app_id, alices_item)
            return await registrations.delete_by_token(*args)  # type: ignore[arg-type]

    service = _service(AliceFirst())
    device_key = Principal(app_id, "k", KeyKind.DEVICE, "key")
    for by_id, by_token in ((anonymous.registration_id, ""), ("", "race-t")):
        with pytest.raises(PushHubError) as caught:
            await service.unregister(device_key, by_id, Platform.FCM, by_token)
        assert caught.value.reason == "NOT_DEVICE_OWNER"
        alices = await registrations.get(app_id, anonymous.registration_id, NOW)
        assert alices is not None and alices.user_id == "alice"
        await registrations.upsert_many(app_id, [anonymous_item], NOW)  # anonymous again


def _service(repository: object) -> RegistrationService:
    return RegistrationService(
        repository,  # type: ignore[arg-type]
        MemoryTrackingRepository(MemoryStore()),
        RecordingWebhookSender(),
        ManualClock(NOW),
        Limits(),
    )


async def test_unregister_removes_invalidated_registrations_without_counting_them(
    db: Database, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    service = _service(registrations)
    device_key = Principal(app_id, "k", KeyKind.DEVICE, "key")
    ui_t = device("ui-t", platform=Platform.FCM, user_id="al")
    by_token = (await upsert_one(registrations, app_id, ui_t)).registration
    by_id = (await upsert_one(registrations, app_id, device("ui-i", user_id="al"))).registration
    for dead in (by_token, by_id):
        await _invalidate(db, dead.registration_id)
    # Dead rows are nobody's: even a device key without al's user token removes them.
    assert await service.unregister(device_key, "", Platform.FCM, "ui-t") == 0
    with pytest.raises(PushHubError) as gone:
        await service.unregister(device_key, by_id.registration_id, None, "")
    assert gone.value.reason == "REGISTRATION_GONE"
    for dead in (by_token, by_id):
        assert await count_rows(db, "registrations", dead.registration_id) == 0


async def test_the_sweep_deletes_registrations_invalidated_long_ago(
    db: Database, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    retention = INVALIDATED_RETENTION
    old = (await upsert_one(registrations, app_id, device("sw-old"))).registration
    recent = (await upsert_one(registrations, app_id, device("sw-recent"))).registration
    live = (await upsert_one(registrations, app_id, device("sw-live"))).registration
    await _invalidate(db, old.registration_id, NOW - retention - timedelta(seconds=1))
    await _invalidate(db, recent.registration_id, NOW - retention + timedelta(seconds=1))
    assert await _service(registrations).sweep() == 1
    assert await count_rows(db, "registrations", old.registration_id) == 0
    assert await count_rows(db, "registrations", recent.registration_id) == 1
    assert await registrations.get(app_id, live.registration_id, NOW) == live
    # Within the retention, registering the token again still revives it.
    revived = await upsert_one(registrations, app_id, device("sw-recent"))
    assert revived.registration.registration_id == recent.registration_id
