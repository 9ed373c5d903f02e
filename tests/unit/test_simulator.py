"""Simulator provider: recording, failure injection by token prefix; the shared retry policy."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pushhub_server.core.clock import ManualClock
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.delivery.providers import SimulatorProvider
from pushhub_server.delivery.providers.simulator import FLAKY, INVALID, REJECTED
from pushhub_server.delivery.retry_policy import RetryPolicy
from tests.fakes.delivery import (
    APP,
    START,
    FakeInbox,
    NoSleep,
    RecordingProvider,
    ScriptedProvider,
)


def delivery(token: str, message_id: str = "m-1") -> Delivery:
    return Delivery(message_id, APP, f"reg-{token}", Platform.APNS, token, b'{"aps":{}}')


def outcomes(results: list[DeliveryResult]) -> list[DeliveryOutcome]:
    return [result.outcome for result in results]


async def test_records_what_it_delivers_with_the_time() -> None:
    inbox, clock = FakeInbox(), ManualClock(START)
    simulator = SimulatorProvider(inbox, clock)
    clock.advance(timedelta(seconds=3))

    results = await simulator.send([delivery("a"), delivery("invalid-b")])

    assert outcomes(results) == [DeliveryOutcome.SENT, DeliveryOutcome.INVALID_TOKEN]
    assert inbox.recorded == [(delivery("a"), START + timedelta(seconds=3))]


async def test_discarding_mode_records_nothing() -> None:
    inbox = FakeInbox()
    results = await SimulatorProvider(inbox, ManualClock(START), record=False).send([delivery("a")])
    assert outcomes(results) == [DeliveryOutcome.SENT]
    assert inbox.recorded == []


async def test_validate_only_answers_as_a_send_and_records_nothing() -> None:
    inbox = FakeInbox()
    simulator = SimulatorProvider(inbox, ManualClock(START))
    batch = [delivery("a"), delivery("invalid-1"), delivery("rejected-1"), delivery("flaky-1")]

    checked = await simulator.send(batch, validate_only=True)
    retried = await simulator.send([delivery("flaky-1")], validate_only=True)

    assert outcomes(checked) == [
        DeliveryOutcome.SENT,
        DeliveryOutcome.INVALID_TOKEN,
        DeliveryOutcome.REJECTED,
        DeliveryOutcome.RETRY,
    ]
    assert outcomes(retried) == [DeliveryOutcome.SENT]
    assert inbox.recorded == [], "a dry run delivers nothing"


async def test_the_retry_policy_keeps_validate_only_on_its_retries() -> None:
    inbox = FakeInbox()
    simulator = SimulatorProvider(inbox, ManualClock(START))
    policy = RetryPolicy(sleep=NoSleep(), jitter=lambda: 0.0)

    [result] = await policy.send(simulator, [delivery("flaky-1")], validate_only=True)

    assert result.outcome is DeliveryOutcome.SENT
    assert inbox.recorded == []


async def test_failure_injection_by_prefix() -> None:
    simulator = SimulatorProvider(FakeInbox(), ManualClock(START), retry_after=0.2)
    invalid, flaky, rejected = await simulator.send(
        [delivery("invalid-1"), delivery("flaky-1"), delivery("rejected-1")]
    )
    assert invalid == DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "Unregistered")
    assert flaky == DeliveryResult(DeliveryOutcome.RETRY, "ServiceUnavailable", 0.2)
    assert rejected == DeliveryResult(DeliveryOutcome.REJECTED, "PayloadRejected")


async def test_apns_tokens_inject_failures_by_their_hex_prefixes() -> None:
    simulator = SimulatorProvider(FakeInbox(), ManualClock(START), retry_after=0.2)
    rest = "0" * 56
    tokens = [kind.token(Platform.APNS, rest) for kind in (INVALID, FLAKY, REJECTED)]
    assert all(len(token) == 64 and int(token, 16) for token in tokens), "valid APNs tokens"
    invalid, flaky, rejected, plain = await simulator.send(
        [delivery(token) for token in tokens] + [delivery("ab" * 32)]
    )
    assert invalid == DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "Unregistered")
    assert flaky == DeliveryResult(DeliveryOutcome.RETRY, "ServiceUnavailable", 0.2)
    assert rejected == DeliveryResult(DeliveryOutcome.REJECTED, "PayloadRejected")
    assert plain.outcome is DeliveryOutcome.SENT
    assert FLAKY.token(Platform.FCM, "phone") == "flaky-phone"


async def test_flaky_fails_once_per_message_and_token() -> None:
    simulator = SimulatorProvider(FakeInbox(), ManualClock(START))
    first = await simulator.send([delivery("flaky-1"), delivery("flaky-1", "m-2")])
    second = await simulator.send([delivery("flaky-1"), delivery("flaky-1", "m-2")])
    assert outcomes(first) == [DeliveryOutcome.RETRY] * 2
    assert outcomes(second) == [DeliveryOutcome.SENT] * 2


async def test_flaky_memory_stays_bounded() -> None:
    simulator = SimulatorProvider(FakeInbox(), ManualClock(START), flaky_memory=2)
    await simulator.send([delivery(f"flaky-{i}") for i in range(3)])
    # flaky-0 was forgotten to make room, so its next attempt fails again.
    again = await simulator.send([delivery("flaky-0"), delivery("flaky-2")])
    assert outcomes(again) == [DeliveryOutcome.RETRY, DeliveryOutcome.SENT]


async def test_retry_policy_resends_only_the_retryable_subset_keeping_order() -> None:
    sleep = NoSleep()
    policy = RetryPolicy(sleep=sleep, jitter=lambda: 0.0)
    simulator = SimulatorProvider(FakeInbox(), ManualClock(START), retry_after=0.01)
    spy = RecordingProvider(simulator)

    batch = [delivery("a"), delivery("flaky-1"), delivery("invalid-2"), delivery("flaky-3")]
    results = await policy.send(spy, batch)

    assert outcomes(results) == [
        DeliveryOutcome.SENT,
        DeliveryOutcome.SENT,
        DeliveryOutcome.INVALID_TOKEN,
        DeliveryOutcome.SENT,
    ]
    resent = [[d.device_token for d in batch] for batch in spy.batches]
    assert resent == [["a", "flaky-1", "invalid-2", "flaky-3"], ["flaky-1", "flaky-3"]]
    assert sleep.delays == [0.125]  # half the 0.25 s backoff at zero jitter; beats 0.01


def test_backoff_grows_exponentially_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=lambda: 1.0)
    assert [policy.delay(n) for n in range(4)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.delay(0, retry_after=3.0) == 3.0
    assert policy.delay(0, retry_after=120.0) == 120.0  # never before the provider allows


def test_jitter_spreads_the_delay_over_its_upper_half() -> None:
    assert RetryPolicy(base_delay=2.0, jitter=lambda: 0.0).delay(0) == 1.0
    assert RetryPolicy(base_delay=2.0, jitter=lambda: 0.5).delay(0) == 1.5


async def test_retry_policy_with_nothing_retryable_sends_once() -> None:
    provider = RecordingProvider()
    sleep = NoSleep()
    await RetryPolicy(sleep=sleep).send(provider, [delivery("a")])
    assert len(provider.batches) == 1
    assert sleep.delays == []


def throttled(retry_after: float) -> ScriptedProvider:
    return ScriptedProvider(
        lambda d: DeliveryResult(DeliveryOutcome.RETRY, "QUOTA_EXCEEDED", retry_after)
    )


async def test_retry_after_is_waited_out_in_full_up_to_five_minutes() -> None:
    provider = RecordingProvider(throttled(120.0))
    sleep = NoSleep()
    [result] = await RetryPolicy(sleep=sleep, jitter=lambda: 1.0).send(provider, [delivery("a")])
    assert sleep.delays == [120.0, 120.0, 120.0]
    assert len(provider.batches) == 4
    assert (result.outcome, result.reason) == (DeliveryOutcome.RETRY, "QUOTA_EXCEEDED")


async def test_retries_end_at_once_when_told_to_stop() -> None:
    """The run is no longer the dispatcher's: the wait ends and the pending
    delivery comes back as it was, RETRY, without another send."""
    provider = RecordingProvider(throttled(300.0))
    sleep = NoSleep()
    stop = asyncio.Event()

    async def stopped_meanwhile(seconds: float) -> None:
        stop.set()
        await asyncio.Event().wait()  # the five minutes the provider asked for

    sleep.meanwhile = stopped_meanwhile
    policy = RetryPolicy(sleep=sleep)
    [result] = await asyncio.wait_for(policy.send(provider, [delivery("a")], stop), 1)
    assert (sleep.delays, len(provider.batches)) == ([300.0], 1)
    assert (result.outcome, result.reason) == (DeliveryOutcome.RETRY, "QUOTA_EXCEEDED")


async def test_a_retry_after_over_five_minutes_is_not_retried_early() -> None:
    provider = RecordingProvider(throttled(301.0))
    sleep = NoSleep()
    [result] = await RetryPolicy(sleep=sleep).send(provider, [delivery("a")])
    assert (sleep.delays, len(provider.batches)) == ([], 1)
    assert (result.outcome, result.reason) == (DeliveryOutcome.RETRY, "QUOTA_EXCEEDED")


async def test_web_push_injection_reads_the_endpoints_last_segment() -> None:
    simulator = SimulatorProvider(FakeInbox(), ManualClock(START), record=False)
    tokens = [
        INVALID.token(Platform.WEB_PUSH, "1"),
        REJECTED.token(Platform.WEB_PUSH, "2"),
        "https://fcm.googleapis.com/fcm/send/fine",
        # A prefix elsewhere in the URL is not the subscription id's.
        "https://invalid-host.push.apple.com/abc",
    ]
    assert tokens[0].startswith("https://fcm.googleapis.com/fcm/send/invalid-")
    deliveries = [
        Delivery("m-1", APP, f"reg-{n}", Platform.WEB_PUSH, token, b"{}")
        for n, token in enumerate(tokens)
    ]
    assert outcomes(await simulator.send(deliveries)) == [
        DeliveryOutcome.INVALID_TOKEN,
        DeliveryOutcome.REJECTED,
        DeliveryOutcome.SENT,
        DeliveryOutcome.SENT,
    ]
    hms = Delivery("m-1", APP, "reg-h", Platform.HMS, INVALID.token(Platform.HMS, "x"), b"{}")
    assert outcomes(await simulator.send([hms])) == [DeliveryOutcome.INVALID_TOKEN]
