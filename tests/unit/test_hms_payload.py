"""HMS payloads: the ``message`` object without its target, per recipient."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.models import Template
from pushhub_server.core.notifications import NotificationContent, Priority
from pushhub_server.delivery.payloads.hms import HMS_PAYLOAD_LIMIT, HmsPayloads


def hms(
    content: NotificationContent,
    metadata: dict[str, str] | None = None,
    templates: dict[str, Template | str] | None = None,
) -> dict[str, Any]:
    return json.loads(HmsPayloads(content).render(metadata, templates))


def test_a_notification_shows_title_and_body_and_opens_the_app() -> None:
    assert hms(NotificationContent(title="Hello", body="World")) == {
        "android": {
            "notification": {"title": "Hello", "body": "World", "click_action": {"type": 3}}
        }
    }


def test_every_field_hms_can_carry() -> None:
    content = NotificationContent(
        message="plain",
        title="Title",
        body="Body",
        sound="chime",
        image_url="https://img.example/x.png",
        category="com.example.OPEN_ORDER",
        data={"order": "42"},
        headers={"region": "eu"},
        publisher_id="backend-7",
        ttl=timedelta(hours=1),
        priority="high",
        collapse_key="7",
    )

    payload = hms(content)

    assert payload == {
        "data": payload["data"],
        "android": {
            "ttl": "3600s",
            "collapse_key": 7,
            "notification": {
                "title": "Title",
                "body": "Body",
                "image": "https://img.example/x.png",
                "sound": "chime",
                "default_sound": False,
                "tag": "7",
                "click_action": {"type": 1, "action": "com.example.OPEN_ORDER"},
            },
        },
    }
    # data is a string, as HMS requires: the custom keys as a JSON object.
    assert json.loads(payload["data"]) == {
        "order": "42",
        "region": "eu",
        "publisher_id": "backend-7",
        "message": "plain",
    }


def test_the_plain_message_is_the_body_when_there_is_none() -> None:
    notification = hms(NotificationContent(message="Hi there"))["android"]["notification"]

    assert notification == {"body": "Hi there", "click_action": {"type": 3}}


def test_without_anything_to_show_it_is_a_data_message() -> None:
    payload = hms(NotificationContent(data={"sync": "1"}, content_available=True))

    assert payload == {"data": '{"sync":"1"}'}


def test_the_default_sound_stays_the_systems() -> None:
    notification = hms(NotificationContent(title="T", body="B", sound="default"))["android"][
        "notification"
    ]

    assert "sound" not in notification
    assert "default_sound" not in notification


@pytest.mark.parametrize(
    ("collapse_key", "group"),
    [("0", 0), ("-1", -1), ("100", 100), ("101", None), ("07", None), ("scores", None)],
)
def test_only_hms_collapse_groups_become_collapse_key(collapse_key: str, group: int | None) -> None:
    android = hms(NotificationContent(title="T", body="B", collapse_key=collapse_key))["android"]

    assert android.get("collapse_key") == group
    assert android["notification"]["tag"] == collapse_key


@pytest.mark.parametrize(
    ("ttl", "wire"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90.7), "90s"),
        (timedelta(days=15), "1296000s"),
        (timedelta(days=28), "1296000s"),
    ],
)
def test_ttl_is_whole_seconds_up_to_fifteen_days(ttl: timedelta, wire: str) -> None:
    assert hms(NotificationContent(title="T", ttl=ttl))["android"]["ttl"] == wire


@pytest.mark.parametrize(("priority", "urgency"), [("high", "HIGH"), ("normal", "NORMAL")])
def test_priority_is_the_urgency_of_a_data_message(priority: Priority, urgency: str) -> None:
    payload = hms(NotificationContent(data={"sync": "1"}, priority=priority))

    assert payload["android"] == {"urgency": urgency}


def test_a_notification_carries_no_urgency() -> None:
    # Push Kit's urgency is the priority of data messages; HIGH needs a permission.
    android = hms(NotificationContent(title="T", priority="high"))["android"]

    assert "urgency" not in android


def test_a_template_data_message_gets_the_urgency_unless_it_sets_its_own() -> None:
    content = NotificationContent(template_name="t", priority="high")

    plain = hms(content, templates={"t": '{"data": "x"}'})
    own = hms(content, templates={"t": '{"data": "x", "android": {"urgency": "NORMAL"}}'})
    shown = hms(
        content,
        templates={
            "t": '{"android": {"notification": {"body": "b", "click_action": {"type": 3}}}}'
        },
    )

    assert plain["android"] == {"urgency": "HIGH"}
    assert own["android"] == {"urgency": "NORMAL"}
    assert "urgency" not in shown["android"]


def test_a_broadcast_renders_one_payload_object_for_everyone() -> None:
    payloads = HmsPayloads(NotificationContent(title="Sale", body="20% off"))

    assert payloads.render() is payloads.render({"name": "Ann"})


def test_placeholders_make_each_recipients_payload_their_own() -> None:
    payloads = HmsPayloads(NotificationContent(title="Hi", message="Hello {{name}}"))

    ann = json.loads(payloads.render({"name": "Ann"}))
    bob = json.loads(payloads.render({"name": "Bob"}))

    assert ann["android"]["notification"]["body"] == "Hello Ann"
    assert bob["android"]["notification"]["body"] == "Hello Bob"


def test_a_template_is_the_message_over_the_delivery_options() -> None:
    content = NotificationContent(
        template_name="promo",
        template_properties={"item": "shoes"},
        ttl=timedelta(minutes=5),
        title="ignored for template payloads",
    )
    template = Template(
        '{"message": {"token": ["someone-else"], "data": "$(item)",'
        ' "android": {"notification": {"title": "Deal", "body": "$(item)",'
        ' "click_action": {"type": 3}}}}}',
    )

    payload = hms(content, templates={"promo": template})

    assert payload == {
        "data": "shoes",
        "android": {
            "ttl": "300s",
            "notification": {"title": "Deal", "body": "shoes", "click_action": {"type": 3}},
        },
    }


def test_a_registration_without_the_template_gets_the_standard_payload() -> None:
    content = NotificationContent(title="Standard", template_name="promo")

    payload = hms(content, templates={"other": '{"data": "x"}'})

    assert payload["android"]["notification"]["title"] == "Standard"


def test_a_template_whose_data_is_not_a_string_fails_that_recipient() -> None:
    content = NotificationContent(template_name="promo")

    with pytest.raises(PushHubError) as raised:
        hms(content, templates={"promo": '{"data": {"k": "v"}}'})

    assert raised.value.reason == "TEMPLATE_RENDER_FAILED"


@pytest.mark.parametrize(
    "body",
    [
        # Stored before the storing-time checks: no JSON for an infinite number, no
        # end to the nesting (the rule the other platforms' templates obey).
        '{"data": "x", "android": {"urgency": "#(count)"}}',
        '{"data": "x", "android": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
)
def test_a_template_json_cannot_carry_fails_that_recipient(body: str) -> None:
    content = NotificationContent(template_name="promo", template_properties={"count": "1e400"})
    payloads = HmsPayloads(content)

    for _ in range(2):  # the cached failure is raised again, cleanly
        with pytest.raises(PushHubError) as raised:
            payloads.render(templates={"promo": body})
        assert raised.value.reason == "TEMPLATE_RENDER_FAILED"


def test_a_payload_over_4096_bytes_is_refused_naming_hms() -> None:
    content = NotificationContent(title="T", body="x" * HMS_PAYLOAD_LIMIT)

    with pytest.raises(PushHubError) as raised:
        HmsPayloads(content).render()

    error = raised.value
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert error.reason == "PAYLOAD_TOO_LARGE"
    assert error.metadata["platform"] == "HMS"
    assert int(error.metadata["size"]) > HMS_PAYLOAD_LIMIT


def test_a_payload_of_exactly_4096_bytes_passes() -> None:
    # The tokens the provider adds later do not count (HMS counts without them).
    base = len(HmsPayloads(NotificationContent(title="T", body="")).render())
    filler = "x" * (HMS_PAYLOAD_LIMIT - base - len(',"body":""'))
    payload = HmsPayloads(NotificationContent(title="T", body=filler)).render()

    assert len(payload) == HMS_PAYLOAD_LIMIT


def test_reserved_data_keys_fail_every_recipient() -> None:
    payloads = HmsPayloads(NotificationContent(title="T", data={"google.x": "1"}))

    with pytest.raises(PushHubError) as raised:
        payloads.render()

    assert raised.value.reason == "RESERVED_DATA_KEY"
