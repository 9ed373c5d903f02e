"""Fields that were accepted without a rule, each refused now with INVALID_ARGUMENT
naming the field: Timestamp and Duration ranges, open enum numbers, the
platforms list, header-bound text, ids and lookup filters."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from pushhub.v1 import admin_pb2, publish_pb2
from pushhub.v1 import registration_pb2 as reg

from .harness import (
    ADMIN_METADATA,
    APNS,
    FCM,
    AppHandle,
    StoreProbe,
    check_status,
    expect_error,
    new_token,
    settle,
    stream_requests,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
# 2100-01-01: far enough ahead for every rule but the one under test.
LATER = 4_102_444_800

# (seconds, nanos) outside google.protobuf.Timestamp's documented range.
BAD_TIMESTAMPS = [
    pytest.param(LATER, -1, id="nanos--1"),
    pytest.param(LATER, 2_000_000_000, id="nanos-2e9"),
    pytest.param(LATER, 1_000_000_000, id="nanos-1e9"),
    pytest.param(253_402_300_800, 0, id="after-9999"),
    pytest.param(2**63 - 1, 0, id="int64-max"),
]
# (seconds, nanos) outside google.protobuf.Duration's documented range.
BAD_DURATIONS = [
    pytest.param(5, -1, id="nanos-of-the-other-sign"),
    pytest.param(0, 2_000_000_000, id="nanos-2e9"),
    pytest.param(0, -1_000_000_000, id="nanos--1e9"),
    pytest.param(315_576_000_001, 0, id="over-10000-years"),
    pytest.param(-(2**63), 0, id="int64-min"),
]


@pytest.mark.parametrize(("seconds", "nanos"), BAD_TIMESTAMPS)
@pytest.mark.parametrize("field", ["publish_at", "repeat_expires_at"])
async def test_publish_timestamps_out_of_range(
    app: AppHandle, store: StoreProbe, field: str, seconds: int, nanos: int
) -> None:
    request = publish_pb2.PublishRequest(message="hi", request_id="refused")
    if field == "repeat_expires_at":
        request.repeat_every.CopyFrom(duration_pb2.Duration(seconds=60))
    getattr(request, field).CopyFrom(timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))
    await expect_error(
        app.stubs.publish.Publish(request, metadata=app.server()),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        field=field,
    )
    assert await store.published(app, "refused") is None


@pytest.mark.parametrize(("seconds", "nanos"), BAD_DURATIONS)
@pytest.mark.parametrize("field", ["ttl", "repeat_every"])
async def test_publish_durations_out_of_range(
    app: AppHandle, store: StoreProbe, field: str, seconds: int, nanos: int
) -> None:
    request = publish_pb2.PublishRequest(message="hi", request_id="refused")
    getattr(request, field).CopyFrom(duration_pb2.Duration(seconds=seconds, nanos=nanos))
    await expect_error(
        app.stubs.publish.Publish(request, metadata=app.server()),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        field=field,
    )
    assert await store.published(app, "refused") is None


@pytest.mark.parametrize(("seconds", "nanos"), BAD_TIMESTAMPS)
async def test_registration_expiry_out_of_range(app: AppHandle, seconds: int, nanos: int) -> None:
    expires_at = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    await expect_error(
        app.register(expires_at=expires_at), INVALID, "VALUE_OUT_OF_RANGE", field="expires_at"
    )
    # In a stream it fails its own item only.
    items = [
        reg.RegisterDeviceRequest(platform=APNS, device_token=new_token()),
        reg.RegisterDeviceRequest(platform=APNS, device_token=new_token(), expires_at=expires_at),
    ]
    call = app.stubs.registrations.RegisterDevices(
        stream_requests([reg.RegisterDevicesRequest(registrations=items)]), metadata=app.server()
    )
    [response] = [response async for response in call]
    good, bad = response.results
    assert good.WhichOneof("outcome") == "response"
    check_status(bad.error, INVALID, "VALUE_OUT_OF_RANGE", field="expires_at")
    assert len(await app.list_all()) == 1


@pytest.mark.parametrize(("seconds", "nanos"), BAD_DURATIONS)
async def test_user_token_ttl_out_of_range(app: AppHandle, seconds: int, nanos: int) -> None:
    request = admin_pb2.IssueUserTokenRequest(
        app_id=app.app_id, user_id="u", ttl=duration_pb2.Duration(seconds=seconds, nanos=nanos)
    )
    await expect_error(
        app.stubs.admin.IssueUserToken(request, metadata=app.server()),
        INVALID,
        "VALUE_OUT_OF_RANGE",
        field="ttl",
    )


async def test_the_edges_of_the_ranges_are_accepted(app: AppHandle) -> None:
    far = timestamp_pb2.Timestamp(seconds=253_402_300_799, nanos=999_999_999)
    registered = await app.register(expires_at=far)
    assert registered.registration.expires_at.seconds == 253_402_300_799
    published = await app.publish(
        message="hi",
        publish_at=timestamp_pb2.Timestamp(seconds=LATER, nanos=999_999_999),
        ttl=duration_pb2.Duration(seconds=60, nanos=999_999_999),
    )
    assert published.message_id


# ------------------------------------------------------------------ enums ----


async def test_every_enum_field_refuses_numbers_outside_the_contract(app: AppHandle) -> None:
    """proto3 enums are open: any int32 arrives. Each field names itself."""
    stubs, server = app.stubs, app.server()
    calls = [
        (
            stubs.publish.Publish(
                publish_pb2.PublishRequest(message="hi", priority=99), metadata=server
            ),
            "INVALID_PRIORITY",
            "priority",
        ),
        (
            stubs.publish.Publish(
                publish_pb2.PublishRequest(message="hi", platforms=[APNS, 7]), metadata=server
            ),
            "INVALID_PLATFORM",
            "platforms[1]",
        ),
        (app.register(platform=99), "INVALID_PLATFORM", "platform"),
        (
            stubs.registrations.ListRegistrations(
                reg.ListRegistrationsRequest(platform=-3), metadata=server
            ),
            "INVALID_PLATFORM",
            "platform",
        ),
        (
            # Refused even where it is not used: by id, the platform says nothing.
            stubs.registrations.UnregisterDevice(
                reg.UnregisterDeviceRequest(registration_id="some-id", platform=99),
                metadata=server,
            ),
            "INVALID_PLATFORM",
            "platform",
        ),
        (
            # By token the platform is needed: the token's syntax depends on it.
            stubs.registrations.UnregisterDevice(
                reg.UnregisterDeviceRequest(device_token="a" * 64), metadata=server
            ),
            "INVALID_PLATFORM",
            "platform",
        ),
        (
            stubs.admin.CreateApiKey(
                admin_pb2.CreateApiKeyRequest(app_id=app.app_id, kind=5), metadata=server
            ),
            "INVALID_KEY_KIND",
            "kind",
        ),
    ]
    for call, reason, field in calls:
        await expect_error(call, INVALID, reason, field=field)


@pytest.mark.parametrize("count", [17, 100_000])
async def test_a_platforms_list_over_sixteen_entries_is_refused(
    app: AppHandle, store: StoreProbe, count: int
) -> None:
    request = publish_pb2.PublishRequest(
        message="hi", platforms=[APNS] * count, request_id="refused"
    )
    await expect_error(
        app.stubs.publish.Publish(request, metadata=app.server()),
        INVALID,
        "TOO_MANY_VALUES",
        field="platforms",
        metadata={"limit": "16"},
    )
    assert await store.published(app, "refused") is None


async def test_repeated_platforms_within_the_limit_count_once(
    server, app: AppHandle, store: StoreProbe
) -> None:
    await app.register(platform=APNS)
    await app.register(platform=FCM, device_token="fcm-" + new_token())
    published = await app.publish(message="hi", platforms=[FCM, FCM, FCM, APNS, FCM])
    status = await settle(server, app, published.message_id)
    assert status.targeted_count == status.sent_count == 2


# ------------------------------------------------------------- header text ----


@pytest.mark.parametrize("collapse_key", ["a\r\napns-priority: 5", "tab\there", "nul\x00"])
async def test_a_collapse_key_with_control_characters_is_refused(
    app: AppHandle, collapse_key: str
) -> None:
    """It travels as the apns-collapse-id header line."""
    await expect_error(
        app.publish(message="hi", collapse_key=collapse_key),
        INVALID,
        "INVALID_CHARACTER",
        field="collapse_key",
    )


# ------------------------------------------------- bounded before rendering ----


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        *[
            ({"notification": publish_pb2.Notification(**{name: "x" * 4097})}, name)
            for name in ("title", "body", "subtitle", "sound", "image_url", "category", "thread_id")
        ],
        ({"notification": publish_pb2.Notification(data={"k": "v" * 4097})}, "data[k]"),
        ({"notification": publish_pb2.Notification(data={"k" * 256: "v"})}, "data.key"),
        ({"apns_json": "{" + " " * 16384 + "}"}, "apns_json"),
        ({"fcm_json": "{" + " " * 16384 + "}"}, "fcm_json"),
    ],
)
async def test_publish_texts_are_bounded_before_anything_is_rendered(
    app: AppHandle, store: StoreProbe, fields: dict, field: str
) -> None:
    """A text longer than a whole payload can never be sent: refused by its length,
    before rendering (rendering a 13 MB notification.data took 4 s to refuse it)."""
    field = field if field.endswith("json") else f"notification.{field}"
    await expect_error(
        app.publish(message="hi", request_id="refused", **fields),
        INVALID,
        "VALUE_TOO_LONG",
        field=field,
    )
    assert await store.published(app, "refused") is None


async def test_notification_data_holds_at_most_512_entries(app: AppHandle) -> None:
    data = {f"k{i}": "" for i in range(513)}
    await expect_error(
        app.publish(message="hi", notification=publish_pb2.Notification(data=data)),
        INVALID,
        "TOO_MANY_VALUES",
        field="notification.data",
        metadata={"limit": "512"},
    )


async def test_a_service_account_over_16384_characters_is_refused(app: AppHandle) -> None:
    document = '{"type": "service_account", "pad": "' + "x" * 16384 + '"}'
    await expect_error(
        app.stubs.admin.SetFcmCredentials(
            admin_pb2.SetFcmCredentialsRequest(app_id=app.app_id, service_account_json=document),
            metadata=app.server(),
        ),
        INVALID,
        "INVALID_CREDENTIALS",
        field="service_account_json",
    )


# ----------------------------------------------------------- ids, filters ----


@pytest.mark.parametrize("app_id", ["nul\x00id", "x" * 65])
async def test_app_and_key_ids_obey_the_stored_text_rule(app_id: str, stubs) -> None:
    """They are looked up in SQL: PostgreSQL text cannot hold NUL (that was INTERNAL)."""
    calls = [
        stubs.admin.DeleteApp(admin_pb2.DeleteAppRequest(app_id=app_id), metadata=ADMIN_METADATA),
        stubs.admin.ListApiKeys(
            admin_pb2.ListApiKeysRequest(app_id=app_id), metadata=ADMIN_METADATA
        ),
        stubs.admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(app_id=app_id, kind=admin_pb2.API_KEY_KIND_SERVER),
            metadata=ADMIN_METADATA,
        ),
        stubs.admin.RevokeApiKey(
            admin_pb2.RevokeApiKeyRequest(app_id=app_id, key_id="k"), metadata=ADMIN_METADATA
        ),
        stubs.admin.IssueUserToken(
            admin_pb2.IssueUserTokenRequest(app_id=app_id, user_id="u"), metadata=ADMIN_METADATA
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is INVALID, caught.value.details()


async def test_a_key_id_with_nul_is_refused(app: AppHandle) -> None:
    await expect_error(
        app.stubs.admin.RevokeApiKey(
            admin_pb2.RevokeApiKeyRequest(app_id=app.app_id, key_id="k\x00"),
            metadata=app.server(),
        ),
        INVALID,
        "INVALID_CHARACTER",
        field="key_id",
    )


@pytest.mark.parametrize(
    ("filters", "reason", "field"),
    [
        ({"tag": "a b"}, "INVALID_TAG", "tag"),
        ({"tag": "semi;colon"}, "INVALID_TAG", "tag"),
        ({"channel": "line\nbreak"}, "INVALID_NAME", "channel"),
        ({"user_id": "nul\x00"}, "INVALID_CHARACTER", "user_id"),
    ],
)
async def test_list_filters_obey_the_rules_of_what_they_match(
    app: AppHandle, filters: dict[str, str], reason: str, field: str
) -> None:
    """A filter that no stored value could match is a mistake, said as such."""
    await expect_error(
        app.stubs.registrations.ListRegistrations(
            reg.ListRegistrationsRequest(**filters), metadata=app.server()
        ),
        INVALID,
        reason,
        field=field,
    )


async def test_update_tags_by_tag_uses_the_tag_rule(app: AppHandle) -> None:
    await expect_error(
        app.stubs.registrations.UpdateTags(
            reg.UpdateTagsRequest(tag="a b", add_tags=["x"]), metadata=app.server()
        ),
        INVALID,
        "INVALID_TAG",
        field="tag",
    )
