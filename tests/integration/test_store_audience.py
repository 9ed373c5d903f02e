from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from pushhub_server.core.messages import Audience, Recipient
from pushhub_server.core.models import Platform, Template
from pushhub_server.store import Database, SqlAudienceReader, SqlRegistrationRepository
from pushhub_server.store.audience import audience_query
from pushhub_server.store.schema import registrations as registrations_table

from .test_store_registrations import device, upsert_one

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
def reader(db: Database) -> SqlAudienceReader:
    return SqlAudienceReader(db)


@pytest.fixture
async def names(
    db: Database, registrations: SqlRegistrationRepository, app_id: str
) -> dict[str, str]:
    """Registers DEVICES; returns name → registration id. Two are not live."""
    ids = {}
    for name, (platform, channels, tags, user) in DEVICES.items():
        expires = NOW + timedelta(seconds=1) if name == "expired" else None
        item = device(
            platform=platform, channels=channels, tags=tags, user_id=user, expires_at=expires
        )
        ids[name] = (await upsert_one(registrations, app_id, item)).registration.registration_id
    async with db.write() as conn:
        await conn.execute(
            sa.update(registrations_table)
            .where(registrations_table.c.id == ids["invalid"])
            .values(invalidated_at=1)
        )
    return ids


async def everyone(
    reader: SqlAudienceReader, app_id: str, audience: Audience, page_size: int
) -> list[Recipient]:
    """Every page in turn, as the dispatcher reads them."""
    found: list[Recipient] = []
    while True:
        after = found[-1].registration_id if found else None
        page = await reader.page(app_id, audience, after, page_size, NOW + timedelta(seconds=1))
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
    reader: SqlAudienceReader,
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
    found = await everyone(reader, app_id, Audience(**filters), page_size)
    assert [r.registration_id for r in found] == sorted(names[n] for n in expected)


async def test_recipients_carry_what_rendering_needs(
    reader: SqlAudienceReader, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    template = Template('{"aps":{"alert":"$(msg)"}}', ("beta",))
    item = device(metadata={"name": "Ann"}, templates={"alert": template}, selector="k = 'v'")
    stored = (await upsert_one(registrations, app_id, item)).registration
    plain = (
        await upsert_one(registrations, app_id, device(metadata={}, templates={}))
    ).registration

    found = await reader.page(app_id, Audience(broadcast=True), None, 10, NOW)
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
    ]
    # A message without {{name}} or template_name: neither is read, the rest is.
    light = await reader.page(
        app_id, Audience(broadcast=True), None, 10, NOW, with_metadata=False, with_templates=False
    )
    assert light == [
        Recipient(stored.registration_id, APNS, item.device_token, selector="k = 'v'"),
        Recipient(plain.registration_id, APNS, plain.device_token),
    ]
    only_templates = await reader.page(
        app_id, Audience(broadcast=True), None, 10, NOW, with_metadata=False
    )
    assert [r.templates for r in only_templates] == [{"alert": template}, {}]
    assert [r.metadata for r in only_templates] == [{}, {}]


async def test_keyset_pages_return_every_recipient_once(
    reader: SqlAudienceReader, registrations: SqlRegistrationRepository, app_id: str
) -> None:
    items = [device(channels=("big",) if i % 3 else ("small",)) for i in range(40)]
    results = await registrations.upsert_many(app_id, items, NOW)
    ids = sorted(r.registration.registration_id for r in results)  # type: ignore[union-attr]
    big = sorted(
        r.registration.registration_id  # type: ignore[union-attr]
        for r in results
        if r.registration.channels == ("big",)  # type: ignore[union-attr]
    )
    for page_size in (1, 7, 40):
        broadcast = await everyone(reader, app_id, Audience(broadcast=True), page_size)
        assert [r.registration_id for r in broadcast] == ids
        channel = await everyone(reader, app_id, Audience(channel="big"), page_size)
        assert [r.registration_id for r in channel] == big


async def test_other_apps_are_never_in_the_audience(
    reader: SqlAudienceReader, names: dict[str, str], app_id: str
) -> None:
    audience = Audience(registration_ids=tuple(names.values()))
    assert await reader.page("another-app", audience, None, 10, NOW) == []
    assert await reader.page("another-app", Audience(broadcast=True), None, 10, NOW) == []


@pytest.mark.parametrize(
    "audience",
    [
        Audience(broadcast=True),
        Audience(channel="news"),
        Audience(channel="news", platforms=(FCM,)),
        Audience(broadcast=True, tag_expression="lang:en && !beta"),
        Audience(broadcast=True, tag_expression="beta || !lang:fr"),
    ],
    ids=["broadcast", "channel", "channel+platform", "tags-and", "tags-or"],
)
async def test_pages_read_an_index_in_key_order(
    db: Database, names: dict[str, str], app_id: str, audience: Audience
) -> None:
    """No page sorts or scans the whole table, whatever the planner's statistics say."""
    query = audience_query(app_id, audience, names["a"], 100, NOW, db.dialect)
    async with db.read() as conn:
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        if db.dialect == "sqlite":
            plan = "\n".join(
                row[-1] for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            )
            assert "TEMP B-TREE" not in plan and "SCAN registrations" not in plan, plan
            return
        # Tiny test tables make any plan cheap; forbid sorts and scans to ask
        # whether an ordered index plan exists at all.
        await conn.exec_driver_sql("SET LOCAL enable_sort = off")
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.exec_driver_sql(f"EXPLAIN {sql}"))
    assert "Sort" not in plan and "Seq Scan on registrations" not in plan, plan
    assert "Seq Scan on subscriptions" not in plan, plan
    # A hashed subplan would read every row of the tag, in every app, per page.
    assert "hashed" not in plan and "Seq Scan on registration_tags" not in plan, plan


async def test_expired_and_invalidated_are_left_out(
    reader: SqlAudienceReader, names: dict[str, str], app_id: str
) -> None:
    before_expiry = await reader.page(app_id, Audience(broadcast=True), None, 10, NOW)
    assert {r.registration_id for r in before_expiry} == {names[n] for n in (*LIVE, "expired")}


async def test_re_registering_an_invalidated_token_revives_it(
    db: Database,
    reader: SqlAudienceReader,
    registrations: SqlRegistrationRepository,
    names: dict[str, str],
    app_id: str,
) -> None:
    """A device that registers its token again has a working token again."""
    assert await registrations.get(app_id, names["invalid"], NOW) is None, "not live"
    token = sa.select(registrations_table.c.device_token).where(
        registrations_table.c.id == names["invalid"]
    )
    async with db.read() as conn:
        device_token = (await conn.execute(token)).scalar_one()
    platform, channels, tags, user = DEVICES["invalid"]
    item = device(device_token, platform=platform, channels=channels, tags=tags, user_id=user)
    revived = await upsert_one(registrations, app_id, item)
    assert revived.registration.registration_id == names["invalid"]
    assert not revived.unchanged
    everyone_now = await reader.page(app_id, Audience(broadcast=True), None, 10, NOW)
    assert names["invalid"] in {r.registration_id for r in everyone_now}
    assert await registrations.get(app_id, names["invalid"], NOW) == revived.registration
