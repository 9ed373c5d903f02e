"""DeviceRegistrationService success paths through the real gRPC server (issue #2, 6)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import grpc

from pushhub.v1 import registration_pb2 as reg
from pushhub_server.core.clock import ManualClock
from pushhub_server.delivery.providers.simulator import INVALID

from .harness import (
    APNS,
    FCM,
    AppHandle,
    expect_error,
    injected_token,
    new_token,
    settle,
    timestamp,
)

GONE = dict(code=grpc.StatusCode.NOT_FOUND, reason="REGISTRATION_GONE")


# ------------------------------------------------------- registration ids ----


async def test_create_registration_id_then_register_with_it(app: AppHandle) -> None:
    rpc = app.stubs.registrations
    first = await rpc.CreateRegistrationId(reg.CreateRegistrationIdRequest(), metadata=app.server())
    second = await rpc.CreateRegistrationId(
        reg.CreateRegistrationIdRequest(), metadata=app.server()
    )
    assert first.registration_id and second.registration_id
    assert first.registration_id != second.registration_id

    token = new_token()
    created = await app.register(
        registration_id=first.registration_id, device_token=token, channels=["news"]
    )
    assert created.registration.registration_id == first.registration_id
    assert created.registration.device_token == token

    got = await rpc.GetRegistration(
        reg.GetRegistrationRequest(registration_id=first.registration_id), metadata=app.server()
    )
    assert got.registration.registration_id == first.registration_id
    assert list(got.registration.channels) == ["news"]

    # The id stays the registration's: updating through it keeps the id.
    updated = await app.register(
        registration_id=first.registration_id, device_token=token, tags=["vip"]
    )
    assert updated.registration.registration_id == first.registration_id
    assert list(updated.registration.tags) == ["vip"]
    assert len(await app.list_all()) == 1


async def test_device_key_may_create_registration_id(app: AppHandle) -> None:
    reserved = await app.stubs.registrations.CreateRegistrationId(
        reg.CreateRegistrationIdRequest(), metadata=app.device()
    )
    created = await app.register(app.device(), registration_id=reserved.registration_id)
    assert created.registration.registration_id == reserved.registration_id


# ------------------------------------------------------------- register ----


async def test_register_echoes_fields_and_defaults_to_default_channel(
    app: AppHandle, clock: ManualClock
) -> None:
    token = new_token(152)
    expires = clock.now() + timedelta(days=30)
    response = await app.register(
        platform=FCM,
        device_token=token,
        tags=["b", "a"],
        user_id="alice",
        expires_at=timestamp(expires),
        metadata={"name": "Alice", "lang": "fr"},
        templates={"greet": reg.Template(body='{"message": "$(text)"}', tags=["a"])},
        selector="color = 'red' AND size > 3",
    )
    registration = response.registration
    assert registration.registration_id
    assert registration.platform == FCM
    assert registration.device_token == token
    assert list(registration.channels) == ["default"]
    assert sorted(registration.tags) == ["a", "b"]
    assert registration.user_id == "alice"
    assert registration.expires_at.ToDatetime().replace(microsecond=0) == expires.replace(
        microsecond=0, tzinfo=None
    )
    assert dict(registration.metadata) == {"name": "Alice", "lang": "fr"}
    assert registration.templates["greet"].body == '{"message": "$(text)"}'
    assert list(registration.templates["greet"].tags) == ["a"]
    assert registration.selector == "color = 'red' AND size > 3"
    assert registration.HasField("create_time") and registration.HasField("update_time")
    assert set(response.channel_registration_ids) == {"default"}
    assert response.channel_registration_ids["default"]
    assert dict(registration.channel_registration_ids) == dict(response.channel_registration_ids)
    assert response.request_id == "", "request_id is only set when track is true"


async def test_unknown_channels_are_created_one_id_per_channel(app: AppHandle) -> None:
    response = await app.register(channels=["news", "sports", "météo 🌦"])
    ids = dict(response.channel_registration_ids)
    assert set(ids) == {"news", "sports", "météo 🌦"}
    assert len(set(ids.values())) == 3, "each channel has its own subscription id"
    assert sorted(response.registration.channels) == sorted(ids)
    for channel in ids:
        listed = await app.list_all(channel=channel)
        assert [r.registration_id for r in listed] == [response.registration.registration_id]


async def test_reregistering_same_token_upserts_and_keeps_channel_ids(app: AppHandle) -> None:
    token = new_token()
    first = await app.register(device_token=token, channels=["a", "b"])
    second = await app.register(device_token=token, channels=["a", "b"])
    third = await app.register(device_token=token, channels=["b", "a", "c"], tags=["t"])

    registration_id = first.registration.registration_id
    assert second.registration.registration_id == registration_id
    assert third.registration.registration_id == registration_id
    assert dict(second.channel_registration_ids) == dict(first.channel_registration_ids)
    for channel in ("a", "b"):
        assert third.channel_registration_ids[channel] == first.channel_registration_ids[channel]
    assert third.channel_registration_ids["c"] not in first.channel_registration_ids.values()
    assert list(third.registration.tags) == ["t"]

    everything = await app.list_all()
    assert [r.registration_id for r in everything] == [registration_id], "no duplicate rows"

    # Dropping a channel and adding it back still leaves exactly one row.
    await app.register(device_token=token, channels=["a"])
    again = await app.register(device_token=token, channels=["a", "b"])
    assert again.registration.registration_id == registration_id
    assert again.channel_registration_ids["a"] == first.channel_registration_ids["a"]
    assert len(await app.list_all()) == 1


async def test_same_token_on_another_platform_is_another_registration(app: AppHandle) -> None:
    token = new_token()
    apns = await app.register(platform=APNS, device_token=token)
    fcm = await app.register(platform=FCM, device_token=token)
    assert apns.registration.registration_id != fcm.registration.registration_id
    assert len(await app.list_all()) == 2


async def test_upsert_replaces_content(app: AppHandle) -> None:
    token = new_token()
    await app.register(
        device_token=token, channels=["x"], tags=["old"], user_id="u1", metadata={"k": "v"}
    )
    second = await app.register(device_token=token, channels=["y"], tags=["new"])
    got = await app.stubs.registrations.GetRegistration(
        reg.GetRegistrationRequest(registration_id=second.registration.registration_id),
        metadata=app.server(),
    )
    assert list(got.registration.channels) == ["y"]
    assert list(got.registration.tags) == ["new"]
    assert await app.list_all(channel="x") == []
    assert [r.device_token for r in await app.list_all(channel="y")] == [token]


async def test_a_deeply_nested_template_is_invalid_argument(app: AppHandle) -> None:
    deep = "[" * 2000 + "]" * 2000  # within the 4,096-character limit
    await expect_error(
        app.register(templates={"t": reg.Template(body=deep)}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_TEMPLATE",
        field="templates[t].body",
    )
    assert await app.list_all() == []


async def test_update_by_registration_id(app: AppHandle) -> None:
    created = await app.register(channels=["a", "b"], tags=["one"])
    registration_id = created.registration.registration_id
    new_device_token = new_token()
    updated = await app.register(
        registration_id=registration_id,
        device_token=new_device_token,
        channels=["b", "c"],
        tags=["two"],
    )
    assert updated.registration.registration_id == registration_id
    assert updated.registration.device_token == new_device_token
    assert sorted(updated.registration.channels) == ["b", "c"]
    assert updated.channel_registration_ids["b"] == created.channel_registration_ids["b"]
    assert len(await app.list_all()) == 1


async def test_update_by_unknown_or_deleted_id_is_gone(app: AppHandle) -> None:
    unknown = str(uuid.uuid4())
    await expect_error(
        app.register(registration_id=unknown), **GONE, metadata={"registration_id": unknown}
    )

    created = await app.register()
    registration_id = created.registration.registration_id
    removed = await app.stubs.registrations.UnregisterDevice(
        reg.UnregisterDeviceRequest(registration_id=registration_id), metadata=app.server()
    )
    assert removed.removed_count == 1
    await expect_error(app.register(registration_id=registration_id), **GONE)
    assert await app.list_all() == []


# ---------------------------------------------------------- get and list ----


async def test_get_registration(app: AppHandle) -> None:
    created = await app.register(channels=["news"], tags=["t1"], user_id="bob")
    got = await app.stubs.registrations.GetRegistration(
        reg.GetRegistrationRequest(registration_id=created.registration.registration_id),
        metadata=app.server(),
    )
    assert got.registration == created.registration


async def test_get_unknown_registration_is_gone(app: AppHandle) -> None:
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        await expect_error(
            app.stubs.registrations.GetRegistration(
                reg.GetRegistrationRequest(registration_id=unknown), metadata=app.server()
            ),
            **GONE,
        )


async def test_list_filters(app: AppHandle) -> None:
    r1 = await app.register(platform=APNS, user_id="alice", channels=["news"], tags=["a"])
    r2 = await app.register(platform=FCM, user_id="alice", channels=["sports"], tags=["b"])
    r3 = await app.register(
        platform=APNS, user_id="bob", channels=["news", "sports"], tags=["a", "b"]
    )
    r4 = await app.register(platform=FCM)
    ids = {
        name: response.registration.registration_id
        for name, response in (("r1", r1), ("r2", r2), ("r3", r3), ("r4", r4))
    }

    async def listed(**filters) -> set[str]:
        found = await app.list_all(**filters)
        names = {name for name, rid in ids.items() if rid in {r.registration_id for r in found}}
        assert len(found) == len(names), "list holds only this app's registrations, once each"
        return names

    assert await listed() == {"r1", "r2", "r3", "r4"}
    assert await listed(user_id="alice") == {"r1", "r2"}
    assert await listed(user_id="nobody") == set()
    assert await listed(channel="news") == {"r1", "r3"}
    assert await listed(channel="default") == {"r4"}
    assert await listed(tag="b") == {"r2", "r3"}
    assert await listed(platform=FCM) == {"r2", "r4"}
    assert await listed(platform=APNS, user_id="alice") == {"r1"}
    assert await listed(channel="sports", tag="a") == {"r3"}


async def test_list_pagination_across_pages(app: AppHandle) -> None:
    created = set()
    for index in range(25):
        response = await app.register(channels=["paged"], tags=[f"n{index}"])
        created.add(response.registration.registration_id)

    rpc = app.stubs.registrations
    seen: list[str] = []
    sizes: list[int] = []
    token = ""
    while True:
        page = await rpc.ListRegistrations(
            reg.ListRegistrationsRequest(channel="paged", page_size=7, page_token=token),
            metadata=app.server(),
        )
        sizes.append(len(page.registrations))
        seen.extend(r.registration_id for r in page.registrations)
        token = page.next_page_token
        if not token:
            break
    assert sizes == [7, 7, 7, 4]
    assert len(seen) == len(set(seen)) == 25
    assert set(seen) == created

    whole = await rpc.ListRegistrations(reg.ListRegistrationsRequest(), metadata=app.server())
    assert len(whole.registrations) == 25 and whole.next_page_token == "", "0 means 100"

    capped = await rpc.ListRegistrations(
        reg.ListRegistrationsRequest(page_size=1_000_000), metadata=app.server()
    )
    assert len(capped.registrations) == 25

    exact = await rpc.ListRegistrations(
        reg.ListRegistrationsRequest(page_size=25), metadata=app.server()
    )
    if exact.next_page_token:  # AIP-158 allows a final empty page
        tail = await rpc.ListRegistrations(
            reg.ListRegistrationsRequest(page_size=25, page_token=exact.next_page_token),
            metadata=app.server(),
        )
        assert list(tail.registrations) == [] and tail.next_page_token == ""


async def test_list_bad_page_token_is_invalid_argument(app: AppHandle) -> None:
    for index in range(3):
        await app.register(channels=["c"], tags=[f"t{index}"])
    rpc = app.stubs.registrations
    for garbage in ("garbage", "%%%", "eyJhZnRlciI6IDF9", "A" * 3000):
        await expect_error(
            rpc.ListRegistrations(
                reg.ListRegistrationsRequest(page_token=garbage), metadata=app.server()
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
            field="page_token",
        )
    first = await rpc.ListRegistrations(
        reg.ListRegistrationsRequest(channel="c", page_size=1), metadata=app.server()
    )
    assert first.next_page_token
    # A token is bound to the filter that produced it (AIP-158).
    await expect_error(
        rpc.ListRegistrations(
            reg.ListRegistrationsRequest(
                channel="other", page_size=1, page_token=first.next_page_token
            ),
            metadata=app.server(),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
        field="page_token",
    )
    await expect_error(
        rpc.ListRegistrations(reg.ListRegistrationsRequest(page_size=-1), metadata=app.server()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_SIZE",
        field="page_size",
    )


# ----------------------------------------------------------------- tags ----


async def test_update_tags_by_registration_id_user_and_tag(app: AppHandle) -> None:
    rpc = app.stubs.registrations
    a1 = await app.register(user_id="alice", tags=["keep", "drop"])
    a2 = await app.register(user_id="alice", tags=["keep"])
    b1 = await app.register(user_id="bob", tags=["drop"])

    async def tags_of(response) -> set[str]:
        got = await rpc.GetRegistration(
            reg.GetRegistrationRequest(registration_id=response.registration.registration_id),
            metadata=app.server(),
        )
        return set(got.registration.tags)

    by_id = await rpc.UpdateTags(
        reg.UpdateTagsRequest(
            registration_id=a1.registration.registration_id, add_tags=["new"], remove_tags=["drop"]
        ),
        metadata=app.server(),
    )
    assert by_id.updated_count == 1
    assert await tags_of(a1) == {"keep", "new"}
    assert await tags_of(b1) == {"drop"}

    by_user = await rpc.UpdateTags(
        reg.UpdateTagsRequest(user_id="alice", add_tags=["user:alice", "fan"]),
        metadata=app.server(),
    )
    assert by_user.updated_count == 2
    assert await tags_of(a1) == {"keep", "new", "user:alice", "fan"}
    assert await tags_of(a2) == {"keep", "user:alice", "fan"}
    assert await tags_of(b1) == {"drop"}

    by_tag = await rpc.UpdateTags(
        reg.UpdateTagsRequest(tag="keep", remove_tags=["fan"], add_tags=["kept"]),
        metadata=app.server(),
    )
    assert by_tag.updated_count == 2
    assert await tags_of(a1) == {"keep", "new", "user:alice", "kept"}
    assert await tags_of(a2) == {"keep", "user:alice", "kept"}
    assert {r.registration_id for r in await app.list_all(tag="kept")} == {
        a1.registration.registration_id,
        a2.registration.registration_id,
    }

    nobody = await rpc.UpdateTags(
        reg.UpdateTagsRequest(user_id="nobody", add_tags=["x"]), metadata=app.server()
    )
    assert nobody.updated_count == 0


async def test_update_tags_needs_exactly_one_selector(app: AppHandle) -> None:
    rpc = app.stubs.registrations
    created = await app.register(user_id="alice")
    for request in (
        reg.UpdateTagsRequest(add_tags=["x"]),
        reg.UpdateTagsRequest(
            registration_id=created.registration.registration_id, user_id="alice", add_tags=["x"]
        ),
    ):
        await expect_error(
            rpc.UpdateTags(request, metadata=app.server()),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_SELECTION",
        )


async def test_update_tags_may_not_take_a_registration_past_its_tag_limit(app: AppHandle) -> None:
    rpc = app.stubs.registrations
    full = await app.register(user_id="u", tags=[f"t{i}" for i in range(59)])
    small = await app.register(user_id="u", tags=["s"])
    full_id = full.registration.registration_id

    async def tags_of(registration_id: str) -> list[str]:
        got = await rpc.GetRegistration(
            reg.GetRegistrationRequest(registration_id=registration_id), metadata=app.server()
        )
        return list(got.registration.tags)

    too_many = dict(
        code=grpc.StatusCode.INVALID_ARGUMENT,
        reason="TOO_MANY_VALUES",
        legacy_code="8000",
        field="add_tags",
        metadata={"limit": "60"},
    )
    for request in (
        reg.UpdateTagsRequest(registration_id=full_id, add_tags=["a", "b"]),
        # By a filter: one registration would pass the limit, so none changes.
        reg.UpdateTagsRequest(user_id="u", add_tags=["a", "b"]),
        reg.UpdateTagsRequest(tag="t0", add_tags=[f"x{i}" for i in range(60)], remove_tags=["t1"]),
    ):
        await expect_error(rpc.UpdateTags(request, metadata=app.server()), **too_many)
    assert await tags_of(full_id) == [f"t{i}" for i in range(59)]
    assert await tags_of(small.registration.registration_id) == ["s"]

    # Exactly at the limit, counting removals and tags it already holds.
    swapped = await rpc.UpdateTags(
        reg.UpdateTagsRequest(user_id="u", add_tags=["a", "b", "t0"], remove_tags=["t1"]),
        metadata=app.server(),
    )
    assert swapped.updated_count == 2
    assert len(await tags_of(full_id)) == 60
    assert await tags_of(small.registration.registration_id) == ["s", "a", "b", "t0"]


async def test_update_tags_of_an_unknown_or_expired_id_is_gone(
    app: AppHandle, clock: ManualClock
) -> None:
    rpc = app.stubs.registrations
    unknown = str(uuid.uuid4())
    await expect_error(
        rpc.UpdateTags(
            reg.UpdateTagsRequest(registration_id=unknown, add_tags=["a"]), metadata=app.server()
        ),
        **GONE,
        metadata={"registration_id": unknown},
    )
    short = await app.register(expires_at=timestamp(clock.now() + timedelta(seconds=1)))
    clock.advance(timedelta(seconds=2))  # only ever forward
    await expect_error(
        rpc.UpdateTags(
            reg.UpdateTagsRequest(
                registration_id=short.registration.registration_id, remove_tags=["a"]
            ),
            metadata=app.server(),
        ),
        **GONE,
    )


# ----------------------------------------------------------- unregister ----


async def test_unregister_by_registration_id(app: AppHandle) -> None:
    rpc = app.stubs.registrations
    keep = await app.register()
    gone = await app.register()
    registration_id = gone.registration.registration_id
    removed = await rpc.UnregisterDevice(
        reg.UnregisterDeviceRequest(registration_id=registration_id), metadata=app.server()
    )
    assert removed.removed_count == 1
    await expect_error(
        rpc.GetRegistration(
            reg.GetRegistrationRequest(registration_id=registration_id), metadata=app.server()
        ),
        **GONE,
    )
    await expect_error(
        rpc.UnregisterDevice(
            reg.UnregisterDeviceRequest(registration_id=registration_id), metadata=app.server()
        ),
        **GONE,
    )
    assert [r.registration_id for r in await app.list_all()] == [keep.registration.registration_id]


async def test_unregister_by_platform_and_token(app: AppHandle) -> None:
    rpc = app.stubs.registrations
    token = new_token()
    apns = await app.register(platform=APNS, device_token=token)
    fcm = await app.register(platform=FCM, device_token=token)
    request = reg.UnregisterDeviceRequest(platform=APNS, device_token=token)
    assert (await rpc.UnregisterDevice(request, metadata=app.server())).removed_count == 1
    assert (await rpc.UnregisterDevice(request, metadata=app.server())).removed_count == 0
    remaining = await app.list_all()
    assert [r.registration_id for r in remaining] == [fcm.registration.registration_id]
    await expect_error(
        rpc.GetRegistration(
            reg.GetRegistrationRequest(registration_id=apns.registration.registration_id),
            metadata=app.server(),
        ),
        **GONE,
    )


async def test_cleanup_devices_by_user_and_by_user_and_token(app: AppHandle) -> None:
    rpc = app.stubs.registrations
    alice_tokens = [new_token() for _ in range(3)]
    for token in alice_tokens:
        await app.register(device_token=token, user_id="alice")
    await app.register(device_token=alice_tokens[0], platform=FCM, user_id="alice")
    bob = await app.register(user_id="bob")
    carol = await app.register(user_id="carol")

    narrowed = await rpc.CleanupDevices(
        reg.CleanupDevicesRequest(
            targets=[reg.CleanupTarget(user_id="alice", device_token=alice_tokens[0])]
        ),
        metadata=app.server(),
    )
    assert narrowed.removed_count == 2, "the token on both platforms"
    assert sorted(r.device_token for r in await app.list_all(user_id="alice")) == sorted(
        alice_tokens[1:]
    )

    wrong_user = await rpc.CleanupDevices(
        reg.CleanupDevicesRequest(
            targets=[reg.CleanupTarget(user_id="bob", device_token=alice_tokens[1])]
        ),
        metadata=app.server(),
    )
    assert wrong_user.removed_count == 0

    batch = await rpc.CleanupDevices(
        reg.CleanupDevicesRequest(
            targets=[
                reg.CleanupTarget(user_id="alice"),
                reg.CleanupTarget(user_id="carol"),
                reg.CleanupTarget(user_id="nobody"),
            ]
        ),
        metadata=app.server(),
    )
    assert batch.removed_count == 3
    remaining = await app.list_all()
    assert [r.registration_id for r in remaining] == [bob.registration.registration_id]
    assert carol.registration.registration_id not in {r.registration_id for r in remaining}


# --------------------------------------------------------------- expiry ----


async def test_expires_at_in_the_past_or_now_is_invalid(app: AppHandle, clock: ManualClock) -> None:
    for moment in (clock.now() - timedelta(seconds=1), clock.now()):
        await expect_error(
            app.register(expires_at=timestamp(moment)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_EXPIRATION",
            legacy_code="5004",
            field="expires_at",
        )
    assert await app.list_all() == []


async def test_expired_registration_is_invisible_then_swept(
    app: AppHandle, clock: ManualClock, server
) -> None:
    rpc = app.stubs.registrations
    token = new_token()
    short = await app.register(
        device_token=token, user_id="u", expires_at=timestamp(clock.now() + timedelta(seconds=1))
    )
    durable = await app.register(user_id="u", expires_at=timestamp(clock.now() + timedelta(days=1)))
    forever = await app.register(user_id="u")
    short_id = short.registration.registration_id
    get_short = reg.GetRegistrationRequest(registration_id=short_id)
    assert (await rpc.GetRegistration(get_short, metadata=app.server())).registration.device_token

    clock.advance(timedelta(seconds=2))  # only ever forward

    await expect_error(rpc.GetRegistration(get_short, metadata=app.server()), **GONE)
    await expect_error(app.register(registration_id=short_id, device_token=token), **GONE)
    live = {r.registration_id for r in await app.list_all()}
    assert live == {durable.registration.registration_id, forever.registration.registration_id}
    assert {r.registration_id for r in await app.list_all(user_id="u")} == live
    tagged = await rpc.UpdateTags(
        reg.UpdateTagsRequest(user_id="u", add_tags=["after"]), metadata=app.server()
    )
    assert tagged.updated_count == 2, "expired registrations are not updated"

    swept = await server.registrations.sweep()
    assert swept >= 1
    await expect_error(rpc.GetRegistration(get_short, metadata=app.server()), **GONE)
    assert {r.registration_id for r in await app.list_all()} == live

    # The client re-creates it: the same token registers again, live.
    again = await app.register(device_token=token)
    assert again.registration.device_token == token
    assert len(await app.list_all()) == 3


async def test_reregistering_an_expired_token_before_the_sweep(
    app: AppHandle, clock: ManualClock
) -> None:
    token = new_token()
    await app.register(device_token=token, expires_at=timestamp(clock.now() + timedelta(seconds=1)))
    clock.advance(timedelta(seconds=2))
    again = await app.register(device_token=token, channels=["back"])
    got = await app.stubs.registrations.GetRegistration(
        reg.GetRegistrationRequest(registration_id=again.registration.registration_id),
        metadata=app.server(),
    )
    assert list(got.registration.channels) == ["back"]
    assert not got.registration.HasField("expires_at")
    assert len(await app.list_all()) == 1


async def test_expired_registrations_are_not_counted_as_removed(
    app: AppHandle, clock: ManualClock
) -> None:
    rpc = app.stubs.registrations
    soon = timestamp(clock.now() + timedelta(seconds=1))
    by_token = await app.register(user_id="u1", expires_at=soon)
    await app.register(user_id="u2", expires_at=soon)
    await app.register(user_id="u3", expires_at=soon)
    live = await app.register(user_id="u3")
    clock.advance(timedelta(seconds=2))  # only ever forward

    unregistered = await rpc.UnregisterDevice(
        reg.UnregisterDeviceRequest(platform=APNS, device_token=by_token.registration.device_token),
        metadata=app.server(),
    )
    assert unregistered.removed_count == 0
    cleaned = await rpc.CleanupDevices(
        reg.CleanupDevicesRequest(
            targets=[reg.CleanupTarget(user_id="u2"), reg.CleanupTarget(user_id="u3")]
        ),
        metadata=app.server(),
    )
    assert cleaned.removed_count == 1, "only u3's live registration was visible"
    assert await app.list_all() == []
    await expect_error(
        rpc.GetRegistration(
            reg.GetRegistrationRequest(registration_id=live.registration.registration_id),
            metadata=app.server(),
        ),
        **GONE,
    )


async def test_invalidated_registration_is_gone_until_registered_again(
    app: AppHandle, server
) -> None:
    rpc = app.stubs.registrations
    token = injected_token(INVALID, APNS)
    dead = await app.register(device_token=token, user_id="iv", channels=["c"], tags=["t"])
    live = await app.register(user_id="iv", channels=["c"], tags=["t"])
    dead_id = dead.registration.registration_id
    published = await app.publish(channel="c", message="hi")
    status = await settle(server, app, published.message_id)
    assert dict(status.failure_reasons) == {"Unregistered": 1}

    get_dead = reg.GetRegistrationRequest(registration_id=dead_id)
    await expect_error(rpc.GetRegistration(get_dead, metadata=app.server()), **GONE)
    live_ids = [live.registration.registration_id]
    for filters in ({}, {"user_id": "iv"}, {"channel": "c"}, {"tag": "t"}):
        assert [r.registration_id for r in await app.list_all(**filters)] == live_ids, filters
    await expect_error(
        rpc.UpdateTags(
            reg.UpdateTagsRequest(registration_id=dead_id, add_tags=["x"]), metadata=app.server()
        ),
        **GONE,
    )
    by_user = await rpc.UpdateTags(
        reg.UpdateTagsRequest(user_id="iv", add_tags=["x"]), metadata=app.server()
    )
    assert by_user.updated_count == 1
    unregistered = await rpc.UnregisterDevice(
        reg.UnregisterDeviceRequest(platform=APNS, device_token=token), metadata=app.server()
    )
    assert unregistered.removed_count == 0, "an invisible registration is not counted"

    # But it is removed: registering the token again creates a new registration.
    again = await app.register(device_token=token, user_id="iv", channels=["c"])
    assert again.registration.registration_id != dead_id
    got = await rpc.GetRegistration(
        reg.GetRegistrationRequest(registration_id=again.registration.registration_id),
        metadata=app.server(),
    )
    assert got.registration.device_token == token
    assert len(await app.list_all(user_id="iv")) == 2


async def test_reregistering_an_invalidated_token_revives_it(app: AppHandle, server) -> None:
    token = injected_token(INVALID, APNS)
    dead = await app.register(device_token=token, channels=["c"])
    published = await app.publish(channel="c", message="hi")
    await settle(server, app, published.message_id)
    assert await app.list_all() == []
    again = await app.register(device_token=token, channels=["c"])
    assert again.registration.registration_id == dead.registration.registration_id
    assert [r.registration_id for r in await app.list_all()] == [dead.registration.registration_id]


# ---------------------------------------------------------- concurrency ----


async def test_concurrent_registrations_of_one_token_make_one_row(app: AppHandle) -> None:
    """Concurrent RPCs neither lock the database nor race the upsert into duplicates."""
    shared = new_token()
    calls = [app.register(device_token=shared, tags=[f"t{i}"]) for i in range(20)]
    calls += [app.register(channels=["busy"]) for _ in range(30)]
    responses = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in responses if isinstance(r, BaseException)]
    assert errors == [], errors[:3]
    shared_ids = {r.registration.registration_id for r in responses[:20]}
    assert len(shared_ids) == 1
    listed = await app.list_all()
    assert len(listed) == 31
    assert sum(1 for r in listed if r.device_token == shared) == 1


async def test_concurrent_registrations_of_one_token_answer_each_caller_its_own(
    app: AppHandle,
) -> None:
    """A device and alice's backend register one token at once, among other traffic
    that fills a group-commit batch: the device never sees alice's registration."""
    for _ in range(10):
        token = new_token()
        calls = [app.register(channels=["busy"]) for _ in range(30)]
        calls.append(app.register(app.device(), device_token=token, metadata={"who": "device"}))
        calls.append(
            app.register(device_token=token, user_id="alice", metadata={"email": "a@example.com"})
        )
        responses = await asyncio.gather(*calls, return_exceptions=True)
        mine = responses[-2]
        if isinstance(mine, grpc.aio.AioRpcError):
            # Alice's registration came first: it is hers now.
            assert mine.code() is grpc.StatusCode.PERMISSION_DENIED
            continue
        assert mine.registration.user_id == ""
        assert dict(mine.registration.metadata) == {"who": "device"}


async def test_concurrent_registrations_of_one_token_by_two_reserved_ids(app: AppHandle) -> None:
    """Both calls succeed, each with its own id; the token stays with one of them."""
    rpc = app.stubs.registrations
    reserved = [
        (
            await rpc.CreateRegistrationId(reg.CreateRegistrationIdRequest(), metadata=app.server())
        ).registration_id
        for _ in range(2)
    ]
    token = new_token()
    calls = [app.register(channels=["busy"]) for _ in range(20)]
    calls += [app.register(device_token=token, registration_id=rid) for rid in reserved]
    responses = await asyncio.gather(*calls, return_exceptions=True)

    errors = [r for r in responses if isinstance(r, BaseException)]
    assert errors == [], errors[:3]
    assert [r.registration.registration_id for r in responses[-2:]] == reserved
    holders = [r.registration_id for r in await app.list_all() if r.device_token == token]
    assert len(holders) == 1 and holders[0] in reserved
