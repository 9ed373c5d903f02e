"""Audiences through the real server: each filter alone and combined (AND), selectors
over headers, and registrations left out once expired or invalidated.

Who was reached is read from the simulator's inbox; targeted_count must agree.
Issue 3, section 2; the audience fields of protos/pushhub/v1/publish.proto, and
docs/architecture.md, "Fan-out" (how the audience is read).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
import pytest_asyncio

from pushhub_server.delivery.providers.simulator import INVALID

from .harness import (
    APNS,
    FCM,
    PUBLISHED,
    AppHandle,
    StoreProbe,
    create_app,
    injected_token,
    new_token,
    platform_counts,
    settle,
    timestamp,
)


@dataclass
class Population:
    """A small app: who is on which channel, with which tags, users and selectors."""

    app: AppHandle
    ids: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.ids[name]

    def names(self, registration_ids: list[str]) -> set[str]:
        by_id = {value: key for key, value in self.ids.items()}
        return {by_id[registration_id] for registration_id in registration_ids}


# name → RegisterDevice fields. Selectors: the SQL-92 subset over headers (core/selector.py).
PEOPLE = {
    "ann": dict(platform=APNS, channels=["news"], tags=["sports", "lang:en"], user_id="alice"),
    "bob": dict(platform=FCM, channels=["news", "weather"], tags=["lang:fr"], user_id="bob"),
    "cat": dict(platform=APNS, channels=["weather"], tags=["sports"], user_id="alice"),
    "dan": dict(platform=FCM, channels=[], tags=[]),  # the default channel
    "eve": dict(platform=FCM, channels=["news"], tags=["sports"], selector="kind = 'breaking'"),
    "fay": dict(
        platform=APNS,
        channels=["news"],
        tags=["lang:en"],
        selector="region IN ('eu', 'us') AND level >= 3",
    ),
    # Matches when the header is missing (IS NULL), so a plain broadcast reaches it.
    "gil": dict(platform=FCM, channels=["weather"], selector="tier IS NULL OR NOT tier = 'free'"),
}


@pytest_asyncio.fixture(loop_scope="session")
async def population(stubs, clock) -> Population:
    app = await create_app(stubs, clock, prefix="audience")
    ids = {}
    for name, fields in PEOPLE.items():
        response = await app.register(device_token=new_token(), **fields)
        ids[name] = response.registration.registration_id
    return Population(app, ids)


async def reached(server, store: StoreProbe, app: AppHandle, **fields) -> set[str]:
    """Publishes, waits for PUBLISHED and returns the registration ids delivered."""
    response = await app.publish(message="audience test", **fields)
    status = await settle(server, app, response.message_id)
    assert status.state == PUBLISHED, status
    delivered = await store.recipients(app, response.message_id)
    assert len(delivered) == len(set(delivered)), "delivered twice"
    assert status.targeted_count == len(delivered) == status.sent_count, status
    return set(delivered)


CASES = [
    # --- each filter alone
    ("no filter: the default channel", {}, {"dan"}),
    ("channel", {"channel": "news"}, {"ann", "bob"}),
    ("channel default, explicitly", {"channel": "default"}, {"dan"}),
    ("unknown channel", {"channel": "nobody-here"}, set()),
    ("broadcast", {"broadcast": True}, {"ann", "bob", "cat", "dan", "gil"}),
    ("tag", {"tag_expression": "sports"}, {"ann", "cat"}),
    ("tag and not", {"tag_expression": "sports && !lang:en"}, {"cat"}),
    ("tag or", {"tag_expression": "lang:en || lang:fr"}, {"ann", "bob"}),
    ("tag grouping", {"tag_expression": "!(sports || lang:fr)"}, {"dan", "gil"}),
    ("users", {"user_ids": ["alice"]}, {"ann", "cat"}),
    ("two users", {"user_ids": ["alice", "bob", "nobody"]}, {"ann", "bob", "cat"}),
    ("registration ids", {"registration_ids": ["bob", "dan"]}, {"bob", "dan"}),
    # platforms narrow the implied default channel, like every other AND-ed filter
    ("platforms alone", {"platforms": [APNS]}, set()),
    ("platforms with broadcast", {"broadcast": True, "platforms": [FCM]}, {"bob", "dan", "gil"}),
    # --- combined: AND
    ("channel and tag", {"channel": "news", "tag_expression": "lang:en"}, {"ann"}),
    ("channel and user", {"channel": "weather", "user_ids": ["alice"]}, {"cat"}),
    ("channel and platform", {"channel": "news", "platforms": [FCM]}, {"bob"}),
    (
        "broadcast, platform and tag",
        {"broadcast": True, "platforms": [APNS], "tag_expression": "sports"},
        {"ann", "cat"},
    ),
    ("tag and user", {"tag_expression": "sports", "user_ids": ["alice"]}, {"ann", "cat"}),
    (
        "user and registration ids",
        {"user_ids": ["alice"], "registration_ids": ["ann", "bob"]},
        {"ann"},
    ),
    (
        "everything at once",
        {
            "channel": "news",
            "tag_expression": "sports || lang:fr",
            "user_ids": ["alice", "bob"],
            "registration_ids": ["ann", "bob", "cat"],
            "platforms": [APNS, FCM],
        },
        {"ann", "bob"},
    ),
    (
        "contradiction",
        {"channel": "weather", "tag_expression": "lang:fr", "platforms": [APNS]},
        set(),
    ),
]


@pytest.mark.parametrize(("case", "fields", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_audience(
    server, store: StoreProbe, population: Population, case: str, fields: dict, expected: set
) -> None:
    fields = dict(fields)
    if "registration_ids" in fields:
        fields["registration_ids"] = [population[name] for name in fields["registration_ids"]]
    delivered = await reached(server, store, population.app, **fields)
    assert population.names(sorted(delivered)) == expected, case


SELECTOR_CASES = [
    ("no headers", {}, {"ann", "bob"}),
    ("matching kind", {"kind": "breaking"}, {"ann", "bob", "eve"}),
    ("other kind", {"kind": "digest"}, {"ann", "bob"}),
    ("region and level", {"region": "eu", "level": "5"}, {"ann", "bob", "fay"}),
    ("level too low", {"region": "eu", "level": "2"}, {"ann", "bob"}),
    ("level not a number", {"region": "us", "level": "high"}, {"ann", "bob"}),
    ("region not listed", {"region": "asia", "level": "9"}, {"ann", "bob"}),
    ("both", {"kind": "breaking", "region": "us", "level": "3"}, {"ann", "bob", "eve", "fay"}),
]


@pytest.mark.parametrize(
    ("case", "headers", "expected"), SELECTOR_CASES, ids=[c[0] for c in SELECTOR_CASES]
)
async def test_selectors_over_headers(
    server, store: StoreProbe, population: Population, case: str, headers: dict, expected: set
) -> None:
    delivered = await reached(server, store, population.app, channel="news", headers=headers)
    assert population.names(sorted(delivered)) == expected, case


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, {"bob", "cat", "gil"}),
        ({"tier": "free"}, {"bob", "cat"}),
        ({"tier": "gold"}, {"bob", "cat", "gil"}),
    ],
    ids=["missing-header", "excluded", "included"],
)
async def test_selector_with_is_null_and_not(
    server, store: StoreProbe, population: Population, headers: dict, expected: set
) -> None:
    delivered = await reached(server, store, population.app, channel="weather", headers=headers)
    assert population.names(sorted(delivered)) == expected


async def test_selectors_combine_with_the_other_filters(
    server, store: StoreProbe, population: Population
) -> None:
    delivered = await reached(
        server,
        store,
        population.app,
        broadcast=True,
        tag_expression="sports",
        platforms=[FCM],
        headers={"kind": "breaking"},
    )
    assert population.names(sorted(delivered)) == {"eve"}


async def test_another_apps_registrations_are_never_reached(
    server, store: StoreProbe, population: Population, other_app: AppHandle
) -> None:
    theirs = await other_app.register(channels=["news"], user_id="alice", tags=["sports"])
    delivered = await reached(server, store, population.app, broadcast=True)
    assert theirs.registration.registration_id not in delivered
    foreign = await reached(
        server,
        store,
        population.app,
        registration_ids=[theirs.registration.registration_id],
    )
    assert foreign == set()


async def test_expired_registrations_are_left_out(
    server, store: StoreProbe, app: AppHandle, clock
) -> None:
    lasting = (await app.register(channels=["news"])).registration.registration_id
    expiring = (
        await app.register(
            channels=["news"], expires_at=timestamp(clock.now() + timedelta(seconds=1))
        )
    ).registration.registration_id
    assert await reached(server, store, app, channel="news") == {lasting, expiring}
    clock.advance(timedelta(seconds=1))  # expires_at is now: no longer live
    assert await reached(server, store, app, channel="news") == {lasting}
    assert await reached(server, store, app, broadcast=True) == {lasting}
    assert await reached(server, store, app, registration_ids=[expiring]) == set()


async def test_invalidated_registrations_are_left_out_of_later_sends(
    server, store: StoreProbe, app: AppHandle
) -> None:
    good = (await app.register(platform=APNS)).registration.registration_id
    gone_apns = (
        await app.register(platform=APNS, device_token=injected_token(INVALID, APNS))
    ).registration.registration_id
    gone_fcm = (
        await app.register(platform=FCM, device_token=injected_token(INVALID, FCM))
    ).registration.registration_id

    first = await app.publish(message="first")
    status = await settle(server, app, first.message_id)
    assert (status.targeted_count, status.sent_count, status.failed_count) == (3, 1, 2)
    assert dict(status.failure_reasons) == {"Unregistered": 2}
    assert platform_counts(status) == {APNS: (2, 1, 1), FCM: (1, 0, 1)}
    assert await store.recipients(app, first.message_id) == [good]

    second = await app.publish(message="second")
    status = await settle(server, app, second.message_id)
    assert (status.targeted_count, status.sent_count, status.failed_count) == (1, 1, 0)
    assert dict(status.failure_reasons) == {}
    by_id = await reached(server, store, app, registration_ids=[gone_apns, gone_fcm, good])
    assert by_id == {good}
    assert await reached(server, store, app, broadcast=True, platforms=[FCM]) == set()
