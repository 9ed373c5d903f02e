"""The scheduler: claims due runs of messages and hands them to the dispatcher.

It sleeps until the earliest scheduled run falls due, at most poll_interval
(other server processes publish too, and crashed runs' leases run out), or
until wake() says a message was just published. It never busy-polls. On start
it first runs whatever fell due while the server was down; missed repeats of a
message merge into that one run (Schedule.next_run_after), except a repeat more
than a lease past its repeat_expires_at, which ends PUBLISHED (Schedule.expired_by).

A claim is of one partition of a run (docs/fleet.md): up to max_runs
partitions of different messages are dispatched at once, so one large fan-out
does not hold up a message that falls due meanwhile; the other partitions of a
large fan-out are left to the other servers, and to this one once it is done
with its current partition (a finished run wakes the loop).

It never claims a partition of a message one of its own dispatchers is running,
even once that partition's lease ran out (its heartbeats could not reach the
database): that dispatcher is alive and carries on, and claiming the partition
again here would send its chunks twice. Other servers may claim it then; the
claim numbers decide who may write (see delivery.dispatcher).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pushhub_server.core.clock import Clock, SystemTimer, Timer
from pushhub_server.core.delivery_metrics import NO_DELIVERY_METRICS
from pushhub_server.core.errors import is_database_unavailable
from pushhub_server.core.messages import MessageState, Run
from pushhub_server.core.ports import DeliveryMetrics, MessageRepository

from .dispatcher import Dispatcher

_log = logging.getLogger(__name__)

# Shortest sleep, so a store whose next_due_at stays in the past cannot make us spin.
_MIN_SLEEP = 0.05


class Scheduler:
    def __init__(
        self,
        messages: MessageRepository,
        dispatcher: Dispatcher,
        clock: Clock,
        *,
        poll_interval: float = 5.0,
        max_runs: int = 4,
        metrics: DeliveryMetrics = NO_DELIVERY_METRICS,
        timer: Timer | None = None,
    ) -> None:
        self._messages = messages
        self._dispatcher = dispatcher
        self._clock = clock
        self._timer = timer or SystemTimer()
        self._poll_interval = poll_interval
        self._max_runs = max_runs
        self._metrics = metrics
        self._wake = asyncio.Event()
        # The runs in progress here, and the message each one delivers a partition of.
        self._active: dict[asyncio.Task[None], str] = {}
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stops claiming and abandons the chunks in flight; their leases make them resume."""
        tasks = [task for task in (self._loop_task, *self._active) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop_task = None

    def wake(self) -> None:
        """Look for due runs now (called after a publish)."""
        self._wake.set()

    async def run_due(self) -> int:
        """Claims the due runs there is room for, dispatches them and waits for them;
        returns how many were claimed."""
        started = await self._start_due()
        await asyncio.gather(*started)
        return len(started)

    async def _loop(self) -> None:
        while True:
            # Cleared before claiming, so a wake() during the claim is not lost.
            self._wake.clear()
            try:
                await self._start_due()
                timeout = await self._sleep_seconds()
            except Exception as error:
                # The database may be briefly unavailable; the loop must outlive it.
                if is_database_unavailable(error):
                    _log.warning("claiming due messages failed: %s", error)
                else:
                    _log.exception("claiming due messages failed")
                timeout = self._poll_interval
            await self._timer.wait(self._wake, timeout)

    async def _start_due(self) -> list[asyncio.Task[None]]:
        room = self._max_runs - len(self._active)
        if room <= 0:
            return []
        now = self._clock.now()
        claims = await self._messages.claim_due(
            now, self._dispatcher.lease, room, exclude=set(self._active.values())
        )
        for _ in claims.ended:
            self._metrics.message_ended(MessageState.PUBLISHED)  # too late to start: ended
        runs = claims.runs
        for run in runs:
            # From the slot's due time: a run resumed after a crash counts the lease it
            # waited out, which is lag too.
            self._metrics.run_claimed((now - run.run_at).total_seconds())
        return [self._start(run) for run in runs]

    def _start(self, run: Run) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._dispatcher.run(run))
        self._active[task] = run.message.message_id
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        del self._active[task]
        self.wake()  # a slot is free: something may be waiting for it

    async def _sleep_seconds(self) -> float:
        if len(self._active) >= self._max_runs:
            return self._poll_interval  # a finishing run wakes us
        # Partitions of the messages running here are not ours to claim, due or not.
        next_due = await self._messages.next_due_at(exclude=set(self._active.values()))
        if next_due is None:
            return self._poll_interval
        until_due = (next_due - self._clock.now()).total_seconds()
        return min(self._poll_interval, max(until_due, _MIN_SLEEP))
