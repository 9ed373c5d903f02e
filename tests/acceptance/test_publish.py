"""PublishService through the real server: every option, every error row, and what
the simulator delivered (read back from its inbox).

Issue 3, sections 1 and 4; protos/pushhub/v1/publish.proto, and docs/architecture.md,
"Fan-out".
"""

from __future__ import annotations

import json
from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2

from pushhub.v1 import publish_pb2, registration_pb2

from .harness import (
    APNS,
    CANCELLED,
    FCM,
    PUBLISHED,
    SCHEDULED,
    AppHandle,
    StoreProbe,
    check_error,
    expect_error,
    new_token,
    settle,
    timestamp,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(seconds=value))
    return duration


async def register(app: AppHandle, **fields) -> str:
    response = await app.register(**fields)
    return response.registration.registration_id


async def publish_and_settle(server, app: AppHandle, **fields):
    response = await app.publish(**fields)
    assert response.status == publish_pb2.PUBLISH_STATUS_SCHEDULED
    status = await settle(server, app, response.message_id)
    assert status.state == PUBLISHED, status
    return response.message_id, status


# ------------------------------------------------------------ the response ----


async def test_publish_answers_message_id_and_scheduled(server, app: AppHandle) -> None:
    await register(app)
    response = await app.publish(message="hello")
    assert response.message_id
    assert response.status == publish_pb2.PUBLISH_STATUS_SCHEDULED
    other = await app.publish(message="hello again")
    assert other.message_id != response.message_id
    status = await settle(server, app, response.message_id)
    assert status.message_id == response.message_id


async def test_repeated_request_id_returns_first_answer_and_stores_nothing(
    server, app: AppHandle, store: StoreProbe
) -> None:
    registration_id = await register(app)
    first = await app.publish(message="once", request_id="req-1")
    again = await app.publish(message="once", request_id="req-1")
    assert again == first
    # Even with a different body: the first answer, and no second message.
    changed = await app.publish(message="something else", broadcast=True, request_id="req-1")
    assert changed == first
    assert await store.published(app, "req-1") == first.message_id

    await settle(server, app, first.message_id)
    # After it has been delivered, the retry still answers the same and sends nothing.
    late = await app.publish(message="once", request_id="req-1")
    assert late == first
    await server.scheduler.run_due()
    assert await store.recipients(app, first.message_id) == [registration_id]
    assert len(await store.deliveries(app)) == 1

    # A request_id belongs to its app; another id makes a new message.
    fresh = await app.publish(message="once", request_id="req-2")
    assert fresh.message_id != first.message_id
    await settle(server, app, fresh.message_id)
    assert await store.recipients(app, fresh.message_id) == [registration_id]


async def test_a_retry_after_publish_at_has_passed_gets_the_first_answer(
    server, app: AppHandle, clock, store: StoreProbe
) -> None:
    fields = {
        "message": "later",
        "publish_at": timestamp(clock.now() + timedelta(seconds=2)),
        "request_id": "req-late",
    }
    first = await app.publish(**fields)
    clock.advance(timedelta(seconds=3))
    # The same request sent fresh would now be refused (publish_at in the past).
    again = await app.publish(**fields)
    assert again == first
    # Once it has run, its first answer is still SCHEDULED.
    await settle(server, app, first.message_id)
    assert await app.publish(**fields) == first


async def test_request_ids_are_per_app(app: AppHandle, other_app: AppHandle) -> None:
    mine = await app.publish(message="x", request_id="shared")
    theirs = await other_app.publish(message="x", request_id="shared")
    assert mine.message_id != theirs.message_id


# ------------------------------------------------------------------ errors ----


async def test_publish_at_in_the_past_is_5030(app: AppHandle, clock) -> None:
    await expect_error(
        app.publish(message="late", publish_at=timestamp(clock.now() - timedelta(seconds=1))),
        INVALID,
        "INVALID_PUBLISH_AT",
        legacy_code="5030",
        field="publish_at",
    )


@pytest.mark.parametrize(
    ("publish_in", "expires_in"),
    [
        (None, -1),  # in the past
        (None, 0),  # now is not in the future
        (60, 30),  # before publish_at
    ],
    ids=["past", "now", "before-publish-at"],
)
async def test_bad_repeat_expires_at_is_5003(
    app: AppHandle, clock, publish_in: int | None, expires_in: int
) -> None:
    fields = {
        "message": "m",
        "repeat_every": seconds(10),
        "repeat_expires_at": timestamp(clock.now() + timedelta(seconds=expires_in)),
    }
    if publish_in is not None:
        fields["publish_at"] = timestamp(clock.now() + timedelta(seconds=publish_in))
    await expect_error(
        app.publish(**fields),
        INVALID,
        "INVALID_REPEAT_EXPIRES_AT",
        legacy_code="5003",
        field="repeat_expires_at",
    )


@pytest.mark.parametrize("every", [0.5, 0.999, 0], ids=["half", "just-under", "zero"])
async def test_repeat_every_under_a_second_is_refused(app: AppHandle, every: float) -> None:
    await expect_error(
        app.publish(message="m", repeat_every=seconds(every)),
        INVALID,
        "INVALID_REPEAT_EVERY",
        field="repeat_every",
    )


async def test_repeat_every_over_ten_years_is_refused(app: AppHandle) -> None:
    # Larger steps used to be stored, then failed the message after its first run
    # when the next slot overflowed the calendar.
    await expect_error(
        app.publish(message="m", repeat_every=seconds(3651 * 86400)),
        INVALID,
        "INVALID_REPEAT_EVERY",
        field="repeat_every",
    )


async def test_repeat_every_of_one_second_is_accepted(app: AppHandle, clock) -> None:
    response = await app.publish(
        message="m",
        publish_at=timestamp(clock.now() + timedelta(hours=1)),
        repeat_every=seconds(1),
    )
    assert response.status == publish_pb2.PUBLISH_STATUS_SCHEDULED
    await app.cancel(response.message_id)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"message": "m" * 4097}, "message"),
        ({"publisher_id": "p" * 256}, "publisher_id"),
        ({"channel": "c" * 256}, "channel"),
        ({"headers": {"h": "v" * 1025}}, "headers[h]"),
        ({"user_ids": ["u" * 256]}, "user_ids[0]"),
        ({"registration_ids": ["r" * 65]}, "registration_ids[0]"),
        ({"request_id": "q" * 65}, "request_id"),
        ({"tag_expression": "t" * 8193}, "tag_expression"),
        ({"template_name": "n" * 256}, "template_name"),
        ({"collapse_key": "k" * 65}, "collapse_key"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_over_long_values_are_8000(app: AppHandle, fields: dict, field: str) -> None:
    fields = {"message": "m", **fields}
    await expect_error(
        app.publish(**fields), INVALID, "VALUE_TOO_LONG", legacy_code="8000", field=field
    )


async def test_values_at_their_limits_are_accepted(server, app: AppHandle) -> None:
    await register(app, channels=["c" * 255])
    response = await app.publish(
        message="m" * 1000,
        publisher_id="p" * 255,
        channel="c" * 255,
        request_id="q" * 64,
        collapse_key="k" * 64,
    )
    status = await settle(server, app, response.message_id)
    assert (status.state, status.sent_count) == (PUBLISHED, 1)


def fcm_plain_size(message: str) -> int:
    """The FCM body the payload size limit counts for a plain message, without the device token."""
    body = {"message": {"token": "", "notification": {"body": message}}}
    return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())


async def test_payload_over_4096_bytes_after_rendering_is_refused(
    server, app: AppHandle, store: StoreProbe
) -> None:
    registration_id = await register(app, platform=FCM, device_token="fcm-" + new_token())
    overhead = fcm_plain_size("")
    largest = "x" * (4096 - overhead)
    assert fcm_plain_size(largest) == 4096
    info = await expect_error(
        app.publish(message=largest + "x"),
        INVALID,
        "PAYLOAD_TOO_LARGE",
        field="message",
    )
    assert info.metadata["limit"] == "4096"
    assert info.metadata["platform"] in ("FCM", "fcm", "PLATFORM_FCM")
    assert info.metadata["size"] == "4097"

    # Exactly at the limit it is accepted and delivered.
    message_id, status = await publish_and_settle(server, app, message=largest)
    assert status.sent_count == 1
    [entry] = await store.deliveries(app, message_id)
    assert entry.registration_id == registration_id
    assert json.loads(entry.payload)["message"]["notification"]["body"] == largest


async def test_payload_size_is_checked_only_for_the_platforms_the_publish_reaches(
    app: AppHandle,
) -> None:
    # Rendered for FCM this is over 4,096 bytes; for APNs about 2.3 KB.
    note = publish_pb2.Notification(title="T", subtitle="S", body="x" * 2200)
    response = await app.publish(notification=note, platforms=[APNS])
    assert response.status == publish_pb2.PUBLISH_STATUS_SCHEDULED
    info = await expect_error(
        app.publish(notification=note, platforms=[FCM]), INVALID, "PAYLOAD_TOO_LARGE"
    )
    assert info.metadata["platform"] in ("FCM", "fcm", "PLATFORM_FCM")
    await expect_error(app.publish(notification=note), INVALID, "PAYLOAD_TOO_LARGE")


async def test_payload_limit_counts_bytes_not_characters(app: AppHandle) -> None:
    # 2,100 characters (under the 4,096-character message limit) but 4,200 bytes.
    await expect_error(app.publish(message="é" * 2100), INVALID, "PAYLOAD_TOO_LARGE")


async def test_payload_limit_counts_every_field(app: AppHandle) -> None:
    # Each value is within its own limit; together they exceed 4,096 bytes.
    await expect_error(
        app.publish(
            message="m" * 2000,
            headers={"a": "h" * 1000, "b": "h" * 1000},
            notification=publish_pb2.Notification(title="t" * 200),
        ),
        INVALID,
        "PAYLOAD_TOO_LARGE",
    )


async def test_payload_over_the_limit_after_a_kinvey_fill_fails_that_recipient(
    server, app: AppHandle, store: StoreProbe
) -> None:
    short = await register(app, metadata={"bio": "short"})
    long = await register(app, metadata={"bio": "b" * 2000})
    message_id, status = await publish_and_settle(server, app, message="x" * 3000 + "{{bio}}")
    assert (status.targeted_count, status.sent_count, status.failed_count) == (2, 1, 1)
    assert dict(status.failure_reasons) == {"PAYLOAD_TOO_LARGE": 1}
    assert await store.recipients(app, message_id) == [short]
    assert long != short


async def test_a_device_key_may_not_publish_5007(app: AppHandle, clock) -> None:
    await expect_error(
        app.publish(auth=app.device(), message="hi"),
        grpc.StatusCode.PERMISSION_DENIED,
        "PUBLISH_NOT_ALLOWED",
        legacy_code="5007",
    )
    scheduled = await app.publish(
        message="later", publish_at=timestamp(clock.now() + timedelta(hours=1))
    )
    await expect_error(
        app.cancel(scheduled.message_id, auth=app.device()),
        grpc.StatusCode.PERMISSION_DENIED,
        "PUBLISH_NOT_ALLOWED",
        legacy_code="5007",
    )
    await app.cancel(scheduled.message_id)


@pytest.mark.parametrize(
    ("expression", "position"),
    [
        ("sports && && news", "11"),
        ("(sports || news", "16"),
        ("sports & news", "8"),
        ("news || !", "10"),
    ],
)
async def test_bad_tag_expression_names_its_position(
    app: AppHandle, expression: str, position: str
) -> None:
    info = await expect_error(
        app.publish(message="m", tag_expression=expression),
        INVALID,
        "INVALID_TAG_EXPRESSION",
        field="tag_expression",
        metadata={"position": position},
    )
    assert info.metadata["position"] == position


async def test_more_than_64_tags_in_an_expression_is_refused(app: AppHandle) -> None:
    allowed = " || ".join(f"t{i}" for i in range(64))
    response = await app.publish(message="m", tag_expression=allowed)
    assert response.message_id
    too_many = " && ".join(f"t{i}" for i in range(65))
    await expect_error(
        app.publish(message="m", tag_expression=too_many),
        INVALID,
        "TOO_MANY_TAGS",
        field="tag_expression",
        metadata={"limit": "64"},
    )


@pytest.mark.parametrize(
    ("document", "kind"),
    [("null", "null"), ("[1]", "an array"), ('"x"', "a string"), ("1", "a number")],
)
async def test_a_json_override_that_is_no_object_says_what_it_is(
    app: AppHandle, document: str, kind: str
) -> None:
    """In JSON's words: a client sending `null` knows nothing of Python's NoneType."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await app.publish(message="m", fcm_json=document)
    check_error(caught.value, INVALID, "INVALID_JSON", field="fcm_json")
    assert caught.value.details() == f"fcm_json must be a JSON object, not {kind}"


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"channel": "news", "broadcast": True}, "channel", "CONFLICTING_AUDIENCE"),
        ({"apns_json": "{not json"}, "apns_json", "INVALID_JSON"),
        ({"fcm_json": "[1, 2]"}, "fcm_json", "INVALID_JSON"),
        # Deep enough to overflow the parser's recursion, then deep enough to
        # overflow only the encoder: both answered INTERNAL before.
        ({"apns_json": '{"x":' + "[" * 2000 + "]" * 2000 + "}"}, "apns_json", "INVALID_JSON"),
        ({"fcm_json": '{"x":' + "[" * 900 + "]" * 900 + "}"}, "fcm_json", "INVALID_JSON"),
        ({"platforms": [APNS, 0]}, "platforms[1]", "INVALID_PLATFORM"),
        (
            {"notification": publish_pb2.Notification(badge=-1)},
            "notification.badge",
            "INVALID_BADGE",
        ),
        ({"ttl": seconds(29 * 24 * 3600)}, "ttl", "INVALID_TTL"),
        ({"headers": {"aps": "x"}}, "headers", "RESERVED_DATA_KEY"),
        ({"user_ids": [""]}, "user_ids[0]", "FIELD_REQUIRED"),
    ],
    ids=[
        "channel+broadcast",
        "apns_json",
        "fcm_json",
        "apns_json-deep",
        "fcm_json-deep",
        "platforms",
        "badge",
        "ttl",
        "reserved",
        "empty-user",
    ],
)
async def test_other_invalid_fields_name_the_field(
    app: AppHandle, fields: dict, field: str, reason: str
) -> None:
    fields = {"message": "m", **fields}
    await expect_error(app.publish(**fields), INVALID, reason, field=field)


# ------------------------------------------------------------------ cancel ----


async def test_cancel_a_scheduled_message(server, app: AppHandle, clock, store) -> None:
    await register(app)
    response = await app.publish(
        message="never", publish_at=timestamp(clock.now() + timedelta(hours=1))
    )
    cancelled = await app.cancel(response.message_id)
    assert cancelled.message_id == response.message_id
    assert cancelled.state == CANCELLED
    status = await app.status(response.message_id)
    assert status.state == CANCELLED
    assert not status.HasField("next_run_at")
    await server.scheduler.run_due()
    assert await store.deliveries(app, response.message_id) == []
    # Cancelling twice: it has finished.
    await expect_error(
        app.cancel(response.message_id), grpc.StatusCode.FAILED_PRECONDITION, "MESSAGE_FINISHED"
    )


async def test_cancel_a_repeating_message(server, app: AppHandle) -> None:
    await register(app)
    response = await app.publish(message="again", repeat_every=seconds(3600))
    status = await settle(server, app, response.message_id, runs=1)
    assert (status.state, status.run_count) == (SCHEDULED, 1)
    cancelled = await app.cancel(response.message_id)
    assert cancelled.state == CANCELLED
    assert (await app.status(response.message_id)).state == CANCELLED


async def test_cancel_a_finished_message_is_failed_precondition(server, app: AppHandle) -> None:
    await register(app)
    message_id, _ = await publish_and_settle(server, app, message="done")
    await expect_error(
        app.cancel(message_id), grpc.StatusCode.FAILED_PRECONDITION, "MESSAGE_FINISHED"
    )
    assert (await app.status(message_id)).state == PUBLISHED


async def test_cancel_unknown_or_foreign_message_is_not_found(
    app: AppHandle, other_app: AppHandle, clock
) -> None:
    await expect_error(app.cancel("0" * 26), grpc.StatusCode.NOT_FOUND, "MESSAGE_NOT_FOUND")
    await expect_error(app.cancel(""), grpc.StatusCode.NOT_FOUND, "MESSAGE_NOT_FOUND")
    theirs = await other_app.publish(
        message="x", publish_at=timestamp(clock.now() + timedelta(hours=1))
    )
    await expect_error(
        app.cancel(theirs.message_id), grpc.StatusCode.NOT_FOUND, "MESSAGE_NOT_FOUND"
    )
    await expect_error(
        app.status(theirs.message_id), grpc.StatusCode.NOT_FOUND, "MESSAGE_NOT_FOUND"
    )
    assert (await other_app.status(theirs.message_id)).state == SCHEDULED
    await other_app.cancel(theirs.message_id)


# ------------------------------------------------------- delivered content ----


FULL_NOTIFICATION = publish_pb2.Notification(
    title="Goal!",
    subtitle="Second half",
    body="United 2 - 1 City",
    badge=3,
    sound="whistle.caf",
    image_url="https://example.com/goal.png",
    category="SCORE",
    thread_id="match-42",
    content_available=True,
    mutable_content=True,
    data={"match_id": "42", "minute": "67"},
)


async def test_apns_payload_carries_every_aps_field_data_headers_and_publisher(
    server, app: AppHandle, store: StoreProbe
) -> None:
    registration_id = await register(app, platform=APNS)
    message_id, _ = await publish_and_settle(
        server,
        app,
        message="plain text",
        notification=FULL_NOTIFICATION,
        headers={"kind": "score", "league": "premier"},
        publisher_id="scores-service",
    )
    payloads = await store.payloads(app, message_id)
    assert payloads == {
        registration_id: {
            "aps": {
                "alert": {
                    "title": "Goal!",
                    "subtitle": "Second half",
                    "body": "United 2 - 1 City",
                },
                "badge": 3,
                "sound": "whistle.caf",
                "category": "SCORE",
                "thread-id": "match-42",
                "content-available": 1,
                "mutable-content": 1,
            },
            "image_url": "https://example.com/goal.png",
            "match_id": "42",
            "minute": "67",
            "kind": "score",
            "league": "premier",
            "publisher_id": "scores-service",
            "message": "plain text",
        }
    }


async def test_plain_message_is_the_alert_body(server, app: AppHandle, store) -> None:
    apns = await register(app, platform=APNS)
    fcm = await register(app, platform=FCM, device_token="fcm-" + new_token())
    message_id, _ = await publish_and_settle(server, app, message="Hello")
    payloads = await store.payloads(app, message_id)
    assert payloads[apns] == {"aps": {"alert": {"body": "Hello"}}}
    assert payloads[fcm]["message"]["notification"] == {"body": "Hello"}


async def test_badge_zero_is_delivered(server, app: AppHandle, store) -> None:
    registration_id = await register(app, platform=APNS)
    message_id, _ = await publish_and_settle(
        server, app, notification=publish_pb2.Notification(badge=0)
    )
    payloads = await store.payloads(app, message_id)
    assert payloads[registration_id]["aps"]["badge"] == 0


async def test_fcm_v1_message_shape(server, app: AppHandle, store: StoreProbe) -> None:
    token = "fcm-" + new_token()
    registration_id = await register(app, platform=FCM, device_token=token)
    message_id, _ = await publish_and_settle(
        server,
        app,
        notification=FULL_NOTIFICATION,
        headers={"kind": "score"},
        publisher_id="scores-service",
        ttl=seconds(3600),
        priority=publish_pb2.PRIORITY_HIGH,
        collapse_key="match-42-score",
    )
    [entry] = await store.deliveries(app, message_id)
    assert entry.registration_id == registration_id
    body = json.loads(entry.payload)
    assert set(body) == {"message"}
    message = body["message"]
    assert message["token"] == token
    assert message["notification"] == {
        "title": "Goal!",
        "body": "United 2 - 1 City",
        "image": "https://example.com/goal.png",
    }
    # FCM data is string → string: notification.data, headers and publisher_id.
    assert message["data"] == {
        "match_id": "42",
        "minute": "67",
        "kind": "score",
        "publisher_id": "scores-service",
    }
    assert message["android"] == {
        "priority": "HIGH",
        "ttl": "3600s",
        "collapse_key": "match-42-score",
        "notification": {
            "sound": "whistle.caf",
            "notification_count": 3,
            "click_action": "SCORE",
        },
    }
    # iOS devices reached through FCM: the iOS-only fields and the delivery headers.
    apns = message["apns"]
    aps = apns["payload"]["aps"]
    assert aps["alert"]["subtitle"] == "Second half"
    assert aps["thread-id"] == "match-42"
    assert aps["content-available"] == 1
    assert aps["mutable-content"] == 1
    assert apns["headers"]["apns-priority"] == "10"
    assert apns["headers"]["apns-collapse-id"] == "match-42-score"
    assert int(apns["headers"]["apns-expiration"]) == int(entry.delivered_at.timestamp()) + 3600


async def test_ttl_priority_and_collapse_key_are_mapped(
    server, app: AppHandle, store: StoreProbe
) -> None:
    registration_id = await register(app, platform=FCM, device_token="fcm-" + new_token())
    message_id, _ = await publish_and_settle(
        server,
        app,
        message="quiet",
        ttl=seconds(90.5),
        priority=publish_pb2.PRIORITY_NORMAL,
        collapse_key="digest",
    )
    message = (await store.payloads(app, message_id))[registration_id]["message"]
    assert message["android"] == {"priority": "NORMAL", "ttl": "90.5s", "collapse_key": "digest"}
    headers = message["apns"]["headers"]
    assert headers["apns-priority"] == "5"
    assert headers["apns-collapse-id"] == "digest"
    assert "apns-expiration" in headers


async def test_apns_json_and_fcm_json_overrides_are_merged(
    server, app: AppHandle, store: StoreProbe
) -> None:
    apns = await register(app, platform=APNS)
    fcm = await register(app, platform=FCM, device_token="fcm-" + new_token())
    message_id, _ = await publish_and_settle(
        server,
        app,
        notification=publish_pb2.Notification(title="T", body="B", badge=5, sound="a.caf"),
        apns_json=json.dumps(
            {
                "aps": {"sound": "override.caf", "badge": None, "interruption-level": "passive"},
                "extra": {"nested": 1},
            }
        ),
        fcm_json=json.dumps(
            {
                "message": {
                    "android": {"direct_boot_ok": True},
                    "data": {"k": "v"},
                    "notification": {"title": "FCM title"},
                }
            }
        ),
    )
    payloads = await store.payloads(app, message_id)
    assert payloads[apns] == {
        "aps": {
            "alert": {"title": "T", "body": "B"},
            "sound": "override.caf",
            "interruption-level": "passive",
        },
        "extra": {"nested": 1},
    }
    message = payloads[fcm]["message"]
    assert message["notification"] == {"title": "FCM title", "body": "B"}
    assert message["data"] == {"k": "v"}
    assert message["android"]["direct_boot_ok"] is True
    assert message["android"]["notification"]["sound"] == "a.caf"


async def test_fcm_json_may_not_retarget_the_message(app: AppHandle) -> None:
    await expect_error(
        app.publish(message="m", fcm_json='{"topic": "everyone"}'),
        INVALID,
        "INVALID_FCM_JSON",
        field="fcm_json",
    )


# --------------------------------------------------------------- templates ----


async def test_azure_templates_per_registration(server, app: AppHandle, store) -> None:
    Template = registration_pb2.Template
    apns = await register(
        app,
        platform=APNS,
        templates={
            "score": Template(body='{"aps": {"alert": "$(team) scored", "badge": "#(goals)"}}'),
        },
    )
    apns_other = await register(
        app,
        platform=APNS,
        templates={
            "score": Template(
                body='{"aps": {"alert": {"title": "$(team)", "body": "$(missing)!"}}, '
                '"n": "#(goals)", "quoted": "#(team)", "text": "#(goals) goals"}'
            ),
        },
    )
    fcm = await register(
        app,
        platform=FCM,
        device_token="fcm-" + new_token(),
        templates={
            "score": Template(body='{"message": {"data": {"team": "$(team)", "g": "n=#(goals)"}}}')
        },
    )
    plain = await register(app, platform=APNS)  # no template of that name
    message_id, status = await publish_and_settle(
        server,
        app,
        message="fallback text",
        template_name="score",
        template_properties={"team": 'The "Reds"', "goals": "3"},
    )
    assert status.sent_count == 4
    payloads = await store.payloads(app, message_id)
    assert payloads[apns] == {"aps": {"alert": 'The "Reds" scored', "badge": 3}}
    assert payloads[apns_other] == {
        "aps": {"alert": {"title": 'The "Reds"', "body": "!"}},
        "n": 3,
        "quoted": 'The "Reds"',  # not a number: stays a string, as in Azure
        "text": "3 goals",
    }
    fcm_message = payloads[fcm]["message"]
    assert fcm_message["token"].startswith("fcm-")
    # Inside a longer string "#(prop)" is plain text (FCM data must stay strings).
    assert fcm_message["data"] == {"team": 'The "Reds"', "g": "n=3"}
    assert payloads[plain] == {"aps": {"alert": {"body": "fallback text"}}}


async def test_a_device_whose_payload_cannot_be_rendered_fails_alone(
    server, app: AppHandle, store: StoreProbe
) -> None:
    """Registrations stored before today's checks: a template holding the JSON escape of
    a lone surrogate, and metadata holding one. UTF-8 cannot carry either, so those two
    devices fail, each under a reason; the message and the other devices do not."""
    template = {"alert": registration_pb2.Template(body='{"aps": {"alert": "$(text)"}}')}
    bad_template = await register(app, platform=APNS, templates=template)
    bad_metadata = await register(app, platform=FCM, device_token="fcm-" + new_token())
    good_template = await register(app, platform=APNS, templates=template)
    good_metadata = await register(app, platform=APNS, metadata={"name": "Ann"})
    await store.store_unchecked(
        bad_template, templates_json=json.dumps({"alert": ['{"aps": {"alert": "\\udc00"}}', []]})
    )
    await store.store_unchecked(bad_metadata, metadata_json='{"name": "\\udc00"}')

    message_id, status = await publish_and_settle(
        server, app, message="hi {{name}}", template_name="alert", template_properties={"text": "x"}
    )
    assert (status.targeted_count, status.sent_count, status.failed_count) == (4, 2, 2)
    assert dict(status.failure_reasons) == {"TEMPLATE_RENDER_FAILED": 1, "PayloadUnrenderable": 1}
    assert status.error_message == ""
    payloads = await store.payloads(app, message_id)
    assert payloads == {
        good_template: {"aps": {"alert": "x"}},
        good_metadata: {"aps": {"alert": {"body": "hi Ann"}}},
    }


async def test_kinvey_placeholders_are_filled_from_metadata(
    server, app: AppHandle, store: StoreProbe
) -> None:
    ada = await register(app, platform=APNS, metadata={"first_name": "Ada", "city": "London"})
    grace = await register(
        app, platform=FCM, device_token="fcm-" + new_token(), metadata={"first_name": 'G "race"'}
    )
    nobody = await register(app, platform=APNS)
    message_id, _ = await publish_and_settle(
        server, app, message="Hello {{first_name}} from {{ city }}!"
    )
    payloads = await store.payloads(app, message_id)
    assert payloads[ada]["aps"]["alert"]["body"] == "Hello Ada from London!"
    assert payloads[grace]["message"]["notification"]["body"] == 'Hello G "race" from !'
    assert payloads[nobody]["aps"]["alert"]["body"] == "Hello  from !"
