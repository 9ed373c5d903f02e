"""The authorization matrix (docs/architecture.md, "Keys and rights"; issue #2 section 5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

from pushhub.v1 import admin_pb2, publish_pb2, status_pb2
from pushhub.v1 import registration_pb2 as reg
from pushhub_server.core.clock import ManualClock

from .harness import (
    ADMIN_METADATA,
    APNS,
    FCM,
    AppHandle,
    bearer,
    check_error,
    expect_error,
    new_token,
    rich_status,
    stream_requests,
    unpack_details,
)

DENIED = grpc.StatusCode.PERMISSION_DENIED
GONE = dict(code=grpc.StatusCode.NOT_FOUND, reason="REGISTRATION_GONE")
DEVICE_ALLOWED = {"CreateRegistrationId", "RegisterDevice", "UnregisterDevice"}


async def _call(app: AppHandle, rpc: str, metadata) -> None:
    """Calls one RPC of the public services with a harmless request."""
    s = app.stubs
    registration_id = (await app.register()).registration.registration_id
    calls = {
        "CreateRegistrationId": lambda: s.registrations.CreateRegistrationId(
            reg.CreateRegistrationIdRequest(), metadata=metadata
        ),
        "RegisterDevice": lambda: s.registrations.RegisterDevice(
            reg.RegisterDeviceRequest(platform=APNS, device_token=new_token()), metadata=metadata
        ),
        "GetRegistration": lambda: s.registrations.GetRegistration(
            reg.GetRegistrationRequest(registration_id=registration_id), metadata=metadata
        ),
        "ListRegistrations": lambda: s.registrations.ListRegistrations(
            reg.ListRegistrationsRequest(), metadata=metadata
        ),
        "UpdateTags": lambda: s.registrations.UpdateTags(
            reg.UpdateTagsRequest(tag="x", add_tags=["y"]), metadata=metadata
        ),
        "UnregisterDevice": lambda: s.registrations.UnregisterDevice(
            reg.UnregisterDeviceRequest(platform=APNS, device_token=new_token()),
            metadata=metadata,
        ),
        "CleanupDevices": lambda: s.registrations.CleanupDevices(
            reg.CleanupDevicesRequest(targets=[reg.CleanupTarget(user_id="nobody")]),
            metadata=metadata,
        ),
        "RegisterDevices": lambda: _first_stream_response(app, metadata),
        "GetRegistrationStatus": lambda: s.status.GetRegistrationStatus(
            status_pb2.GetRegistrationStatusRequest(request_ids=["nope"]), metadata=metadata
        ),
        "GetMessageStatus": lambda: s.status.GetMessageStatus(
            status_pb2.GetMessageStatusRequest(message_id="nope"), metadata=metadata
        ),
        "WatchMessageStatus": lambda: _first_watch_response(app, metadata),
        "Publish": lambda: s.publish.Publish(
            publish_pb2.PublishRequest(channel="default", message="hi"), metadata=metadata
        ),
        "CancelMessage": lambda: s.publish.CancelMessage(
            publish_pb2.CancelMessageRequest(message_id="nope"), metadata=metadata
        ),
        "ListApiKeys": lambda: s.admin.ListApiKeys(
            admin_pb2.ListApiKeysRequest(app_id=app.app_id), metadata=metadata
        ),
    }
    await calls[rpc]()


async def _first_stream_response(app: AppHandle, metadata):
    call = app.stubs.registrations.RegisterDevices(
        stream_requests(
            [
                reg.RegisterDevicesRequest(
                    registrations=[
                        reg.RegisterDeviceRequest(platform=APNS, device_token=new_token())
                    ]
                )
            ]
        ),
        metadata=metadata,
    )
    responses = [response async for response in call]
    assert len(responses) == 1
    return responses


async def _first_watch_response(app: AppHandle, metadata):
    call = app.stubs.status.WatchMessageStatus(
        status_pb2.WatchMessageStatusRequest(message_id="nope"), metadata=metadata
    )
    async for response in call:
        return response


ALL_RPCS = [
    "CreateRegistrationId",
    "RegisterDevice",
    "RegisterDevices",
    "GetRegistration",
    "ListRegistrations",
    "UpdateTags",
    "UnregisterDevice",
    "CleanupDevices",
    "GetRegistrationStatus",
    "GetMessageStatus",
    "WatchMessageStatus",
    "Publish",
    "CancelMessage",
    "ListApiKeys",
]


async def _code(call) -> tuple[grpc.StatusCode, grpc.aio.AioRpcError | None]:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error
    return grpc.StatusCode.OK, None


@pytest.mark.parametrize("rpc", ALL_RPCS)
@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((), id="no-key"),
        pytest.param(bearer("phs_wrong-key"), id="wrong-key"),
        pytest.param(bearer("phd_wrong-key"), id="wrong-device-key"),
    ],
)
async def test_no_or_wrong_key_is_unauthenticated(app: AppHandle, rpc: str, metadata) -> None:
    code, error = await _code(_call(app, rpc, metadata))
    assert code == grpc.StatusCode.UNAUTHENTICATED, (rpc, code)
    check_error(error, grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")


@pytest.mark.parametrize("rpc", ALL_RPCS)
async def test_device_key_matrix(app: AppHandle, rpc: str) -> None:
    code, error = await _code(_call(app, rpc, app.device()))
    if rpc in DEVICE_ALLOWED:
        assert code == grpc.StatusCode.OK, (rpc, error and error.details())
        return
    assert code == DENIED, (rpc, code, error and error.details())
    if rpc == "Publish":
        check_error(error, DENIED, "PUBLISH_NOT_ALLOWED", legacy_code="5007")
    elif rpc == "CancelMessage":
        reason = _reason(error)
        assert reason in ("PUBLISH_NOT_ALLOWED", "SERVER_KEY_REQUIRED"), reason
        check_error(error, DENIED, reason)
    elif rpc == "ListApiKeys":
        check_error(error, DENIED, "ADMIN_NOT_ALLOWED")
    else:
        check_error(error, DENIED, "SERVER_KEY_REQUIRED")


def _reason(error: grpc.aio.AioRpcError) -> str:
    infos, _ = unpack_details(rich_status(error))
    return infos[0].reason if infos else ""


@pytest.mark.parametrize("rpc", ALL_RPCS)
async def test_server_key_matrix(app: AppHandle, rpc: str) -> None:
    """A server key is never refused (nor UNIMPLEMENTED): at most the message is unknown."""
    code, error = await _code(_call(app, rpc, app.server()))
    about_a_message = {"GetMessageStatus", "WatchMessageStatus", "Publish", "CancelMessage"}
    allowed = {grpc.StatusCode.OK}
    if rpc in about_a_message:
        allowed |= {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}
    assert code in allowed, (rpc, code, error and error.details())


# ------------------------------------------------------------ revocation ----


async def test_revoked_key_is_refused(app: AppHandle) -> None:
    admin = app.stubs.admin
    created = await admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(app_id=app.app_id, kind=admin_pb2.API_KEY_KIND_DEVICE),
        metadata=app.server(),
    )
    assert created.key and created.api_key.key_id
    listed = await admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(app_id=app.app_id), metadata=app.server()
    )
    assert created.api_key.key_id in {key.key_id for key in listed.api_keys}
    assert all(created.key not in str(key) for key in listed.api_keys), "no secret is returned"
    # Used once (so a per-process key cache holds it), then revoked: refused at once.
    assert (await app.register(bearer(created.key))).registration.registration_id

    await admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(app_id=app.app_id, key_id=created.api_key.key_id),
        metadata=app.server(),
    )
    await expect_error(
        app.register(bearer(created.key)), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID"
    )


async def test_admin_token_is_not_an_app_key(app: AppHandle) -> None:
    await expect_error(
        app.register(ADMIN_METADATA), grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID"
    )


# ------------------------------------------------------------ other apps ----


async def test_another_apps_key_cannot_see_or_change(app: AppHandle, other_app: AppHandle) -> None:
    rpc = app.stubs.registrations
    token = new_token()
    mine = await app.register(device_token=token, user_id="alice", tags=["t"], channels=["c"])
    registration_id = mine.registration.registration_id
    intruder = other_app.server()

    await expect_error(
        rpc.GetRegistration(
            reg.GetRegistrationRequest(registration_id=registration_id), metadata=intruder
        ),
        **GONE,
    )
    await expect_error(
        rpc.RegisterDevice(
            reg.RegisterDeviceRequest(
                registration_id=registration_id, platform=APNS, device_token=token
            ),
            metadata=intruder,
        ),
        **GONE,
    )
    await expect_error(
        rpc.UnregisterDevice(
            reg.UnregisterDeviceRequest(registration_id=registration_id), metadata=intruder
        ),
        **GONE,
    )
    await expect_error(
        rpc.RegisterDevice(
            reg.RegisterDeviceRequest(
                registration_id=registration_id, platform=APNS, device_token=token
            ),
            metadata=other_app.device(),
        ),
        **GONE,
    )
    removed = await rpc.UnregisterDevice(
        reg.UnregisterDeviceRequest(platform=APNS, device_token=token), metadata=intruder
    )
    assert removed.removed_count == 0
    cleaned = await rpc.CleanupDevices(
        reg.CleanupDevicesRequest(targets=[reg.CleanupTarget(user_id="alice")]), metadata=intruder
    )
    assert cleaned.removed_count == 0
    for request in (
        reg.UpdateTagsRequest(user_id="alice", add_tags=["x"]),
        reg.UpdateTagsRequest(tag="t", add_tags=["x"]),
    ):
        assert (await rpc.UpdateTags(request, metadata=intruder)).updated_count == 0
    by_id = await _code(
        rpc.UpdateTags(
            reg.UpdateTagsRequest(registration_id=registration_id, add_tags=["x"]),
            metadata=intruder,
        )
    )
    assert by_id[0] in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND)
    assert await other_app.list_all() == []
    assert await other_app.list_all(channel="c") == []

    # The same token in the other app is a separate registration.
    theirs = await other_app.register(device_token=token)
    assert theirs.registration.registration_id != registration_id

    got = await rpc.GetRegistration(
        reg.GetRegistrationRequest(registration_id=registration_id), metadata=app.server()
    )
    assert got.registration == mine.registration, "nothing changed in the first app"
    assert len(await app.list_all()) == 1


async def test_concurrent_callers_are_each_answered_as_themselves(
    app: AppHandle, other_app: AppHandle
) -> None:
    """The key checked before a call's body is read is the key its handler acts
    for, however the calls of different keys interleave: each app's server key
    fills ids reserved in its own app (another app's would answer GONE), and
    its device key is refused a listing, with bodies large enough to take
    several reads."""
    rounds = 12
    handles = [app, other_app] * rounds
    reserved = [
        (
            await handle.stubs.registrations.CreateRegistrationId(
                reg.CreateRegistrationIdRequest(), metadata=handle.server()
            )
        ).registration_id
        for handle in handles
    ]
    bulky = {f"k{index}": "v" * 4000 for index in range(3)}

    async def fill(handle: AppHandle, registration_id: str) -> grpc.StatusCode:
        call = handle.register(registration_id=registration_id, metadata=bulky)
        return (await _code(call))[0]

    async def device_lists(handle: AppHandle) -> grpc.StatusCode:
        request = reg.ListRegistrationsRequest(channel="c" * 255)
        call = handle.stubs.registrations.ListRegistrations(request, metadata=handle.device())
        return (await _code(call))[0]

    answers = await asyncio.gather(
        *(
            call
            for handle, registration_id in zip(handles, reserved, strict=True)
            for call in (fill(handle, registration_id), device_lists(handle))
        )
    )
    assert answers == [grpc.StatusCode.OK, DENIED] * len(handles)


async def test_reserved_id_of_another_app_is_gone(app: AppHandle, other_app: AppHandle) -> None:
    reserved = await app.stubs.registrations.CreateRegistrationId(
        reg.CreateRegistrationIdRequest(), metadata=app.server()
    )
    await expect_error(other_app.register(registration_id=reserved.registration_id), **GONE)


# ------------------------------------------------------------ user tokens ----


async def test_device_key_user_id_needs_a_matching_user_token(
    app: AppHandle, other_app: AppHandle
) -> None:
    await expect_error(
        app.register(app.device(), user_id="alice"),
        DENIED,
        "USER_TOKEN_REQUIRED",
        metadata={"field": "user_id"},
    )
    alice = await app.user_token("alice")
    bob = await app.user_token("bob")
    foreign = await other_app.user_token("alice")

    ok = await app.register(app.device(alice), user_id="alice")
    assert ok.registration.user_id == "alice"

    await expect_error(
        app.register(app.device(bob), user_id="alice"), DENIED, "USER_TOKEN_MISMATCH"
    )
    await expect_error(
        app.register(app.device(foreign), user_id="alice"), DENIED, "USER_TOKEN_REQUIRED"
    )
    await expect_error(
        app.register(app.device("not.a.jwt"), user_id="alice"), DENIED, "USER_TOKEN_REQUIRED"
    )
    # A server key sets any user id, with or without a token.
    assert (await app.register(user_id="carol")).registration.user_id == "carol"
    assert (await app.register(app.server(bob), user_id="carol")).registration.user_id == "carol"
    # Without user_id, a device key needs no token at all.
    assert (await app.register(app.device())).registration.user_id == ""
    assert {r.user_id for r in await app.list_all()} == {"alice", "carol", ""}


async def test_expired_user_token_is_refused(app: AppHandle, clock: ManualClock) -> None:
    token = await app.user_token("alice", ttl=timedelta(seconds=1))
    assert (await app.register(app.device(token), user_id="alice")).registration.user_id
    clock.advance(timedelta(seconds=2))
    await expect_error(
        app.register(app.device(token), user_id="alice"), DENIED, "USER_TOKEN_REQUIRED"
    )


async def test_reserved_user_tags(app: AppHandle) -> None:
    await expect_error(
        app.register(app.device(), tags=["user:alice"]),
        DENIED,
        "USER_TOKEN_REQUIRED",
        metadata={"field": "tags"},
    )
    alice = await app.user_token("alice")
    ok = await app.register(app.device(alice), tags=["user:alice", "public"])
    assert sorted(ok.registration.tags) == ["public", "user:alice"]
    await expect_error(app.register(app.device(alice), tags=["user:bob"]), DENIED, "RESERVED_TAG")
    await expect_error(
        app.register(app.device(alice), user_id="alice", tags=["user:bob"]),
        DENIED,
        "RESERVED_TAG",
    )
    assert list((await app.register(tags=["user:bob"])).registration.tags) == ["user:bob"]


async def test_device_key_cannot_take_over_another_users_device(app: AppHandle) -> None:
    rpc = app.stubs.registrations
    token = new_token()
    owned = await app.register(device_token=token, user_id="alice")
    registration_id = owned.registration.registration_id
    bob = await app.user_token("bob")
    alice = await app.user_token("alice")

    for metadata in (app.device(), app.device(bob)):
        await expect_error(
            rpc.UnregisterDevice(
                reg.UnregisterDeviceRequest(registration_id=registration_id), metadata=metadata
            ),
            DENIED,
            "NOT_DEVICE_OWNER",
        )
        await expect_error(
            rpc.UnregisterDevice(
                reg.UnregisterDeviceRequest(platform=APNS, device_token=token), metadata=metadata
            ),
            DENIED,
            "NOT_DEVICE_OWNER",
        )
        await expect_error(
            app.register(metadata, device_token=token, tags=["hijack"]), DENIED, "NOT_DEVICE_OWNER"
        )
        await expect_error(
            app.register(metadata, registration_id=registration_id, device_token=token),
            DENIED,
            "NOT_DEVICE_OWNER",
        )
    got = await rpc.GetRegistration(
        reg.GetRegistrationRequest(registration_id=registration_id), metadata=app.server()
    )
    assert got.registration == owned.registration

    # Its owner may update and unregister it.
    updated = await app.register(app.device(alice), device_token=token, user_id="alice", tags=["t"])
    assert updated.registration.registration_id == registration_id
    removed = await rpc.UnregisterDevice(
        reg.UnregisterDeviceRequest(platform=APNS, device_token=token),
        metadata=app.device(alice),
    )
    assert removed.removed_count == 1


async def test_device_key_manages_an_anonymous_device(app: AppHandle) -> None:
    rpc = app.stubs.registrations
    token = new_token()
    created = await app.register(app.device(), platform=FCM, device_token=token)
    updated = await app.register(
        app.device(),
        registration_id=created.registration.registration_id,
        platform=FCM,
        device_token=token,
        channels=["news"],
    )
    assert updated.registration.registration_id == created.registration.registration_id
    removed = await rpc.UnregisterDevice(
        reg.UnregisterDeviceRequest(registration_id=created.registration.registration_id),
        metadata=app.device(),
    )
    assert removed.removed_count == 1


async def test_user_token_issued_only_for_own_app(app: AppHandle, other_app: AppHandle) -> None:
    await expect_error(
        app.stubs.admin.IssueUserToken(
            admin_pb2.IssueUserTokenRequest(app_id=other_app.app_id, user_id="alice"),
            metadata=app.server(),
        ),
        DENIED,
        "ADMIN_NOT_ALLOWED",
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await app.stubs.admin.IssueUserToken(
            admin_pb2.IssueUserTokenRequest(app_id=app.app_id, user_id="alice"),
            metadata=app.device(),
        )
    assert caught.value.code() == DENIED


async def test_device_key_cannot_take_a_users_token_through_a_registration_id(
    app: AppHandle,
) -> None:
    """The token's holder is checked too, not only the registration the id names."""
    rpc = app.stubs.registrations
    token = new_token()
    owned = await app.register(device_token=token, user_id="alice", tags=["user:alice"])
    bob = await app.user_token("bob")
    mine = await app.register(app.device(), device_token=new_token())
    my_id = mine.registration.registration_id

    for metadata in (app.device(), app.device(bob)):
        reserved = await rpc.CreateRegistrationId(
            reg.CreateRegistrationIdRequest(), metadata=metadata
        )
        for registration_id in (reserved.registration_id, my_id):
            await expect_error(
                app.register(metadata, registration_id=registration_id, device_token=token),
                DENIED,
                "NOT_DEVICE_OWNER",
            )
        # The refused item consumed nothing: the reserved id still creates a registration.
        created = await app.register(metadata, registration_id=reserved.registration_id)
        assert created.registration.registration_id == reserved.registration_id

    got = await rpc.GetRegistration(
        reg.GetRegistrationRequest(registration_id=owned.registration.registration_id),
        metadata=app.server(),
    )
    assert got.registration == owned.registration
    mine_now = await rpc.GetRegistration(
        reg.GetRegistrationRequest(registration_id=my_id), metadata=app.server()
    )
    assert mine_now.registration.device_token == mine.registration.device_token

    # With alice's user token the device may move her token onto its registration.
    alice = await app.user_token("alice")
    moved = await app.register(app.device(alice), registration_id=my_id, device_token=token)
    assert moved.registration.registration_id == my_id
    await expect_error(
        rpc.GetRegistration(
            reg.GetRegistrationRequest(registration_id=owned.registration.registration_id),
            metadata=app.server(),
        ),
        **GONE,
    )
