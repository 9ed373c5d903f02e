"""Device-token syntax per platform, wherever a token enters.

APNs puts the token into the request path and FCM into a JSON body: a token
with a space, a line break or a slash was stored and sent. Now APNs tokens are
64-200 hex digits (stored in lowercase), FCM tokens 1-4096 of [A-Za-z0-9_:-];
anything else is INVALID_ARGUMENT INVALID_DEVICE_TOKEN naming the field.
"""

from __future__ import annotations

import re

import grpc
import pytest

from pushhub.v1 import registration_pb2 as reg

from .harness import APNS, FCM, AppHandle, check_status, expect_error, new_token, stream_requests

INVALID = grpc.StatusCode.INVALID_ARGUMENT

BAD_TOKENS = [
    pytest.param(APNS, "a1b2c3d4e5f6", id="apns-short"),
    pytest.param(APNS, "t-1", id="apns-not-hex"),
    pytest.param(APNS, "ab" * 31 + " a", id="apns-space"),
    pytest.param(APNS, "ab" * 16 + "/../" + "ab" * 16, id="apns-path"),
    pytest.param(FCM, "demo token", id="fcm-space"),
    pytest.param(FCM, "demo\r\ntoken", id="fcm-crlf"),
    pytest.param(FCM, "demo\x01token", id="fcm-control"),
    pytest.param(FCM, 'demo"token', id="fcm-quote"),
    pytest.param(FCM, "démo", id="fcm-non-ascii"),
]


@pytest.mark.parametrize(("platform", "token"), BAD_TOKENS)
async def test_register_device_refuses_a_token_outside_its_platforms_syntax(
    app: AppHandle, platform: int, token: str
) -> None:
    await expect_error(
        app.register(platform=platform, device_token=token),
        INVALID,
        "INVALID_DEVICE_TOKEN",
        field="device_token",
    )
    await expect_error(
        app.register(platform=platform, device_token=token, auth=app.device()),
        INVALID,
        "INVALID_DEVICE_TOKEN",
        field="device_token",
    )
    assert await app.list_all() == []


@pytest.mark.parametrize(("platform", "token"), BAD_TOKENS)
async def test_a_bad_token_fails_its_own_item_of_a_stream(
    app: AppHandle, platform: int, token: str
) -> None:
    items = [
        reg.RegisterDeviceRequest(platform=APNS, device_token=new_token()),
        reg.RegisterDeviceRequest(platform=platform, device_token=token),
        reg.RegisterDeviceRequest(platform=FCM, device_token="fcm:" + new_token()),
    ]
    call = app.stubs.registrations.RegisterDevices(
        stream_requests([reg.RegisterDevicesRequest(registrations=items)]), metadata=app.server()
    )
    [response] = [response async for response in call]
    first, bad, last = response.results
    check_status(bad.error, INVALID, "INVALID_DEVICE_TOKEN", field="device_token")
    assert first.HasField("response") and last.HasField("response")
    assert len(await app.list_all()) == 2


@pytest.mark.parametrize(("platform", "token"), BAD_TOKENS)
async def test_unregister_and_cleanup_refuse_a_bad_token(
    app: AppHandle, platform: int, token: str
) -> None:
    rpc = app.stubs.registrations
    await expect_error(
        rpc.UnregisterDevice(
            reg.UnregisterDeviceRequest(platform=platform, device_token=token),
            metadata=app.device(),
        ),
        INVALID,
        "INVALID_DEVICE_TOKEN",
        field="device_token",
    )
    # CleanupDevices names no platform: a token of either syntax is looked up.
    if not re.fullmatch(r"[A-Za-z0-9_:-]+", token):
        targets = [
            reg.CleanupTarget(user_id="u"),
            reg.CleanupTarget(user_id="u", device_token=token),
        ]
        await expect_error(
            rpc.CleanupDevices(reg.CleanupDevicesRequest(targets=targets), metadata=app.server()),
            INVALID,
            "INVALID_DEVICE_TOKEN",
            field="targets[1].device_token",
        )


async def test_apns_tokens_of_either_case_are_one_device(app: AppHandle) -> None:
    """Apps hex-encode the token themselves, with %02x or %02X: one device, one registration."""
    token = new_token(64)
    upper = await app.register(platform=APNS, device_token=token.upper(), tags=["a"])
    lower = await app.register(platform=APNS, device_token=token, tags=["b"])
    assert upper.registration.registration_id == lower.registration.registration_id
    assert upper.registration.device_token == token, "stored in lowercase"
    [listed] = await app.list_all()
    assert list(listed.tags) == ["b"]
    rpc = app.stubs.registrations
    removed = await rpc.UnregisterDevice(
        reg.UnregisterDeviceRequest(platform=APNS, device_token=token.upper()),
        metadata=app.device(),
    )
    assert removed.removed_count == 1


async def test_cleanup_by_token_finds_an_apns_token_given_in_uppercase(app: AppHandle) -> None:
    token = new_token(128)
    await app.register(platform=APNS, device_token=token, user_id="carol")
    # An FCM token that happens to be hex keeps its case: it is another token.
    await app.register(platform=FCM, device_token=token.upper(), user_id="carol")
    target = reg.CleanupTarget(user_id="carol", device_token=token.upper())
    cleaned = await app.stubs.registrations.CleanupDevices(
        reg.CleanupDevicesRequest(targets=[target]), metadata=app.server()
    )
    assert cleaned.removed_count == 2
    assert await app.list_all() == []


@pytest.mark.parametrize(
    ("platform", "token"),
    [
        (APNS, "0" * 64),
        (APNS, "F" * 200),
        (FCM, "x"),
        (FCM, "dXJfZ2Vu:APA91b" + "Ab_-9" * 30),  # the shape Firebase issues
        (FCM, "t" * 4096),
    ],
)
async def test_tokens_within_the_syntax_are_accepted(
    app: AppHandle, platform: int, token: str
) -> None:
    response = await app.register(platform=platform, device_token=token)
    stored = token.lower() if platform == APNS else token
    assert response.registration.device_token == stored
