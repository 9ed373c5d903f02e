"""Payload rendering shared by the platforms: {{name}}, templates, size, publish checks."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.models import Platform, Template
from pushhub_server.core.notifications import (
    NotificationContent,
    parse_json_object,
    validate_content,
)
from pushhub_server.delivery.payloads.json_text import merge_patch
from pushhub_server.delivery.payloads.renderer import (
    PayloadRenderer,
    check_publish_size,
    render_apns,
    render_fcm,
)
from pushhub_server.delivery.payloads.size import PAYLOAD_LIMIT
from tests.unit.payload_samples import FULL, NOW

# ------------------------------------------------------------------ JSON


def test_merge_patch_leaves_inputs_untouched() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": 3}
    patch = {"a": {"b": None, "e": {"f": None, "g": 4}}, "d": [1]}
    assert merge_patch(target, patch) == {"a": {"c": 2, "e": {"g": 4}}, "d": [1]}
    assert target == {"a": {"b": 1, "c": 2}, "d": 3}
    assert patch == {"a": {"b": None, "e": {"f": None, "g": 4}}, "d": [1]}


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
