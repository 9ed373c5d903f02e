"""InProcessStatusSignal: notify wakes every waiter of that id, timeouts, no leaked state."""

from __future__ import annotations

import asyncio

from pushhub_server.delivery.status_signal import InProcessStatusSignal


async def test_notify_wakes_every_waiter_of_that_message_only() -> None:
    signal = InProcessStatusSignal()
    first = asyncio.create_task(signal.wait("m-1", 5))
    second = asyncio.create_task(signal.wait("m-1", 5))
    other = asyncio.create_task(signal.wait("m-2", 5))
    await asyncio.sleep(0)

    signal.notify("m-1")
    await asyncio.wait_for(asyncio.gather(first, second), 1)

    assert not other.done()
    other.cancel()
    await asyncio.gather(other, return_exceptions=True)
    assert signal._waiters == {}


async def test_wait_returns_after_the_timeout_without_a_notify() -> None:
    signal = InProcessStatusSignal()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await signal.wait("m-1", 0.05)
    assert loop.time() - started >= 0.04
    assert signal._waiters == {}


async def test_a_notify_with_nobody_waiting_is_not_remembered() -> None:
    signal = InProcessStatusSignal()
    signal.notify("m-1")
    assert signal._waiters == {}
    waiting = asyncio.create_task(signal.wait("m-1", 5))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # an earlier notify does not satisfy a later wait
    signal.notify("m-1")
    await asyncio.wait_for(waiting, 1)


async def test_a_waiter_that_starts_after_a_notify_survives_the_earlier_waiters_cleanup() -> None:
    signal = InProcessStatusSignal()
    early = asyncio.create_task(signal.wait("m-1", 5))
    await asyncio.sleep(0)
    signal.notify("m-1")
    late = asyncio.create_task(signal.wait("m-1", 5))
    await asyncio.sleep(0)
    await early  # its cleanup must not drop the late waiter
    signal.notify("m-1")
    await asyncio.wait_for(late, 1)
    assert signal._waiters == {}


async def test_a_listener_keeps_a_notify_that_comes_between_its_waits() -> None:
    # A watcher reads the status, then waits: a change during the read must not be lost.
    signal = InProcessStatusSignal()
    listener = signal.listen("m-1")
    signal.notify("m-1")  # while the watcher is "reading"
    await asyncio.wait_for(listener.wait(5), 0.5)  # returns at once
    waiting = asyncio.create_task(listener.wait(5))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # the remembered notify was used up
    signal.notify("m-1")
    await asyncio.wait_for(waiting, 1)
    listener.close()
    assert signal._waiters == {}


async def test_a_listener_times_out_and_hears_only_its_message() -> None:
    signal = InProcessStatusSignal()
    listener = signal.listen("m-1")
    signal.notify("m-2")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await listener.wait(0.05)
    assert loop.time() - started >= 0.04
    listener.close()
    listener.close()  # idempotent
    assert signal._waiters == {}


async def test_notify_all_wakes_the_waiters_of_every_message() -> None:
    signal = InProcessStatusSignal()
    waiters = [asyncio.create_task(signal.wait(f"m-{n}", 60)) for n in range(3)]
    await asyncio.sleep(0)

    signal.notify_all()

    await asyncio.wait_for(asyncio.gather(*waiters), 5)
