"""The error table of docs/architecture.md through the real server (issue #2, 7).

Every error: the right code, exactly one ErrorInfo (domain "pushhub",
UPPER_SNAKE reason, metadata with field/limit/legacy code) and, for field
errors, a BadRequest naming the field. Nothing ever answers UNKNOWN.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import grpc
import pytest

from pushhub.v1 import publish_pb2
from pushhub.v1 import registration_pb2 as reg
from pushhub_server.core.clock import ManualClock

from .harness import (
    APNS,
    FCM,
    AppHandle,
    bearer,
    check_error,
    expect_error,
    new_token,
    rich_status,
    timestamp,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def test_expiration_not_after_now_is_5004(app: AppHandle, clock: ManualClock) -> None:
    info = await expect_error(
        app.register(expires_at=timestamp(clock.now() - timedelta(days=1))),
        INVALID,
        "INVALID_EXPIRATION",
        legacy_code="5004",
        field="expires_at",
    )
    assert "expires_at" in info.metadata["field"]


# (field name in the request, value at the limit, value over it, reason, error field, limit)
LENGTH_CASES = [
    pytest.param(
        "channels", ["c" * 255], ["c" * 256], "VALUE_TOO_LONG", "channels[0]", 255, id="channel"
    ),
    pytest.param("tags", ["t" * 120], ["t" * 121], "VALUE_TOO_LONG", "tags[0]", 120, id="tag"),
    pytest.param(
        "tags",
        [f"t{i}" for i in range(60)],
        [f"t{i}" for i in range(61)],
        "TOO_MANY_VALUES",
        "tags",
        60,
        id="tag-count",
    ),
    pytest.param("user_id", "u" * 255, "u" * 256, "VALUE_TOO_LONG", "user_id", 255, id="user_id"),
    pytest.param(
        "metadata",
        {f"k{i}": "v" for i in range(64)},
        {f"k{i}": "v" for i in range(65)},
        "TOO_MANY_VALUES",
        "metadata",
        64,
        id="metadata-keys",
    ),
]


@pytest.mark.parametrize(("name", "at_limit", "over", "reason", "field", "limit"), LENGTH_CASES)
async def test_limits_are_8000_and_the_limit_itself_is_accepted(
    app: AppHandle, name: str, at_limit, over, reason: str, field: str, limit: int
) -> None:
    accepted = await app.register(**{name: at_limit})
    assert accepted.registration.registration_id

    info = await expect_error(
        app.register(**{name: over}),
        INVALID,
        reason,
        legacy_code="8000",
        field=field,
        metadata={"limit": str(limit)},
    )
    assert info.reason in ("VALUE_TOO_LONG", "TOO_MANY_VALUES")
    assert len(await app.list_all()) == 1, "a refused registration stores nothing"


@pytest.mark.parametrize(
    ("platform", "at_limit", "limit"), [(FCM, "t" * 4096, 4096), (APNS, "a" * 200, 200)]
)
async def test_device_token_length_limits_are_8000(
    app: AppHandle, platform: int, at_limit: str, limit: int
) -> None:
    """FCM tokens are bounded by the configured limit, APNs tokens by APNs' own 200."""
    accepted = await app.register(platform=platform, device_token=at_limit)
    assert accepted.registration.device_token == at_limit
    await expect_error(
        app.register(platform=platform, device_token=at_limit + "a"),
        INVALID,
        "VALUE_TOO_LONG",
        legacy_code="8000",
        field="device_token",
        metadata={"limit": str(limit)},
    )
    assert len(await app.list_all()) == 1, "a refused registration stores nothing"


@pytest.mark.parametrize(
    "tag", ["with space", "é", "semi;colon", "slash/", "", "star*", "emoji😀", "new\nline"]
)
async def test_tag_charset(app: AppHandle, tag: str) -> None:
    await expect_error(app.register(tags=["ok", tag]), INVALID, "INVALID_TAG", field="tags[1]")


async def test_every_allowed_tag_character(app: AppHandle) -> None:
    tag = "AZaz09_@#.:-"
    response = await app.register(tags=[tag])
    assert list(response.registration.tags) == [tag]


async def test_device_key_publish_is_5007(app: AppHandle) -> None:
    await expect_error(
        app.stubs.publish.Publish(
            publish_pb2.PublishRequest(channel="default", message="hi"), metadata=app.device()
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "PUBLISH_NOT_ALLOWED",
        legacy_code="5007",
    )


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((), id="no-key"),
        pytest.param(bearer("phs_not-a-real-key"), id="unknown-key"),
        pytest.param((("authorization", "Basic abc"),), id="not-bearer"),
        pytest.param((("authorization", "Bearer "),), id="empty-bearer"),
    ],
)
async def test_missing_or_unknown_key_is_api_key_invalid(app: AppHandle, metadata) -> None:
    await expect_error(
        app.stubs.registrations.RegisterDevice(
            reg.RegisterDeviceRequest(platform=APNS, device_token=new_token()), metadata=metadata
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "API_KEY_INVALID",
    )


async def test_registration_gone(app: AppHandle) -> None:
    unknown = str(uuid.uuid4())
    info = await expect_error(
        app.stubs.registrations.GetRegistration(
            reg.GetRegistrationRequest(registration_id=unknown), metadata=app.server()
        ),
        grpc.StatusCode.NOT_FOUND,
        "REGISTRATION_GONE",
        metadata={"registration_id": unknown},
    )
    assert unknown in info.metadata["registration_id"]


async def test_required_fields(app: AppHandle) -> None:
    await expect_error(
        app.register(device_token=""), INVALID, "FIELD_REQUIRED", field="device_token"
    )
    await expect_error(
        app.stubs.registrations.GetRegistration(
            reg.GetRegistrationRequest(), metadata=app.server()
        ),
        INVALID,
        "FIELD_REQUIRED",
        field="registration_id",
    )
    await expect_error(
        app.stubs.registrations.UnregisterDevice(
            reg.UnregisterDeviceRequest(), metadata=app.server()
        ),
        INVALID,
        "FIELD_REQUIRED",
    )
    await expect_error(
        app.stubs.registrations.CleanupDevices(reg.CleanupDevicesRequest(), metadata=app.server()),
        INVALID,
        "FIELD_REQUIRED",
        field="targets",
    )
    await expect_error(
        app.stubs.registrations.CleanupDevices(
            reg.CleanupDevicesRequest(targets=[reg.CleanupTarget(device_token="x")]),
            metadata=app.server(),
        ),
        INVALID,
        "FIELD_REQUIRED",
        field="targets[0].user_id",
    )


@pytest.mark.parametrize("platform", [0, 5, 99, -1, 2**31 - 1])
async def test_bad_platform(app: AppHandle, platform: int) -> None:
    await expect_error(
        app.register(platform=platform), INVALID, "INVALID_PLATFORM", field="platform"
    )


async def test_other_field_rules(app: AppHandle) -> None:
    cases = [
        ({"channels": ["ok", ""]}, "INVALID_NAME", "channels[1]"),
        ({"channels": ["bad\x00name"]}, "INVALID_NAME", "channels[0]"),
        ({"channels": [f"c{i}" for i in range(65)]}, "TOO_MANY_VALUES", "channels"),
        ({"metadata": {"": "v"}}, "INVALID_NAME", "metadata.key"),
        ({"metadata": {"k": "v" * 4097}}, "VALUE_TOO_LONG", "metadata[k]"),
        ({"selector": "x" * 1025}, "VALUE_TOO_LONG", "selector"),
        ({"callback_url": "ftp://example.com/hook"}, "INVALID_URL", "callback_url"),
        ({"callback_url": "not a url"}, "INVALID_URL", "callback_url"),
        (
            {"templates": {"t": reg.Template(body="{not json")}},
            "INVALID_TEMPLATE",
            "templates[t].body",
        ),
        (
            {"templates": {"t": reg.Template(body="{}", tags=["bad tag"])}},
            "INVALID_TAG",
            "templates[t].tags[0]",
        ),
        ({"registration_id": "r" * 65}, "VALUE_TOO_LONG", "registration_id"),
    ]
    for fields, reason, field in cases:
        try:
            await app.register(**fields)
        except grpc.aio.AioRpcError as error:
            check_error(error, INVALID, reason, field=field)
        else:
            raise AssertionError(f"{fields!r} was accepted")
    assert await app.list_all() == []


async def test_selector_syntax_is_checked_when_stored(app: AppHandle) -> None:
    """The selector is checked when the registration is stored."""
    for selector in ("((", "color = ", "AND AND", "a === 'b'"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await app.register(selector=selector)
        assert caught.value.code() == INVALID, (selector, caught.value.details())
        rich_status(caught.value)


# -------------------------------------------------------------- garbage ----

NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
WEIRD = [
    "",
    "\x00",
    "nul\x00inside",
    "😀" * 300,
    "\u202eRTL override",
    "e\u0301\u0301\u0301",
    "\ufeffBOM",
    "\U0010ffff",
    "'; DROP TABLE registrations; --",
    "%s%s%n",
    "\\",
    "a" * 70_000,
    "\t\r\n",
    "user:",
    "NULL",
]


async def _assert_clean(call, what) -> None:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        assert error.code() not in NEVER, (what, error.code(), error.details())
        assert "Traceback" not in (error.details() or ""), what
        status = rich_status(error)
        assert status.details, f"{what}: an error without ErrorInfo"


async def test_garbage_never_answers_unknown(app: AppHandle) -> None:
    rng = random.Random(20240602)
    rpc = app.stubs.registrations
    fields = ["device_token", "user_id", "selector", "callback_url", "registration_id"]
    for index in range(120):
        request = reg.RegisterDeviceRequest(
            platform=rng.choice([0, 1, 2, 7, -5]), device_token=rng.choice(WEIRD[1:]) + str(index)
        )
        for name in rng.sample(fields, rng.randint(0, len(fields))):
            setattr(request, name, rng.choice(WEIRD))
        request.channels.extend(rng.sample(WEIRD, rng.randint(0, 2)))
        request.tags.extend(rng.sample(WEIRD, rng.randint(0, 2)))
        for _ in range(rng.randint(0, 2)):
            request.metadata[rng.choice(WEIRD)] = rng.choice(WEIRD)
            request.callback_headers[rng.choice(WEIRD)] = rng.choice(WEIRD)
        if rng.random() < 0.3:
            request.templates[rng.choice(WEIRD)].body = rng.choice(WEIRD + ['{"a": 1}'])
        await _assert_clean(rpc.RegisterDevice(request, metadata=app.server()), request)

    for weird in WEIRD:
        server = app.server()
        await _assert_clean(
            rpc.GetRegistration(reg.GetRegistrationRequest(registration_id=weird), metadata=server),
            weird,
        )
        await _assert_clean(
            rpc.ListRegistrations(
                reg.ListRegistrationsRequest(
                    user_id=weird, channel=weird, tag=weird, page_token=weird
                ),
                metadata=server,
            ),
            weird,
        )
        await _assert_clean(
            rpc.ListRegistrations(
                reg.ListRegistrationsRequest(user_id=weird, channel=weird, tag=weird),
                metadata=server,
            ),
            weird,
        )
        await _assert_clean(
            rpc.UpdateTags(reg.UpdateTagsRequest(tag=weird, add_tags=[weird]), metadata=server),
            weird,
        )
        await _assert_clean(
            rpc.UnregisterDevice(
                reg.UnregisterDeviceRequest(registration_id=weird), metadata=server
            ),
            weird,
        )
        await _assert_clean(
            rpc.UnregisterDevice(
                reg.UnregisterDeviceRequest(platform=APNS, device_token=weird), metadata=server
            ),
            weird,
        )
        await _assert_clean(
            rpc.CleanupDevices(
                reg.CleanupDevicesRequest(
                    targets=[reg.CleanupTarget(user_id=weird, device_token=weird)]
                ),
                metadata=server,
            ),
            weird,
        )
        if not (weird.isascii() and weird.isprintable() and len(weird) < 4000):
            continue  # gRPC itself refuses such header values on the client side
        await _assert_clean(
            rpc.RegisterDevice(
                reg.RegisterDeviceRequest(platform=APNS, device_token=new_token()),
                metadata=bearer(weird) + (("user-token", weird or "x"),),
            ),
            weird,
        )
        await _assert_clean(
            rpc.RegisterDevice(
                reg.RegisterDeviceRequest(platform=APNS, device_token=new_token(), user_id="u"),
                metadata=app.device(weird or "x"),
            ),
            weird,
        )


async def test_huge_and_empty_requests(app: AppHandle) -> None:
    rpc = app.stubs.registrations
    long_token = reg.RegisterDeviceRequest(platform=APNS, device_token="x" * 5_000)
    await expect_error(
        rpc.RegisterDevice(long_token, metadata=app.server()),
        INVALID,
        "VALUE_TOO_LONG",
        field="device_token",
    )
    many_tags = reg.RegisterDeviceRequest(
        platform=APNS, device_token=new_token(), tags=[f"t{i}" for i in range(61)]
    )
    await expect_error(
        rpc.RegisterDevice(many_tags, metadata=app.server()),
        INVALID,
        "TOO_MANY_VALUES",
        field="tags",
    )
    # Larger than any valid registration: refused before it is parsed.
    for huge in (
        reg.RegisterDeviceRequest(platform=APNS, device_token="x" * 2_000_000),
        reg.RegisterDeviceRequest(platform=APNS, tags=[f"t{i}" for i in range(50_000)]),
    ):
        await expect_error(
            rpc.RegisterDevice(huge, metadata=app.server()),
            INVALID,
            "MESSAGE_TOO_LARGE",
            metadata={"limit": "16384"},
        )
    await _assert_clean(rpc.RegisterDevice(reg.RegisterDeviceRequest(), metadata=app.server()), "")
    await _assert_clean(
        rpc.UpdateTags(reg.UpdateTagsRequest(user_id="u"), metadata=app.server()), "no tags"
    )


async def test_nul_in_stored_text_is_accepted_or_refused_cleanly(app: AppHandle) -> None:
    """PostgreSQL text cannot hold NUL: the server must refuse it, not crash."""
    crashed = []
    for fields in (
        {"device_token": "tok\x00en"},
        {"user_id": "us\x00er"},
        {"metadata": {"k": "v\x00"}},
        {"metadata": {"k\x00": "v"}},
        {"tags": ["ok"], "templates": {"t": reg.Template(body='{"a": "\\u0000"}')}},
        {"selector": "a = '\x00'"},
        {"callback_url": "http://h/\x00", "track": True},
        {"callback_headers": {"h": "v\x00"}, "track": True},
    ):
        try:
            await _assert_clean(app.register(**fields), fields)
        except AssertionError as failure:
            crashed.append(str(failure).splitlines()[0])
    assert not crashed, "\n".join(crashed)
