"""RegistrationService on the in-memory store (proved by tests/contract): tracking,
batches, ownership, expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from pushhub_server.core import registration_rules
from pushhub_server.core.clock import ManualClock
from pushhub_server.core.errors import ErrorCode, PushHubError, invalid_field
from pushhub_server.core.limits import Limits
from pushhub_server.core.models import (
    CleanupTarget,
    FailureReason,
    KeyKind,
    Platform,
    Principal,
    RegistrationFilter,
    RequestState,
)
from pushhub_server.core.pipeline import KeyedOrder
from pushhub_server.core.registration_rules import RegistrationDraft
from pushhub_server.core.registration_webhooks import webhook_signature
from pushhub_server.core.registrations import RegistrationService
from pushhub_server.store.memory import (
    MemoryRegistrationRepository,
    MemoryStore,
    MemoryTrackingRepository,
)
from tests.fakes.webhooks import RecordingWebhookSender

SERVER = Principal("app", "k1", KeyKind.SERVER, "phs_server")
OTHER = Principal("other", "k9", KeyKind.SERVER, "phs_other")
DEVICE = Principal("app", "k2", KeyKind.DEVICE, "phd_device")
ALICE = Principal("app", "k2", KeyKind.DEVICE, "phd_device", user_id="alice")
FCM = Platform.FCM


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2030, 1, 1, tzinfo=UTC))


@pytest.fixture
def webhooks() -> RecordingWebhookSender:
    return RecordingWebhookSender()


@pytest.fixture
def service(clock: ManualClock, webhooks: RecordingWebhookSender) -> RegistrationService:
    store = MemoryStore()
    registrations, tracking = MemoryRegistrationRepository(store), MemoryTrackingRepository(store)
    return RegistrationService(registrations, tracking, webhooks, clock, Limits())


def draft(token: str = "tok", **fields) -> RegistrationDraft:
    """FCM by default: its tokens may be short words, which keeps these tests readable."""
    return RegistrationDraft(platform=fields.pop("platform", FCM), device_token=token, **fields)


async def test_register_upserts_and_tracks_duplicates(service: RegistrationService) -> None:
    first = await service.register(SERVER, draft(channels=["a"], track=True))
    again = await service.register(SERVER, draft(channels=["a"], track=True))
    assert again.result.registration.registration_id == first.result.registration.registration_id
    assert again.result.unchanged
    statuses = await service.registration_statuses(
        SERVER, [again.request_id, "unknown", first.request_id]
    )
    assert [(s.state, s.failure_reason) for s in statuses] == [
        (RequestState.FAILED, FailureReason.DUPLICATE_EXISTS),
        (RequestState.PENDING, None),
        (RequestState.SUCCESS, None),
    ]
    assert [s.request_id for s in statuses] == [again.request_id, "unknown", first.request_id]
    assert (await service.registration_statuses(OTHER, [first.request_id]))[0].state is (
        RequestState.PENDING
    )


async def test_failed_tracked_request_carries_its_id_and_webhook(
    service: RegistrationService, webhooks: RecordingWebhookSender
) -> None:
    url = "https://hooks.example.com/hook"
    with pytest.raises(PushHubError) as caught:
        await service.register(
            SERVER, draft("x" * 4097, track=True, callback_url=url, callback_headers={"A": "b"})
        )
    request_id = caught.value.metadata["request_id"]
    [status] = await service.registration_statuses(SERVER, [request_id])
    assert status.failure_reason is FailureReason.DEVICE_TOKEN_TOO_LONG
    assert webhooks.sent == [
        (
            url,
            {"A": "b"},
            {
                "status": "FAILED",
                "signature": webhook_signature("phs_server", url),
                "failure_reason": "DEVICE_TOKEN_TOO_LONG",
            },
        )
    ]


async def test_untracked_requests_send_no_webhook(
    service: RegistrationService, webhooks: RecordingWebhookSender
) -> None:
    outcome = await service.register(SERVER, draft(callback_url="https://hooks.example.com/x"))
    assert outcome.request_id is None
    assert webhooks.sent == []


async def test_register_many_keeps_order_and_isolates_bad_items(
    service: RegistrationService,
) -> None:
    drafts = [
        draft("ok-0"),
        draft("x" * 5000),
        draft("ok-2", tags=["bad tag"]),
        draft("ok-3", platform=invalid_field("platform", "INVALID_PLATFORM", "no such platform")),
        draft("ok-4", track=True),
        draft("ok-0"),
    ]
    outcomes = await service.register_many(SERVER, drafts)
    kinds = [
        o.reason if isinstance(o, PushHubError) else o.result.registration.device_token
        for o in outcomes
    ]
    assert kinds == ["ok-0", "VALUE_TOO_LONG", "INVALID_TAG", "INVALID_PLATFORM", "ok-4", "ok-0"]
    assert outcomes[4].request_id
    items, _ = await service.list(SERVER, RegistrationFilter(), 100, "")
    assert sorted(r.device_token for r in items) == ["ok-0", "ok-4"]


class SlowFirstWrite(MemoryRegistrationRepository):
    """The first batch's write takes a while; every write is logged as it starts and ends."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store)
        self.log: list[str] = []

    async def upsert_many(self, app_id, items, now):  # type: ignore[no-untyped-def]
        token = items[0].device_token if items else "other"
        self.log.append(f"start {token}")
        if token == "first" and self.log.count("start first") == 1:
            await asyncio.sleep(0.02)
        results = await super().upsert_many(app_id, items, now)
        self.log.append(f"end {token}")
        return results


@pytest.mark.parametrize(
    ("second", "log"),
    [
        (draft("first"), ["start first", "end first", "start first", "end first"]),
        (
            draft("other", registration_id="some-id"),
            ["start first", "end first", "start other", "end other"],
        ),
        (draft("other"), ["start first", "start other", "end other", "end first"]),
    ],
    ids=["same-token-waits", "registration-id-waits", "disjoint-tokens-overlap"],
)
async def test_a_batch_writes_after_earlier_ones_it_could_interfere_with(
    clock: ManualClock, second: RegistrationDraft, log: list[str]
) -> None:
    """Sequential results, whatever overlaps: only batches of disjoint tokens write at once."""
    store = MemoryStore()
    repository = SlowFirstWrite(store)
    service = RegistrationService(
        repository, MemoryTrackingRepository(store), RecordingWebhookSender(), clock, Limits()
    )
    order = KeyedOrder()
    first = asyncio.create_task(service.register_many(SERVER, [draft("first")], order))
    later = asyncio.create_task(service.register_many(SERVER, [second], order))
    await asyncio.gather(first, later)
    assert repository.log == log


async def test_register_many_limits(service: RegistrationService) -> None:
    with pytest.raises(PushHubError) as caught:
        await service.register_many(DEVICE, [draft()])
    assert caught.value.reason == "SERVER_KEY_REQUIRED"
    drafts = [draft(f"t{i}", track=i == 7) for i in range(1001)]
    # Refused once, as a whole (one error per item would outgrow the batch).
    with pytest.raises(PushHubError) as caught:
        await service.register_many(SERVER, drafts)
    assert (caught.value.reason, caught.value.metadata["limit"]) == ("TOO_MANY_VALUES", "1000")
    items, _ = await service.list(SERVER, RegistrationFilter(), 100, "")
    assert items == []


async def test_an_unexpected_failure_fails_its_item_only(
    service: RegistrationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(text: str, field: str, limit: int) -> None:
        raise RuntimeError("a bug in a rule")

    monkeypatch.setattr(registration_rules, "check_selector", broken)
    outcomes = await service.register_many(
        SERVER, [draft("ok-0"), draft("bug", selector="a = 1", track=True), draft("ok-2")]
    )
    first, failed, last = outcomes
    assert isinstance(failed, PushHubError)
    assert (failed.code, failed.reason) == (ErrorCode.INTERNAL, "INTERNAL")
    assert failed.metadata["request_id"]
    assert not isinstance(first, PushHubError) and not isinstance(last, PushHubError)


async def test_device_key_ownership(service: RegistrationService) -> None:
    owned = await service.register(SERVER, draft(user_id="alice"))
    registration_id = owned.result.registration.registration_id
    for action in (
        service.register(DEVICE, draft(tags=["x"])),
        service.unregister(DEVICE, registration_id, None, ""),
        service.unregister(DEVICE, "", FCM, "tok"),
    ):
        with pytest.raises(PushHubError) as caught:
            await action
        assert caught.value.reason == "NOT_DEVICE_OWNER"
    assert await service.unregister(ALICE, "", FCM, "tok") == 1


async def test_a_device_key_may_not_take_a_users_token_by_registration_id(
    service: RegistrationService,
) -> None:
    await service.register(SERVER, draft("alices", user_id="alice"))
    reserved = await service.create_registration_id(DEVICE)
    mine = await service.register(DEVICE, draft("mine"))
    for registration_id in (reserved, mine.result.registration.registration_id):
        with pytest.raises(PushHubError) as caught:
            await service.register(DEVICE, draft("alices", registration_id=registration_id))
        assert caught.value.reason == "NOT_DEVICE_OWNER"
    taken = await service.register(ALICE, draft("alices", registration_id=reserved))
    assert taken.result.registration.registration_id == reserved


async def test_expiry_get_list_and_sweep(service: RegistrationService, clock: ManualClock) -> None:
    short = await service.register(
        SERVER, draft("short", expires_at=clock.now() + timedelta(seconds=1))
    )
    await service.register(SERVER, draft("long"))
    clock.advance(timedelta(seconds=1))
    with pytest.raises(PushHubError) as caught:
        await service.get(SERVER, short.result.registration.registration_id)
    assert (caught.value.code, caught.value.reason) == (ErrorCode.NOT_FOUND, "REGISTRATION_GONE")
    items, _ = await service.list(SERVER, RegistrationFilter(), 100, "")
    assert [r.device_token for r in items] == ["long"]
    assert await service.sweep() == 1


async def test_pagination_tokens(service: RegistrationService) -> None:
    for index in range(5):
        await service.register(SERVER, draft(f"t{index}", channels=["c"]))
    where = RegistrationFilter(channel="c")
    seen, token = [], ""
    while True:
        items, token = await service.list(SERVER, where, 2, token)
        seen.extend(r.device_token for r in items)
        if not token:
            break
    assert sorted(seen) == [f"t{i}" for i in range(5)]
    _, token = await service.list(SERVER, where, 2, "")
    with pytest.raises(PushHubError) as caught:
        await service.list(SERVER, RegistrationFilter(channel="d"), 2, token)
    assert caught.value.reason == "INVALID_PAGE_TOKEN"


async def test_update_tags_and_cleanup(service: RegistrationService) -> None:
    await service.register(SERVER, draft("a1", user_id="alice", tags=["x"]))
    await service.register(SERVER, draft("a2", user_id="alice"))
    await service.register(SERVER, draft("b1", user_id="bob", tags=["x"]))
    assert await service.update_tags(SERVER, "", RegistrationFilter(tag="x"), ["y"], ["x"]) == 2
    with pytest.raises(PushHubError) as caught:
        await service.update_tags(SERVER, "", RegistrationFilter(), ["y"], [])
    assert caught.value.reason == "INVALID_SELECTION"
    with pytest.raises(PushHubError) as caught:
        await service.update_tags(SERVER, "unknown", RegistrationFilter(), ["y"], [])
    assert (caught.value.code, caught.value.reason) == (ErrorCode.NOT_FOUND, "REGISTRATION_GONE")
    many = [f"m{i}" for i in range(60)]
    with pytest.raises(PushHubError) as caught:
        await service.update_tags(SERVER, "", RegistrationFilter(user_id="alice"), many, [])
    assert (caught.value.reason, caught.value.metadata["field"]) == ("TOO_MANY_VALUES", "add_tags")
    removed = await service.cleanup(
        SERVER, [CleanupTarget("alice", "a1"), CleanupTarget("bob", None)]
    )
    assert removed == 2
    items, _ = await service.list(SERVER, RegistrationFilter(), 100, "")
    assert [r.device_token for r in items] == ["a2"]
