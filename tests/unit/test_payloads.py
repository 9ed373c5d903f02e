"""Per-platform payload rendering: APNs body and headers, FCM v1, templates, size."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.models import Platform, Template
from pushhub_server.core.notifications import (
    NotificationContent,
    parse_json_object,
    validate_content,
)
from pushhub_server.delivery.payloads import (
    PAYLOAD_LIMIT,
    PayloadRenderer,
    check_publish_size,
    fcm_duration,
    merge_patch,
    render_apns,
    render_fcm,
)

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
FCM_TOKEN = "fcm-token:APA91b" + "x" * 140


def apns(content: NotificationContent, metadata: dict | None = None) -> dict:
    return json.loads(render_apns(content, metadata, now=NOW).body)


def apns_headers(content: NotificationContent) -> dict:
    return dict(render_apns(content, now=NOW).headers)


def fcm(content: NotificationContent, token: str = FCM_TOKEN, metadata: dict | None = None):
    return json.loads(render_fcm(content, token, metadata, now=NOW))


FULL = NotificationContent(
    message="plain",
    title="Title",
    body="Body",
    subtitle="Sub",
    badge=7,
    sound="chime.caf",
    image_url="https://img.example/x.png",
    category="INVITE",
    thread_id="thread-1",
    content_available=True,
    mutable_content=True,
    data={"order": "42"},
    headers={"region": "eu"},
    publisher_id="backend-7",
    ttl=timedelta(hours=1),
    priority="high",
    collapse_key="scores",
)


# ------------------------------------------------------------------ APNs body


def test_apns_maps_every_field() -> None:
    assert apns(FULL) == {
        "aps": {
            "alert": {"title": "Title", "subtitle": "Sub", "body": "Body"},
            "badge": 7,
            "sound": "chime.caf",
            "category": "INVITE",
            "thread-id": "thread-1",
            "content-available": 1,
            "mutable-content": 1,
        },
        "image_url": "https://img.example/x.png",
        "order": "42",
        "region": "eu",
        "publisher_id": "backend-7",
        "message": "plain",
    }


def test_apns_plain_message_becomes_the_alert_body_and_empty_fields_are_omitted() -> None:
    body = render_apns(NotificationContent(message="Hello"), now=NOW).body
    assert body == b'{"aps":{"alert":{"body":"Hello"}}}'


def test_apns_body_wins_over_message_which_then_travels_as_a_custom_key() -> None:
    assert apns(NotificationContent(message="m", body="b")) == {
        "aps": {"alert": {"body": "b"}},
        "message": "m",
    }


def test_apns_badge_zero_is_sent_to_clear_the_badge() -> None:
    assert apns(NotificationContent(badge=0)) == {"aps": {"badge": 0}}


def test_apns_custom_keys_precedence_data_then_headers_then_publisher_id() -> None:
    content = NotificationContent(
        message="m",
        data={"k": "data", "publisher_id": "data"},
        headers={"k": "header"},
        publisher_id="pub",
    )
    assert apns(content) == {
        "aps": {"alert": {"body": "m"}},
        "k": "header",
        "publisher_id": "pub",
    }


def test_apns_body_is_compact_and_keeps_unicode() -> None:
    body = render_apns(NotificationContent(title="Grüße ✓"), now=NOW).body
    assert body == '{"aps":{"alert":{"title":"Grüße ✓"}}}'.encode()


def test_apns_body_is_precomputed_once_per_message() -> None:
    renderer = PayloadRenderer(NotificationContent(message="same for all"), now=NOW)
    first = renderer.render(Platform.APNS, "token-a")
    second = renderer.render(Platform.APNS, "token-b")
    assert first.body is second.body
    # Shared too: the provider formats a broadcast's header lines once (providers/apns.py).
    assert first.headers is second.headers


# ------------------------------------------------------------------ APNs headers


def test_apns_headers_for_an_alert() -> None:
    headers = apns_headers(
        NotificationContent(message="hi", ttl=timedelta(hours=1), priority="high")
    )
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-expiration"] == str(int(NOW.timestamp()) + 3600)
    assert "apns-collapse-id" not in headers
    # Optional; Apple assigns one (the module docstring says why none is sent).
    assert "apns-id" not in headers


@pytest.mark.parametrize(("priority", "expected"), [("high", "10"), ("normal", "5"), (None, "10")])
def test_apns_priority(priority: str | None, expected: str) -> None:
    assert apns_headers(NotificationContent(message="x", priority=priority))["apns-priority"] == (
        expected
    )


@pytest.mark.parametrize("priority", ["high", "normal", None])
def test_apns_background_push_uses_priority_5(priority: str | None) -> None:
    content = NotificationContent(content_available=True, data={"sync": "1"}, priority=priority)
    headers = apns_headers(content)
    assert headers["apns-push-type"] == "background"
    assert headers["apns-priority"] == "5"
    assert apns(content) == {"aps": {"content-available": 1}, "sync": "1"}


@pytest.mark.parametrize(
    "content",
    [
        NotificationContent(content_available=True, message="visible"),
        NotificationContent(content_available=True, badge=1),
        NotificationContent(content_available=True, sound="default"),
    ],
)
def test_content_available_with_alert_badge_or_sound_is_an_alert(
    content: NotificationContent,
) -> None:
    headers = apns_headers(content)
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"


def test_apns_expiration_is_left_out_without_ttl_so_apns_stores_it() -> None:
    # With 0, APNs would not store it: a device asleep at send time would never get it.
    assert "apns-expiration" not in apns_headers(NotificationContent(message="x"))


def test_apns_expiration_is_zero_for_a_zero_ttl() -> None:
    content = NotificationContent(message="x", ttl=timedelta(0))
    assert apns_headers(content)["apns-expiration"] == "0"


def test_apns_expiration_counts_from_send_time() -> None:
    content = NotificationContent(message="x", ttl=timedelta(days=2, seconds=5))
    later = NOW + timedelta(minutes=10)
    headers = render_apns(content, now=later).headers
    assert headers["apns-expiration"] == str(int(later.timestamp()) + 2 * 86400 + 5)


def test_apns_collapse_id_up_to_64_bytes() -> None:
    key = "k" * 64
    assert (
        apns_headers(NotificationContent(message="x", collapse_key=key))["apns-collapse-id"] == key
    )


@pytest.mark.parametrize("key", ["k" * 65, "é" * 33])
def test_apns_collapse_id_over_64_bytes_is_rejected(key: str) -> None:
    with pytest.raises(PushHubError) as info:
        render_apns(NotificationContent(message="x", collapse_key=key), now=NOW)
    assert info.value.reason == "VALUE_TOO_LONG"
    assert info.value.metadata["field"] == "collapse_key"
    assert info.value.metadata["limit"] == "64"


# ------------------------------------------------------------------ apns_json


def test_apns_json_deep_merges_on_top() -> None:
    content = NotificationContent(
        title="T",
        body="B",
        sound="default",
        data={"keep": "1", "drop": "2"},
        apns_json={
            "aps": {"alert": {"title": "Override", "loc-key": "K"}, "sound": None},
            "drop": None,
            "extra": {"nested": [1, 2]},
        },
    )
    assert apns(content) == {
        "aps": {"alert": {"title": "Override", "body": "B", "loc-key": "K"}},
        "keep": "1",
        "extra": {"nested": [1, 2]},
    }


def test_push_type_follows_the_merged_payload() -> None:
    content = NotificationContent(
        message="x", content_available=True, apns_json={"aps": {"alert": None}}
    )
    headers = apns_headers(content)
    assert headers["apns-push-type"] == "background"
    assert headers["apns-priority"] == "5"


def test_merge_patch_leaves_inputs_untouched() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": 3}
    patch = {"a": {"b": None, "e": {"f": None, "g": 4}}, "d": [1]}
    assert merge_patch(target, patch) == {"a": {"c": 2, "e": {"g": 4}}, "d": [1]}
    assert target == {"a": {"b": 1, "c": 2}, "d": 3}
    assert patch == {"a": {"b": None, "e": {"f": None, "g": 4}}, "d": [1]}


# ------------------------------------------------------------------ FCM


def test_fcm_maps_every_field() -> None:
    expiration = str(int(NOW.timestamp()) + 3600)
    assert fcm(FULL) == {
        "message": {
            "token": FCM_TOKEN,
            "notification": {
                "title": "Title",
                "body": "Body",
                "image": "https://img.example/x.png",
            },
            "data": {
                "order": "42",
                "region": "eu",
                "publisher_id": "backend-7",
                "message": "plain",
            },
            "android": {
                "priority": "HIGH",
                "ttl": "3600s",
                "collapse_key": "scores",
                "notification": {
                    "sound": "chime.caf",
                    "notification_count": 7,
                    "click_action": "INVITE",
                },
            },
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-expiration": expiration,
                    "apns-collapse-id": "scores",
                },
                "payload": {
                    "aps": {
                        "alert": {"title": "Title", "subtitle": "Sub", "body": "Body"},
                        "badge": 7,
                        "sound": "chime.caf",
                        "category": "INVITE",
                        "thread-id": "thread-1",
                        "content-available": 1,
                        "mutable-content": 1,
                    }
                },
            },
        }
    }


def test_fcm_minimal_message_shape() -> None:
    body = render_fcm(NotificationContent(message="Hello"), "tok", now=NOW)
    assert body == b'{"message":{"token":"tok","notification":{"body":"Hello"}}}'


def test_fcm_data_only_message_has_string_values_and_no_notification() -> None:
    message = fcm(NotificationContent(data={"a": "1"}, headers={"h": "x"}, publisher_id="p"))
    assert message == {
        "message": {"token": FCM_TOKEN, "data": {"a": "1", "h": "x", "publisher_id": "p"}}
    }
    assert all(isinstance(v, str) for v in message["message"]["data"].values())


@pytest.mark.parametrize(
    ("ttl", "priority", "android"),
    [
        (timedelta(seconds=90), "normal", {"priority": "NORMAL", "ttl": "90s"}),
        (timedelta(0), "high", {"priority": "HIGH", "ttl": "0s"}),
        (timedelta(milliseconds=1500), None, {"ttl": "1.5s"}),
        (None, None, None),
    ],
)
def test_fcm_android_ttl_and_priority(ttl, priority, android) -> None:
    message = fcm(NotificationContent(message="x", ttl=ttl, priority=priority))["message"]
    assert message.get("android") == android


def test_fcm_collapse_key_maps_to_android_and_apns() -> None:
    message = fcm(NotificationContent(message="x", collapse_key="score"))["message"]
    assert message["android"] == {"collapse_key": "score"}
    assert message["apns"] == {"headers": {"apns-collapse-id": "score"}}


def test_fcm_background_for_ios_devices() -> None:
    message = fcm(NotificationContent(content_available=True, data={"s": "1"}))["message"]
    assert message["apns"] == {
        "headers": {"apns-push-type": "background", "apns-priority": "5"},
        "payload": {"aps": {"content-available": 1}},
    }


def test_fcm_duration_format() -> None:
    assert fcm_duration(timedelta(hours=1)) == "3600s"
    assert fcm_duration(timedelta(seconds=3, microseconds=250000)) == "3.25s"
    assert fcm_duration(timedelta(microseconds=1)) == "0.000001s"


def test_fcm_token_is_spliced_per_recipient_and_escaped() -> None:
    renderer = PayloadRenderer(NotificationContent(message="m"), now=NOW)
    for token in ["a", "b" * 200, 'odd"token\\']:
        body = renderer.fcm(token)
        assert json.loads(body)["message"]["token"] == token


def test_fcm_json_deep_merges_into_message() -> None:
    content = NotificationContent(
        title="T",
        priority="high",
        data={"a": "1"},
        fcm_json={
            "android": {"direct_boot_ok": True, "priority": "NORMAL"},
            "notification": {"title": None, "body": "from override"},
            "data": {"b": "2"},
            "fcm_options": {"analytics_label": "L"},
        },
    )
    assert fcm(content)["message"] == {
        "token": FCM_TOKEN,
        "notification": {"body": "from override"},
        "data": {"a": "1", "b": "2"},
        "android": {"priority": "NORMAL", "direct_boot_ok": True},
        "apns": {"headers": {"apns-priority": "10"}},
        "fcm_options": {"analytics_label": "L"},
    }


def test_fcm_json_wrapped_in_message_is_unwrapped() -> None:
    content = NotificationContent(message="x", fcm_json={"message": {"data": {"k": "v"}}})
    assert fcm(content)["message"]["data"] == {"k": "v"}


@pytest.mark.parametrize(
    "override",
    [{"token": "other"}, {"topic": "news"}, {"condition": "'a' in topics"}, {"data": {"n": 1}}],
)
def test_fcm_json_that_breaks_the_message_is_rejected(override: dict) -> None:
    content = NotificationContent(message="x", fcm_json=override)
    with pytest.raises(PushHubError) as info:
        check_publish_size(content, now=NOW)
    assert info.value.reason == "INVALID_FCM_JSON"
    assert info.value.metadata["field"] == "fcm_json"


# ------------------------------------------------------------------ {{name}}


def test_message_placeholders_are_filled_per_recipient() -> None:
    renderer = PayloadRenderer(NotificationContent(message="Hi {{name}}"), now=NOW)
    ann = renderer.render(Platform.APNS, "t1", {"name": 'Ann "A"'})
    bob = renderer.render(Platform.APNS, "t2", {"name": "Bob"})
    nobody = renderer.render(Platform.APNS, "t3", {})
    assert json.loads(ann.body) == {"aps": {"alert": {"body": 'Hi Ann "A"'}}}
    assert json.loads(bob.body) == {"aps": {"alert": {"body": "Hi Bob"}}}
    assert json.loads(nobody.body) == {"aps": {"alert": {"body": "Hi "}}}
    fcm_body = json.loads(renderer.fcm("tok", {"name": "Zoë"}))
    assert fcm_body == {"message": {"token": "tok", "notification": {"body": "Hi Zoë"}}}


def test_message_placeholders_also_fill_the_message_custom_key() -> None:
    content = NotificationContent(message="{{a}}", body="b", sound="s", subtitle="st")
    renderer = PayloadRenderer(content, now=NOW)
    assert json.loads(renderer.apns({"a": "x"}).body)["message"] == "x"
    message = json.loads(renderer.fcm("t", {"a": "y"}))["message"]
    assert message["data"] == {"message": "y"}


# ------------------------------------------------------------------ templates


TEMPLATED = NotificationContent(
    message="standard",
    template_name="promo",
    template_properties={"headline": 'Sale "now"', "count": "3"},
    ttl=timedelta(minutes=1),
    priority="normal",
    collapse_key="promo",
)


def test_apns_template_is_the_payload() -> None:
    templates = {"promo": Template('{"aps": {"alert": "$(headline)", "badge": "#(count)"}}')}
    rendered = PayloadRenderer(TEMPLATED, now=NOW).apns(templates=templates)
    assert rendered.body == b'{"aps":{"alert":"Sale \\"now\\"","badge":3}}'
    assert rendered.headers["apns-priority"] == "5"
    assert rendered.headers["apns-collapse-id"] == "promo"
    assert rendered.headers["apns-expiration"] == str(int(NOW.timestamp()) + 60)


def test_fcm_template_is_the_message_with_token_and_delivery_options() -> None:
    templates = {"promo": '{"message":{"data":{"h":"$(headline)"},"android":{"ttl":"5s"}}}'}
    body = json.loads(PayloadRenderer(TEMPLATED, now=NOW).fcm("tok", templates=templates))
    assert body == {
        "message": {
            "token": "tok",
            "android": {"priority": "NORMAL", "ttl": "5s", "collapse_key": "promo"},
            "apns": {
                "headers": {
                    "apns-priority": "5",
                    "apns-expiration": str(int(NOW.timestamp()) + 60),
                    "apns-collapse-id": "promo",
                }
            },
            "data": {"h": 'Sale "now"'},
        }
    }


def test_fcm_template_without_message_wrapper_and_with_override() -> None:
    content = NotificationContent(
        template_name="t",
        template_properties={"x": "1"},
        fcm_json={"data": {"extra": "e"}},
    )
    body = json.loads(render_template_fcm(content, {"t": '{"data":{"x":"$(x)"},"token":"no"}'}))
    assert body == {"message": {"token": "tok", "data": {"x": "1", "extra": "e"}}}


def render_template_fcm(content: NotificationContent, templates: dict) -> bytes:
    return PayloadRenderer(content, now=NOW).fcm("tok", templates=templates)


def test_template_overrides_merge_on_top() -> None:
    content = NotificationContent(
        template_name="t",
        template_properties={"m": "hi"},
        apns_json={"aps": {"sound": "ping"}, "x": "y"},
    )
    body = PayloadRenderer(content, now=NOW).apns(templates={"t": '{"aps":{"alert":"$(m)"}}'})
    assert json.loads(body.body) == {"aps": {"alert": "hi", "sound": "ping"}, "x": "y"}


def test_registration_without_the_template_gets_the_standard_payload() -> None:
    renderer = PayloadRenderer(TEMPLATED, now=NOW)
    for templates in [None, {}, {"other": '{"aps":{}}'}]:
        body = renderer.apns(templates=templates).body
        assert json.loads(body) == {"aps": {"alert": {"body": "standard"}}}


def test_template_rendered_once_per_distinct_body() -> None:
    renderer = PayloadRenderer(TEMPLATED, now=NOW)
    templates = {"promo": '{"aps":{"alert":"$(headline)"}}'}
    first = renderer.apns(templates=templates)
    second = renderer.apns(templates=dict(templates))
    assert first.body is second.body


@pytest.mark.parametrize(
    "body",
    [
        '{"aps":{"badge":#(missing)}}',
        '{"aps":',
        '["not", "an object"]',
        # Stored before the storing-time checks: no UTF-8 for a lone surrogate,
        # no JSON for an infinite number, no end to the nesting.
        '{"aps":{"alert":"\\udc00"}}',
        '{"aps":{"badge":1e400}}',
        '{"aps":' + "[" * 5000 + "]" * 5000 + "}",
    ],
)
def test_template_that_cannot_render_fails_that_recipient(body: str) -> None:
    renderer = PayloadRenderer(TEMPLATED, now=NOW)
    for _ in range(2):  # the cached failure is raised again, cleanly
        with pytest.raises(PushHubError) as info:
            renderer.apns(templates={"promo": body})
        assert info.value.reason == "TEMPLATE_RENDER_FAILED"
    # Others still get their payloads.
    assert renderer.apns(templates={"promo": '{"aps":{}}'}).body == b'{"aps":{}}'


def test_a_property_rendering_a_number_beyond_a_double_fails_that_recipient() -> None:
    """A quoted #(count) renders 1e400 bare: json.loads reads inf, json.dumps writes Infinity."""
    content = replace(TEMPLATED, template_properties={"count": "1e400"})
    renderer = PayloadRenderer(content, now=NOW)
    with pytest.raises(PushHubError) as info:
        renderer.apns(templates={"promo": '{"aps":{"badge":"#(count)"}}'})
    assert info.value.reason == "TEMPLATE_RENDER_FAILED"


# ------------------------------------------------------------------ size


def _apns_overhead() -> int:
    return len(render_apns(NotificationContent(message="x"), now=NOW).body) - 1


def test_apns_payload_of_exactly_4096_bytes_is_accepted() -> None:
    content = NotificationContent(message="x" * (PAYLOAD_LIMIT - _apns_overhead()))
    check_publish_size(content, platforms=[Platform.APNS], now=NOW)
    assert len(render_apns(content, now=NOW).body) == 4096


def test_apns_payload_of_4097_bytes_is_rejected() -> None:
    content = NotificationContent(message="x" * (PAYLOAD_LIMIT - _apns_overhead() + 1))
    with pytest.raises(PushHubError) as info:
        check_publish_size(content, now=NOW)
    error = info.value
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert error.reason == "PAYLOAD_TOO_LARGE"
    assert error.metadata == {
        "field": "message",
        "limit": "4096",
        "platform": "APNs",
        "size": "4097",
    }
    assert "4097 bytes" in error.message and "4096" in error.message


def test_multibyte_characters_count_in_bytes() -> None:
    overhead = _apns_overhead()
    fits = NotificationContent(message="é" * ((PAYLOAD_LIMIT - overhead) // 2))
    check_publish_size(fits, platforms=[Platform.APNS], now=NOW)
    # Well under 4,096 characters, but one byte over 4,096 bytes.
    over = NotificationContent(message="é" * 2034 + "x" * (PAYLOAD_LIMIT - overhead - 4067))
    assert len(over.message) < 4096
    with pytest.raises(PushHubError) as info:
        check_publish_size(over, platforms=[Platform.APNS], now=NOW)
    assert info.value.metadata["size"] == "4097"


def test_fcm_limit_counts_the_payload_not_the_token() -> None:
    empty = len(render_fcm(NotificationContent(data={"k": ""}), "", now=NOW))
    content = NotificationContent(data={"k": "v" * (PAYLOAD_LIMIT - empty)})
    check_publish_size(content, platforms=[Platform.FCM], now=NOW)
    body = render_fcm(content, "T" * 200, now=NOW)
    assert len(body) == 4096 + 200
    over = NotificationContent(data={"k": "v" * (PAYLOAD_LIMIT - empty + 1)})
    with pytest.raises(PushHubError) as info:
        check_publish_size(over, platforms=[Platform.FCM], now=NOW)
    assert info.value.metadata["platform"] == "FCM"
    assert info.value.metadata["field"] == "notification"


def test_publish_size_checks_every_platform() -> None:
    # FCM carries the iOS fields twice (android and apns blocks), so it is larger.
    content = NotificationContent(title="t" * 1400, subtitle="s" * 1400)
    check_publish_size(content, platforms=[Platform.APNS], now=NOW)
    with pytest.raises(PushHubError) as info:
        check_publish_size(content, now=NOW)
    assert info.value.metadata["platform"] == "FCM"


def test_filled_message_over_the_limit_fails_only_that_recipient() -> None:
    renderer = PayloadRenderer(NotificationContent(message="{{bio}}"), now=NOW)
    check_publish_size(renderer.content, now=NOW)
    with pytest.raises(PushHubError) as info:
        renderer.apns({"bio": "b" * 5000})
    assert info.value.reason == "PAYLOAD_TOO_LARGE"
    assert renderer.apns({"bio": "short"}).body == b'{"aps":{"alert":{"body":"short"}}}'
    # Escaping counts: 2,100 quotes become 4,200 bytes.
    with pytest.raises(PushHubError):
        renderer.fcm("t", {"bio": '"' * 2100})


def test_template_payload_over_the_limit_is_rejected() -> None:
    content = NotificationContent(template_name="t", template_properties={"v": "x" * 5000})
    with pytest.raises(PushHubError) as info:
        PayloadRenderer(content, now=NOW).apns(templates={"t": '{"aps":{"alert":"$(v)"}}'})
    assert info.value.reason == "PAYLOAD_TOO_LARGE"
    assert info.value.metadata["field"] == "template_name"


# ------------------------------------------------------------------ publish validation


@pytest.mark.parametrize("text", ["{", "[1, 2]", '"text"', "null", "3"])
def test_override_json_must_be_an_object(text: str) -> None:
    with pytest.raises(PushHubError) as info:
        parse_json_object("apns_json", text)
    assert info.value.reason == "INVALID_JSON"
    assert info.value.metadata["field"] == "apns_json"


def test_override_json_empty_means_none() -> None:
    assert parse_json_object("fcm_json", "") is None
    assert parse_json_object("fcm_json", "  ") is None
    assert parse_json_object("fcm_json", '{"a": {"b": 1}}') == {"a": {"b": 1}}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (NotificationContent(data={"aps": "x"}), "RESERVED_DATA_KEY"),
        (NotificationContent(headers={"google.c.a": "x"}), "RESERVED_DATA_KEY"),
        (NotificationContent(data={"from": "x"}), "RESERVED_DATA_KEY"),
        (NotificationContent(badge=-1), "INVALID_BADGE"),
        (NotificationContent(ttl=timedelta(seconds=-1)), "INVALID_TTL"),
        (NotificationContent(ttl=timedelta(days=29)), "INVALID_TTL"),
        (NotificationContent(collapse_key="c" * 65), "VALUE_TOO_LONG"),
    ],
)
def test_content_rules(content: NotificationContent, reason: str) -> None:
    with pytest.raises(PushHubError) as info:
        validate_content(content)
    assert info.value.reason == reason


def test_reserved_keys_also_fail_rendering() -> None:
    with pytest.raises(PushHubError) as info:
        check_publish_size(NotificationContent(data={"aps": "x"}), now=NOW)
    assert info.value.reason == "RESERVED_DATA_KEY"


def test_content_round_trips_through_json() -> None:
    content = NotificationContent(
        **{
            **FULL.__dict__,
            "apns_json": {"a": 1},
            "fcm_json": {"b": {"c": None}},
            "template_name": "t",
            "template_properties": {"p": "v"},
            "ttl": timedelta(seconds=1.5),
        }
    )
    assert NotificationContent.from_json(content.to_json()) == content
    assert NotificationContent.from_json(NotificationContent().to_json()) == NotificationContent()
