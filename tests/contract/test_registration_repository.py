"""RegistrationRepository: the write rules (core/registration_upsert_plan.py) and the
reads, deletes and tags, the same on every store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pushhub_server.core.errors import PushHubError
from pushhub_server.core.ids import new_id
from pushhub_server.core.messages import Audience, ChunkOutcome, Message, Schedule
from pushhub_server.core.models import (
    CleanupTarget,
    DeviceActor,
    Platform,
    Registration,
    RegistrationFilter,
    RegistrationInput,
    UpsertResult,
)
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.web_push import WebPushKeys
from tests.store_records import device, upsert_one

from .conftest import Stores

NOW = datetime(2030, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
LEASE = timedelta(seconds=30)
ALICE, BOB = DeviceActor("alice"), DeviceActor("bob")


async def upsert(
    stores: Stores, app_id: str, *items: RegistrationInput, now: datetime = NOW
) -> list[UpsertResult | PushHubError]:
    return await stores.registrations.upsert_many(app_id, list(items), now)


def refused(result: object, reason: str, registration_id: str) -> None:
    assert isinstance(result, PushHubError), result
    assert (result.reason, result.metadata["registration_id"]) == (reason, registration_id)


async def invalidate(stores: Stores, app_id: str, *registration_ids: str) -> None:
    """As a provider's answer does: through a message run's checkpoint."""
    message = Message(
        new_id(),
        app_id,
        NotificationContent(message="hi"),
        Audience(broadcast=True),
        Schedule(NOW - timedelta(days=1)),
        NOW - timedelta(days=1),
    )
    await stores.messages.create(message)
    runs = (await stores.messages.claim_due(NOW, LEASE, 10_000)).runs
    [run] = [run for run in runs if run.message.message_id == message.message_id]
    outcome = ChunkOutcome(cursor="z", invalid_registration_ids=list(registration_ids))
    assert await stores.messages.record_chunk(message.message_id, run.claim, outcome, NOW, LEASE)


async def test_a_web_push_subscription_reads_back_with_its_keys(
    stores: Stores, app_id: str
) -> None:
    keys = WebPushKeys("BP256dh-key", "auth-secret")
    item = device("https://push.example/send/1", platform=Platform.WEB_PUSH, web_push_keys=keys)
    stored = (await upsert_one(stores.registrations, app_id, item)).registration
    assert stored.web_push_keys == keys
    assert await stores.registrations.get(app_id, stored.registration_id, NOW) == stored


async def test_a_new_registration_reads_back_as_written(stores: Stores, app_id: str) -> None:
    item = device(user_id="alice", expires_at=NOW + timedelta(days=1))
    result = await upsert_one(stores.registrations, app_id, item)
    stored = result.registration

    assert not result.unchanged
    assert (stored.created_at, stored.updated_at) == (NOW, NOW)
    assert stored.channels == ("news", "sports") and stored.tags == ("lang:en", "beta")
    assert set(stored.channel_registration_ids) == {"news", "sports"}
    assert len(set(stored.channel_registration_ids.values())) == 2
    assert await stores.registrations.get(app_id, stored.registration_id, NOW) == stored
    found = await stores.registrations.find_by_token(app_id, Platform.APNS, item.device_token, NOW)
    assert found == stored
    assert (
        await stores.registrations.find_by_token(app_id, Platform.FCM, item.device_token, NOW)
        is None
    )


async def test_the_same_content_again_is_unchanged(stores: Stores, app_id: str) -> None:
    item = device()
    first = await upsert_one(stores.registrations, app_id, item)
    again = await upsert_one(stores.registrations, app_id, item, now=LATER)

    assert again.unchanged
    assert again.registration == first.registration
    assert again.registration.updated_at == NOW


async def test_channel_ids_stay_across_re_registration(stores: Stores, app_id: str) -> None:
    item = device()
    first = (await upsert_one(stores.registrations, app_id, item)).registration
    changed = replace(item, channels=("sports", "weather"), tags=("lang:fr",))
    second = await upsert_one(stores.registrations, app_id, changed, now=LATER)

    ids = second.registration.channel_registration_ids
    assert not second.unchanged
    assert second.registration.registration_id == first.registration_id
    assert (second.registration.created_at, second.registration.updated_at) == (NOW, LATER)
    assert ids["sports"] == first.channel_registration_ids["sports"]
    assert ids["weather"] not in first.channel_registration_ids.values()
    stored = await stores.registrations.get(app_id, first.registration_id, LATER)
    assert stored is not None
    assert stored.channel_registration_ids == ids and stored.tags == ("lang:fr",)


async def test_an_item_naming_its_registration_moves_the_token_to_it(
    stores: Stores, app_id: str
) -> None:
    mine = (await upsert_one(stores.registrations, app_id, device())).registration
    holder = (await upsert_one(stores.registrations, app_id, device())).registration

    moved = await upsert_one(
        stores.registrations,
        app_id,
        device(holder.device_token, registration_id=mine.registration_id),
    )

    assert moved.registration.registration_id == mine.registration_id
    assert await stores.registrations.get(app_id, holder.registration_id, NOW) is None
    found = await stores.registrations.find_by_token(
        app_id, Platform.APNS, holder.device_token, NOW
    )
    assert found is not None and found.registration_id == mine.registration_id
    # The token the moved registration gave up is free.
    assert (
        await stores.registrations.find_by_token(app_id, Platform.APNS, mine.device_token, NOW)
        is None
    )


async def test_a_batch_replays_its_items_in_order(stores: Stores, app_id: str) -> None:
    token = f"token-{new_id()}"
    first, second = device(token, tags=("a",)), device(token, tags=("b",))
    results = await upsert(stores, app_id, first, second)

    assert all(isinstance(result, UpsertResult) for result in results)
    ids = {result.registration.registration_id for result in results}  # type: ignore[union-attr]
    assert len(ids) == 1
    # Each caller is answered with its own content; the last item is what stays.
    assert [result.registration.tags for result in results] == [("a",), ("b",)]  # type: ignore[union-attr]
    stored = await stores.registrations.get(app_id, ids.pop(), NOW)
    assert stored is not None and stored.tags == ("b",)


async def test_a_device_key_may_not_take_another_users_registration(
    stores: Stores, app_id: str
) -> None:
    alices = (await upsert_one(stores.registrations, app_id, device(user_id="alice"))).registration

    by_token = device(alices.device_token, user_id="bob", device_actor=BOB)
    by_id = device(registration_id=alices.registration_id, user_id="bob", device_actor=BOB)
    results = await upsert(stores, app_id, by_token, by_id)

    for result in results:
        refused(result, "NOT_DEVICE_OWNER", alices.registration_id)
    assert await stores.registrations.get(app_id, alices.registration_id, NOW) == alices
    # Alice's own key, and a server key, may.
    assert await upsert_one(
        stores.registrations, app_id, replace(by_token, user_id="alice", device_actor=ALICE)
    )
    assert (
        await upsert_one(stores.registrations, app_id, replace(by_token, device_actor=None))
    ).registration


async def test_a_device_key_may_take_an_anonymous_registration(stores: Stores, app_id: str) -> None:
    anonymous = (await upsert_one(stores.registrations, app_id, device())).registration
    taken = await upsert_one(
        stores.registrations,
        app_id,
        device(anonymous.device_token, user_id="bob", device_actor=BOB),
    )
    assert taken.registration.registration_id == anonymous.registration_id
    assert taken.registration.user_id == "bob"


async def test_an_invalidated_registration_is_gone_until_its_token_comes_back(
    stores: Stores, app_id: str
) -> None:
    item = device(user_id="alice")
    dead = (await upsert_one(stores.registrations, app_id, item)).registration
    await invalidate(stores, app_id, dead.registration_id)

    assert await stores.registrations.get(app_id, dead.registration_id, NOW) is None
    assert (
        await stores.registrations.find_by_token(app_id, item.platform, item.device_token, NOW)
        is None
    )
    page = await stores.registrations.list(app_id, RegistrationFilter(), 10, None, NOW)
    assert page.items == []

    # The same content revives it: same id, rewritten, not "unchanged".
    revived = await upsert_one(stores.registrations, app_id, item, now=LATER)
    assert not revived.unchanged
    assert revived.registration.registration_id == dead.registration_id
    assert await stores.registrations.get(app_id, dead.registration_id, LATER) is not None


async def test_an_invalidated_registration_is_nobodys(stores: Stores, app_id: str) -> None:
    dead = (await upsert_one(stores.registrations, app_id, device(user_id="alice"))).registration
    await invalidate(stores, app_id, dead.registration_id)

    taken = await upsert_one(
        stores.registrations,
        app_id,
        device(dead.device_token, user_id="bob", device_actor=BOB),
        now=LATER,
    )
    assert taken.registration.registration_id == dead.registration_id
    assert taken.registration.user_id == "bob"


async def test_an_invalidated_registration_revives_by_its_id(stores: Stores, app_id: str) -> None:
    item = device()
    dead = (await upsert_one(stores.registrations, app_id, item)).registration
    await invalidate(stores, app_id, dead.registration_id)

    revived = await upsert_one(
        stores.registrations, app_id, replace(item, registration_id=dead.registration_id)
    )
    assert revived.registration.registration_id == dead.registration_id
    assert not revived.unchanged


async def test_invalidation_stays_in_its_app(stores: Stores, app_id: str) -> None:
    other = await stores.new_app()
    theirs = (await upsert_one(stores.registrations, other, device())).registration
    await invalidate(stores, app_id, theirs.registration_id)
    assert await stores.registrations.get(other, theirs.registration_id, NOW) == theirs


async def test_an_expired_registration_is_gone(stores: Stores, app_id: str) -> None:
    item = device(expires_at=NOW + timedelta(minutes=1))
    expiring = (await upsert_one(stores.registrations, app_id, item)).registration

    assert await stores.registrations.get(app_id, expiring.registration_id, LATER) is None
    found = await stores.registrations.find_by_token(
        app_id, item.platform, item.device_token, LATER
    )
    assert found is None
    page = await stores.registrations.list(app_id, RegistrationFilter(), 10, None, LATER)
    assert page.items == []
    again = replace(item, expires_at=None, registration_id=expiring.registration_id)
    [result] = await upsert(stores, app_id, again, now=LATER)
    refused(result, "REGISTRATION_GONE", expiring.registration_id)

    # Its token registers anew, under a new id.
    fresh = await upsert_one(
        stores.registrations, app_id, replace(item, expires_at=None), now=LATER
    )
    assert fresh.registration.registration_id != expiring.registration_id
    assert fresh.registration.created_at == LATER


async def test_an_unknown_id_is_gone_unless_reserved(stores: Stores, app_id: str) -> None:
    unknown, reserved = new_id(), new_id()
    await stores.registrations.reserve_id(app_id, reserved, NOW)

    gone, created = await upsert(
        stores, app_id, device(registration_id=unknown), device(registration_id=reserved)
    )
    refused(gone, "REGISTRATION_GONE", unknown)
    assert isinstance(created, UpsertResult)
    assert created.registration.registration_id == reserved
    # A reservation is used once, and only in its app.
    other = await stores.new_app()
    [elsewhere] = await upsert(stores, other, device(registration_id=reserved))
    refused(elsewhere, "REGISTRATION_GONE", reserved)


def succeeded(result: object) -> Registration:
    assert isinstance(result, UpsertResult), result
    return result.registration


async def reserve(stores: Stores, app_id: str, count: int) -> list[str]:
    ids = [new_id() for _ in range(count)]
    for registration_id in ids:
        await stores.registrations.reserve_id(app_id, registration_id, NOW)
    return ids


async def holder(
    stores: Stores, app_id: str, token: str, platform: Platform = Platform.APNS
) -> str:
    found = await stores.registrations.find_by_token(app_id, platform, token, NOW)
    assert found is not None
    return found.registration_id


async def test_two_reserved_ids_on_one_token_resolve_as_two_calls(
    stores: Stores, app_id: str
) -> None:
    """The second takes the token, which removes the registration the first made,
    as a second RegisterDevice would; each caller is answered with its own item."""
    first_id, second_id = await reserve(stores, app_id, 2)
    token = f"token-{new_id()}"
    results = await upsert(
        stores,
        app_id,
        device(token, registration_id=first_id, channels=("weather",), tags=("a",)),
        device(token, registration_id=second_id, tags=("b",)),
    )

    first, second = (succeeded(result) for result in results)
    assert [first.registration_id, second.registration_id] == [first_id, second_id]
    assert (first.tags, first.channels, second.tags) == (("a",), ("weather",), ("b",))
    assert (first.created_at, first.updated_at) == (NOW, NOW)
    # No subscription of the removed registration stands, so none is named.
    assert first.channel_registration_ids == {}
    assert not any(result.unchanged for result in results)  # type: ignore[union-attr]
    assert await stores.registrations.get(app_id, first_id, NOW) is None
    assert await stores.registrations.get(app_id, second_id, NOW) == second
    assert await holder(stores, app_id, token) == second_id
    # Both reservations are used: the removed one is gone for good.
    [again] = await upsert(stores, app_id, device(registration_id=first_id))
    refused(again, "REGISTRATION_GONE", first_id)


async def test_two_reserved_ids_on_one_token_of_two_platforms_both_stay(
    stores: Stores, app_id: str
) -> None:
    apns_id, fcm_id = await reserve(stores, app_id, 2)
    token = f"token-{new_id()}"
    results = await upsert(
        stores,
        app_id,
        device(token, registration_id=apns_id),
        device(token, registration_id=fcm_id, platform=Platform.FCM),
    )

    for result, registration_id in zip(results, (apns_id, fcm_id), strict=True):
        stored = await stores.registrations.get(app_id, registration_id, NOW)
        assert stored == succeeded(result)
        assert set(stored.channel_registration_ids) == {"news", "sports"}
    assert await holder(stores, app_id, token) == apns_id
    assert await holder(stores, app_id, token, Platform.FCM) == fcm_id


async def test_an_item_without_id_after_a_reserved_one_updates_it(
    stores: Stores, app_id: str
) -> None:
    [reserved] = await reserve(stores, app_id, 1)
    token = f"token-{new_id()}"
    results = await upsert(
        stores,
        app_id,
        device(token, registration_id=reserved, tags=("a",)),
        device(token, tags=("b",)),
    )

    assert [succeeded(result).registration_id for result in results] == [reserved, reserved]
    stored = await stores.registrations.get(app_id, reserved, NOW)
    assert stored is not None and stored.tags == ("b",)


async def test_a_reserved_id_after_an_item_without_id_takes_its_token(
    stores: Stores, app_id: str
) -> None:
    [reserved] = await reserve(stores, app_id, 1)
    token = f"token-{new_id()}"
    results = await upsert(stores, app_id, device(token), device(token, registration_id=reserved))

    made, taker = (succeeded(result) for result in results)
    assert made.registration_id != reserved and made.channel_registration_ids == {}
    assert taker.registration_id == reserved
    assert await stores.registrations.get(app_id, made.registration_id, NOW) is None
    assert await holder(stores, app_id, token) == reserved


async def test_one_reserved_id_twice_is_created_then_updated(stores: Stores, app_id: str) -> None:
    [reserved] = await reserve(stores, app_id, 1)
    token, moved_to = f"token-{new_id()}", f"token-{new_id()}"
    results = await upsert(
        stores,
        app_id,
        device(token, registration_id=reserved, tags=("a",)),
        device(moved_to, registration_id=reserved, tags=("b",)),
    )

    first, second = (succeeded(result) for result in results)
    assert (first.registration_id, second.registration_id) == (reserved, reserved)
    assert (first.tags, second.tags) == (("a",), ("b",))
    assert first.channel_registration_ids == second.channel_registration_ids
    assert await holder(stores, app_id, moved_to) == reserved
    assert await stores.registrations.find_by_token(app_id, Platform.APNS, token, NOW) is None


async def test_a_stored_registration_a_later_item_removes_is_answered_as_written(
    stores: Stores, app_id: str
) -> None:
    """Not only reserved ids: an item naming its registration takes the token of
    one an earlier item of the batch wrote."""
    token = f"token-{new_id()}"
    written = (await upsert_one(stores.registrations, app_id, device(token))).registration
    taker = (await upsert_one(stores.registrations, app_id, device())).registration

    results = await upsert(
        stores,
        app_id,
        device(token, registration_id=written.registration_id),
        device(token, registration_id=taker.registration_id),
        now=LATER,
    )

    same, moved = (succeeded(result) for result in results)
    assert results[0].unchanged  # type: ignore[union-attr]
    assert (same.registration_id, same.created_at, same.updated_at) == (
        written.registration_id,
        NOW,
        NOW,
    )
    assert same.channel_registration_ids == {}
    assert moved.registration_id == taker.registration_id
    assert await stores.registrations.get(app_id, written.registration_id, LATER) is None
    assert await holder(stores, app_id, token) == taker.registration_id


async def test_another_apps_registration_is_out_of_reach(stores: Stores, app_id: str) -> None:
    other = await stores.new_app()
    item = device()
    theirs = (await upsert_one(stores.registrations, other, item)).registration

    assert await stores.registrations.get(app_id, theirs.registration_id, NOW) is None
    [result] = await upsert(stores, app_id, replace(item, registration_id=theirs.registration_id))
    refused(result, "REGISTRATION_GONE", theirs.registration_id)
    mine = await upsert_one(stores.registrations, app_id, item)
    assert mine.registration.registration_id != theirs.registration_id
    assert await stores.registrations.delete(app_id, theirs.registration_id, None, NOW) == 0
    assert await stores.registrations.get(other, theirs.registration_id, NOW) == theirs


async def test_list_filters_and_pages(stores: Stores, app_id: str) -> None:
    items = [
        device(user_id="alice", channels=("news",), tags=("a",)),
        device(user_id="alice", channels=("sports",), tags=("b",), platform=Platform.FCM),
        device(user_id="bob", channels=("news",), tags=("b",)),
    ]
    ids = [
        (await upsert_one(stores.registrations, app_id, item)).registration.registration_id
        for item in items
    ]

    async def listed(where: RegistrationFilter) -> list[str]:
        page = await stores.registrations.list(app_id, where, 10, None, NOW)
        return [registration.registration_id for registration in page.items]

    assert await listed(RegistrationFilter()) == sorted(ids)
    assert await listed(RegistrationFilter(user_id="alice")) == sorted(ids[:2])
    assert await listed(RegistrationFilter(channel="news")) == sorted([ids[0], ids[2]])
    assert await listed(RegistrationFilter(tag="b", platform=Platform.APNS)) == [ids[2]]
    first = await stores.registrations.list(app_id, RegistrationFilter(), 2, None, NOW)
    assert first.next_cursor == sorted(ids)[1]
    rest = await stores.registrations.list(app_id, RegistrationFilter(), 2, first.next_cursor, NOW)
    assert [r.registration_id for r in rest.items] == sorted(ids)[2:]
    assert rest.next_cursor is None


async def test_update_tags_adds_and_removes(stores: Stores, app_id: str) -> None:
    item = device(tags=("a", "b"))
    registration_id = (
        await upsert_one(stores.registrations, app_id, item)
    ).registration.registration_id

    changed = await stores.registrations.update_tags(
        app_id, registration_id, RegistrationFilter(), ["c", "a"], ["b"], 3, LATER
    )

    assert changed == 1
    stored = await stores.registrations.get(app_id, registration_id, LATER)
    assert stored is not None and stored.tags == ("a", "c") and stored.updated_at == LATER
    # Its stored content changed outside upsert: the original item is a change again.
    assert not (await upsert_one(stores.registrations, app_id, item, now=LATER)).unchanged


async def test_update_tags_past_the_limit_changes_nothing(stores: Stores, app_id: str) -> None:
    items = [device(tags=("a",)), device(tags=("a", "b", "c"))]
    for item in items:
        await upsert_one(stores.registrations, app_id, item)

    with pytest.raises(PushHubError) as raised:
        await stores.registrations.update_tags(
            app_id, None, RegistrationFilter(tag="a"), ["d"], [], 3, NOW
        )
    assert raised.value.reason == "TOO_MANY_VALUES"
    page = await stores.registrations.list(app_id, RegistrationFilter(tag="d"), 10, None, NOW)
    assert page.items == []


async def test_delete_counts_live_registrations_only(stores: Stores, app_id: str) -> None:
    live = (await upsert_one(stores.registrations, app_id, device())).registration
    expired = device(expires_at=NOW + timedelta(minutes=1))
    expired_id = (
        await upsert_one(stores.registrations, app_id, expired)
    ).registration.registration_id
    registrations = stores.registrations

    assert await registrations.delete(app_id, live.registration_id, None, LATER) == 1
    assert await registrations.delete(app_id, live.registration_id, None, LATER) == 0
    assert await registrations.delete(app_id, expired_id, None, LATER) == 0
    assert await registrations.get(app_id, live.registration_id, NOW) is None
    # The expired one went too: even at a time it was live, it is not there.
    assert await registrations.get(app_id, expired_id, NOW) is None


async def test_a_device_key_deletes_only_what_it_may_take(stores: Stores, app_id: str) -> None:
    alices = (await upsert_one(stores.registrations, app_id, device(user_id="alice"))).registration
    registrations = stores.registrations

    with pytest.raises(PushHubError) as raised:
        await registrations.delete(app_id, alices.registration_id, BOB, NOW)
    assert raised.value.reason == "NOT_DEVICE_OWNER"
    with pytest.raises(PushHubError):
        await registrations.delete_by_token(app_id, Platform.APNS, alices.device_token, BOB, NOW)
    assert await registrations.get(app_id, alices.registration_id, NOW) == alices

    deleted = await registrations.delete_by_token(
        app_id, Platform.APNS, alices.device_token, ALICE, NOW
    )
    assert deleted == 1
    assert await registrations.get(app_id, alices.registration_id, NOW) is None


async def test_cleanup_removes_users_or_their_devices(stores: Stores, app_id: str) -> None:
    alice_1, alice_2, bob_1, bob_2 = [
        (await upsert_one(stores.registrations, app_id, device(user_id=user))).registration
        for user in ("alice", "alice", "bob", "bob")
    ]
    targets = [CleanupTarget("alice"), CleanupTarget("bob", bob_1.device_token)]

    assert await stores.registrations.cleanup(app_id, targets, NOW) == 3

    page = await stores.registrations.list(app_id, RegistrationFilter(), 10, None, NOW)
    assert [registration.registration_id for registration in page.items] == [bob_2.registration_id]
    assert {alice_1.registration_id, alice_2.registration_id}.isdisjoint(
        r.registration_id for r in page.items
    )


async def test_delete_stale_removes_long_invalidated_registrations(
    stores: Stores, app_id: str
) -> None:
    item = device()
    dead = (await upsert_one(stores.registrations, app_id, item)).registration
    await invalidate(stores, app_id, dead.registration_id)

    # Invalidated at NOW: not before NOW, so it stays (and could still revive)...
    await stores.registrations.delete_stale(NOW, invalidated_before=NOW)
    kept = replace(item, registration_id=dead.registration_id)
    assert isinstance((await upsert(stores, app_id, kept, now=NOW))[0], UpsertResult)
    await invalidate(stores, app_id, dead.registration_id)

    # ...until a later sweep.
    assert await stores.registrations.delete_stale(NOW, invalidated_before=LATER) >= 1
    [result] = await upsert(stores, app_id, kept, now=LATER)
    refused(result, "REGISTRATION_GONE", dead.registration_id)
