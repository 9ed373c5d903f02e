"""AudienceReader: a message's recipients in keyset pages, every filter ANDed,
live registrations only, the same on every store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pushhub_server.core.messages import Audience, Recipient
from pushhub_server.core.models import Platform, Template
from pushhub_server.core.web_push import WebPushKeys
from tests.store_records import device, upsert_one

from .conftest import Stores
from .test_registration_repository import invalidate

NOW = datetime(2030, 1, 1, tzinfo=UTC)
APNS, FCM = Platform.APNS, Platform.FCM

# name: (platform, channels, tags, user)
DEVICES: dict[str, tuple[Platform, tuple[str, ...], tuple[str, ...], str | None]] = {
    "a": (APNS, ("news",), ("lang:en", "beta"), "alice"),
    "b": (FCM, ("news", "sports"), ("lang:fr",), "bob"),
    "c": (APNS, ("sports",), ("lang:en",), "alice"),
    "d": (FCM, ("default",), (), None),
    "expired": (APNS, ("news", "default"), ("lang:en", "beta", "lang:fr"), "alice"),
    "invalid": (FCM, ("news", "sports", "default"), ("lang:en", "lang:fr"), "bob"),
}
LIVE = ["a", "b", "c", "d"]


@pytest.fixture
async def names(stores: Stores, app_id: str) -> dict[str, str]:
    """Registers DEVICES (their tokens: token-<name>); returns name → registration
    id. Two are not live once NOW + 1 s: one expired, one invalidated."""
    ids = {}
    for name, (platform, channels, tags, user) in DEVICES.items():
        expires = NOW + timedelta(seconds=1) if name == "expired" else None
        item = device(
            f"token-{name}",
            platform=platform,
            channels=channels,
            tags=tags,
            user_id=user,
            expires_at=expires,
        )
        ids[name] = (
            await upsert_one(stores.registrations, app_id, item)
        ).registration.registration_id
    await invalidate(stores, app_id, ids["invalid"])
    return ids


async def everyone(
    stores: Stores, app_id: str, audience: Audience, page_size: int, last_id: str | None = None
) -> list[Recipient]:
    """Every page in turn, as the dispatcher reads them."""
    found: list[Recipient] = []
    while True:
        after = found[-1].registration_id if found else None
        page = await stores.audience.page(
            app_id, audience, after, page_size, NOW + timedelta(seconds=1), last_id=last_id
        )
        found.extend(page)
        if len(page) < page_size:
            return found


CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"channel": "news"}, ["a", "b"]),
    ({"channel": "sports"}, ["b", "c"]),
    ({"channel": "default"}, ["d"]),
    ({"channel": "unknown"}, []),
    ({"broadcast": True}, LIVE),
    ({"broadcast": True, "channel": "default"}, LIVE),
    ({"tag_expression": "lang:en"}, ["a", "c"]),
    ({"tag_expression": "lang:en && !beta"}, ["c"]),
    ({"tag_expression": "beta || lang:fr"}, ["a", "b"]),
    ({"tag_expression": "!(lang:en || lang:fr)"}, ["d"]),
    ({"user_ids": ("alice",)}, ["a", "c"]),
    ({"user_ids": ("alice", "bob", "nobody")}, ["a", "b", "c"]),
    ({"registration_ids": ("a", "d", "expired", "invalid")}, ["a", "d"]),
    ({"platforms": (FCM,)}, ["b", "d"]),
    ({"platforms": (APNS, FCM)}, LIVE),
    ({"channel": "news", "platforms": (APNS,)}, ["a"]),
    ({"channel": "sports", "user_ids": ("alice",)}, ["c"]),
    ({"channel": "news", "tag_expression": "!beta"}, ["b"]),
    ({"broadcast": True, "tag_expression": "lang:en", "platforms": (APNS,)}, ["a", "c"]),
    ({"registration_ids": ("a", "b", "c"), "tag_expression": "lang:en"}, ["a", "c"]),
    (
        {
            "channel": "sports",
            "tag_expression": "lang:fr || lang:en",
            "user_ids": ("bob",),
            "registration_ids": ("b", "c"),
            "platforms": (FCM,),
        },
        ["b"],
    ),
]


@pytest.mark.parametrize(("filters", "expected"), CASES)
@pytest.mark.parametrize("page_size", [1, 100])
async def test_audience_filters_combine_with_and(
    stores: Stores,
    names: dict[str, str],
    app_id: str,
    filters: dict[str, Any],
    expected: list[str],
    page_size: int,
) -> None:
    if "registration_ids" in filters:
        filters = {
            **filters,
            "registration_ids": tuple(names[n] for n in filters["registration_ids"]),
        }
    found = await everyone(stores, app_id, Audience(**filters), page_size)
    assert [r.registration_id for r in found] == sorted(names[n] for n in expected)


async def test_recipients_carry_what_rendering_needs(stores: Stores, app_id: str) -> None:
    template = Template('{"aps":{"alert":"$(msg)"}}', ("beta",))
    item = device(metadata={"name": "Ann"}, templates={"alert": template}, selector="k = 'v'")
    stored = (await upsert_one(stores.registrations, app_id, item)).registration
    plain = (
        await upsert_one(stores.registrations, app_id, device(metadata={}, templates={}))
    ).registration
    keys = WebPushKeys("BP256dh-key", "auth-secret")
    browser = device(
        "https://push.example/send/1",
        platform=Platform.WEB_PUSH,
        metadata={},
        templates={},
        web_push_keys=keys,
    )
    subscribed = (await upsert_one(stores.registrations, app_id, browser)).registration

    found = await stores.audience.page(app_id, Audience(broadcast=True), None, 10, NOW)
    assert found == [
        Recipient(
            stored.registration_id,
            APNS,
            item.device_token,
            {"name": "Ann"},
            {"alert": template},
            "k = 'v'",
        ),
        Recipient(plain.registration_id, APNS, plain.device_token),
        Recipient(
            subscribed.registration_id,
            Platform.WEB_PUSH,
            browser.device_token,
            web_push_keys=keys,
        ),
    ]
    # A message without {{name}} or template_name: neither is read, the rest is.
    light = await stores.audience.page(
        app_id, Audience(broadcast=True), None, 2, NOW, with_metadata=False, with_templates=False
    )
    assert light == [
        Recipient(stored.registration_id, APNS, item.device_token, selector="k = 'v'"),
        Recipient(plain.registration_id, APNS, plain.device_token),
    ]
    only_templates = await stores.audience.page(
        app_id, Audience(broadcast=True), None, 2, NOW, with_metadata=False
    )
    assert [r.templates for r in only_templates] == [{"alert": template}, {}]
    assert [r.metadata for r in only_templates] == [{}, {}]


async def test_keyset_pages_return_every_recipient_once(stores: Stores, app_id: str) -> None:
    items = [device(channels=("big",) if i % 3 else ("small",)) for i in range(40)]
    results = await stores.registrations.upsert_many(app_id, items, NOW)
    ids = sorted(r.registration.registration_id for r in results)  # type: ignore[union-attr]
    big = sorted(
        r.registration.registration_id  # type: ignore[union-attr]
        for r in results
        if r.registration.channels == ("big",)  # type: ignore[union-attr]
    )
    for page_size in (1, 7, 40):
        broadcast = await everyone(stores, app_id, Audience(broadcast=True), page_size)
        assert [r.registration_id for r in broadcast] == ids
        channel = await everyone(stores, app_id, Audience(channel="big"), page_size)
        assert [r.registration_id for r in channel] == big


async def test_a_partition_ends_at_its_last_id(stores: Stores, app_id: str) -> None:
    """last_id (a partition's end, docs/fleet.md) is the last id any page holds."""
    items = [device() for _ in range(10)]
    results = await stores.registrations.upsert_many(app_id, items, NOW)
    ids = sorted(r.registration.registration_id for r in results)  # type: ignore[union-attr]
    for page_size in (1, 3, 10):
        found = await everyone(stores, app_id, Audience(broadcast=True), page_size, ids[5])
        assert [r.registration_id for r in found] == ids[:6]
    after = await stores.audience.page(
        app_id, Audience(broadcast=True), ids[5], 10, NOW, last_id=ids[8]
    )
    assert [r.registration_id for r in after] == ids[6:9]


async def test_other_apps_are_never_in_the_audience(
    stores: Stores, names: dict[str, str], app_id: str
) -> None:
    other = await stores.new_app()
    audience = Audience(registration_ids=tuple(names.values()))
    assert await stores.audience.page(other, audience, None, 10, NOW) == []
    assert await stores.audience.page(other, Audience(broadcast=True), None, 10, NOW) == []


async def test_expired_and_invalidated_are_left_out(
    stores: Stores, names: dict[str, str], app_id: str
) -> None:
    before_expiry = await stores.audience.page(app_id, Audience(broadcast=True), None, 10, NOW)
    assert {r.registration_id for r in before_expiry} == {names[n] for n in (*LIVE, "expired")}


async def test_re_registering_an_invalidated_token_revives_it(
    stores: Stores, names: dict[str, str], app_id: str
) -> None:
    """A device that registers its token again has a working token again."""
    assert await stores.registrations.get(app_id, names["invalid"], NOW) is None, "not live"
    platform, channels, tags, user = DEVICES["invalid"]
    item = device("token-invalid", platform=platform, channels=channels, tags=tags, user_id=user)
    revived = await upsert_one(stores.registrations, app_id, item)
    assert revived.registration.registration_id == names["invalid"]
    assert not revived.unchanged
    everyone_now = await stores.audience.page(app_id, Audience(broadcast=True), None, 10, NOW)
    assert names["invalid"] in {r.registration_id for r in everyone_now}
    assert await stores.registrations.get(app_id, names["invalid"], NOW) == revived.registration
