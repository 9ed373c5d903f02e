"""The dispatcher: fans one claimed run of a message out to its audience, chunk by chunk.

A claimed run is one partition of the message's run (docs/fleet.md): the
registration ids after Run.cursor up to its partition's last id. Other
partitions go to other dispatchers, in this process or another; all that is
said below of a run holds per partition.

From one partition to the next: a few chunks before a partition's end (or at
its last page, when its size is not known), the dispatcher claims another
partition of the same message and reads its first page while the last chunks
are sent, then goes on with it once the partition is finished, so the
pipeline does not empty at every partition's end (a claim, a page read and
rendered: tens of milliseconds on PostgreSQL, where a chunk is a few). The
next partition's chunks are sent only after the current one's last
checkpoint, so a process still has one chunk of a message in flight, and a
partition that stops gives the one claimed ahead back (its lease ended) for
anyone to claim at once.

Per chunk (one keyset page of the audience): leave out registrations whose
selector the message's headers do not satisfy, render each payload, send,
retry the retryable subset (RetryPolicy), classify the results, then store the
counters, the invalidated registrations and the checkpoint in one transaction
(MessageRepository.record_chunk). A restart resumes after the last checkpoint,
so at most one chunk is sent twice. Nothing is kept across chunks, so memory
stays flat however large the audience. The next page is read and rendered while
the current one is being sent: the sending runs on the HTTP/2 client's own thread,
so the event loop is free meanwhile. Only sending waits for the previous
checkpoint, which keeps the at-most-one-chunk bound.

Keeping the claim: a claimed run is the dispatcher's while its lease lasts, and
a heartbeat renews the lease every third of it, whatever the chunk in flight is
doing (retries, a provider's Retry-After, transfer timeouts). So a live
dispatcher never loses its run to a slow chunk; only one that is gone (a crash,
a stop, a database out for longer than the lease) lets the lease run out, and
then any server may claim the run and resume it after its checkpoint. Every
claim takes a new claim number (Run.claim) and the store refuses the writes of
an older one, so a dispatcher that lost its run anyway (its heartbeats could
not reach the database) has its next checkpoint refused and stops. And the
scheduler never claims a message its own process is dispatching.

Rendering: a recipient whose payload cannot be rendered (its template, its
metadata) fails alone, counted under the renderer's reason, or
PAYLOAD_UNRENDERABLE for an error the renderer did not expect; the others are
sent. Only a message whose content cannot be prepared for anyone fails, with a
fixed error_message (the exception goes to the log, not to the client).
Rendering yields to the event loop every _SLICE_SECONDS, whatever a recipient
costs, and each distinct selector text is evaluated once per run: the headers
it reads are the message's, the same for every recipient.

Failures: any other error (the database, a provider that raised) stops this
dispatcher and leaves the run to be resumed from its last checkpoint once the
lease runs out; nothing about it reaches the message's error_message. An error that
comes back every time (a bug, not a blip) would resume the run forever, so a
run stopped that way _STOPS_BEFORE_FAILING times in a row in this process
without progress fails, naming only the error's type. Without progress means
from the same starting point (slot and checkpoint): a big fan-out that moves
on between occasional blips, or a repeat with a blip now and then, goes on.
A database outage (DATABASE_UNAVAILABLE) never counts: the run waits it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pushhub_server.core.clock import Clock
from pushhub_server.core.delivery_metrics import (
    NO_DELIVERY_METRICS,
    FailureKind,
    NotificationCounts,
)
from pushhub_server.core.delivery_tracing import NO_DELIVERY_TRACING
from pushhub_server.core.errors import PushHubError, is_database_unavailable
from pushhub_server.core.messages import (
    ChunkOutcome,
    Delivery,
    DeliveryOutcome,
    DeliveryResult,
    Message,
    MessageState,
    Recipient,
    Run,
    new_delivery,
)
from pushhub_server.core.ports import (
    AudienceReader,
    DeliveryMetrics,
    DeliveryProvider,
    DeliveryTracing,
    MessageRepository,
    StatusSignal,
)
from pushhub_server.core.selector import matches, parse_selector

from .payloads import PayloadRenderer
from .retry_policy import RetryPolicy

_log = logging.getLogger(__name__)

# Seconds of rendering between two yields to the event loop. The clock is read
# after every recipient, so a slice ends at most one recipient's cost later: a
# few milliseconds at worst (a distinct 1,024-character selector, a 4 KiB
# template seen for the first time); benchmarks/conditional_delivery.py measures it.
_SLICE_SECONDS = 0.001
# The failure reason of a recipient whose payload raised what the renderer did
# not expect (a registration stored before today's checks, a renderer bug).
PAYLOAD_UNRENDERABLE = "PayloadUnrenderable"
# Selector texts whose result a run remembers: beyond it the oldest are
# forgotten (and evaluated again if met again), so memory stays flat.
_SELECTORS_REMEMBERED = 4096
# The error_message of a message whose content cannot be rendered for anyone.
_UNRENDERABLE = "the message could not be rendered for any recipient"
# A run that stops with an error this many times in a row, without progress, is
# failed, not resumed again.
_STOPS_BEFORE_FAILING = 5
# Messages whose stops are remembered: the oldest are forgotten beyond it, so a
# process that sees many messages stop (a database out) keeps its memory flat.
_STOPS_REMEMBERED = 1000
# Where a run's partition started: its slot and the checkpoint it resumed after.
_Start = tuple[datetime, str | None]
# How many chunks before a partition's end (when its size is known) the next
# partition is claimed: a claim, with the cut's index scan, took as long as two
# to five chunks' sends (benchmarks/partition_switch.py).
_AHEAD_CHUNKS = 3
# A partition of a message: (message id, partition number).
_PartitionKey = tuple[str, int]

# The provider that delivers for an app (APNs/FCM with credentials, else the simulator).
ProviderFor = Callable[[str], Awaitable[DeliveryProvider]]


class Dispatcher:
    def __init__(
        self,
        messages: MessageRepository,
        audience: AudienceReader,
        provider_for: ProviderFor,
        clock: Clock,
        signal: StatusSignal,
        *,
        chunk_size: int = 1000,
        partition_size: int = 0,
        lease: timedelta = timedelta(seconds=60),
        heartbeat: timedelta | None = None,
        retry: RetryPolicy | None = None,
        metrics: DeliveryMetrics = NO_DELIVERY_METRICS,
        tracing: DeliveryTracing = NO_DELIVERY_TRACING,
    ) -> None:
        self._messages = messages
        self._audience = audience
        self._provider_for = provider_for
        self._clock = clock
        self._signal = signal
        self._chunk_size = chunk_size
        # Registrations read since a partition's claim after which the next one is
        # claimed (a claim outlasts one chunk's send): _AHEAD_CHUNKS before the end
        # of a partition cut at partition_size (the store's setting) and claimed
        # from its start. 0: at its last page only; a partition resumed midway, or
        # one of a filtered audience, also reaches its last page first.
        self._claim_ahead_at = max(partition_size - _AHEAD_CHUNKS * chunk_size, 0)
        # How long a claimed run stays ours without a renewal; the scheduler claims
        # with it too. The heartbeat renews it three times per lease, so one renewal
        # may fail (a database blip) without the run being claimed again.
        self.lease = lease
        self._heartbeat = (heartbeat or lease / 3).total_seconds()
        self._retry = retry or RetryPolicy()
        self._metrics = metrics
        self._tracing = tracing
        # Per partition, where its stopped run started and how many stops in a row
        # started there (see the module docstring); oldest first.
        self._stops: dict[_PartitionKey, tuple[_Start, int]] = {}

    async def run(self, run: Run) -> None:
        """Delivers one claimed partition, then the partitions of the same message
        it claims on the way (see _Ahead); never raises. A message that cannot be
        rendered for anyone fails; any other error, or cancelling, stops the
        partition where it is: the lease then runs out and it resumes from its last
        checkpoint."""
        claim: _Claim | None = self._hold(run)
        fanout: _Fanout | None = None
        while claim is not None:
            claim, fanout = await self._run_partition(claim, fanout)
            if claim is not None and _cancelling():
                # Stopping (a shutdown's cancel can land while a heartbeat is being
                # stopped, and be absorbed there): the partition claimed ahead is
                # not started; it resumes elsewhere once its lease runs out.
                await _stop(claim.heartbeat)
                if claim.first is not None:
                    claim.first.cancel()
                raise asyncio.CancelledError

    def _hold(self, run: Run) -> _Claim:
        """Starts keeping a claimed partition: its log line and its heartbeat."""
        _log.info("claim %d of message %s: partition %d claimed", *_described(run))
        self._signal.notify(run.message.message_id)  # claimed: now PUBLISHING
        lost = asyncio.Event()
        heartbeat = asyncio.get_running_loop().create_task(self._keep_claim(run, lost))
        return _Claim(run, lost, heartbeat)

    async def _run_partition(
        self, claim: _Claim, fanout: _Fanout | None
    ) -> tuple[_Claim | None, _Fanout | None]:
        """Delivers one partition; returns the next one, claimed meanwhile (if any),
        and the fanout it goes on with."""
        run = claim.run
        message_id = run.message.message_id
        ahead = _Ahead(lambda shared: self._claim_ahead(claim, shared), self._give_back)
        self._metrics.run_started()
        try:
            with self._tracing.run(run.message, run.claim):
                if fanout is None:
                    fanout = await self._fanout_or_fail(run)
                delivered = fanout is not None and await self._deliver(claim, fanout, ahead)
            self._stops.pop(_key(run), None)
            if delivered:
                return await ahead.take(), fanout
        except Exception as error:
            _log.error(
                "claim %d of message %s (partition %d) stopped; it resumes from its last"
                " checkpoint once its lease runs out",
                run.claim,
                message_id,
                run.partition.number,
                # An outage is one line (the health service logs it too), a bug a traceback.
                exc_info=None if is_database_unavailable(error) else error,
            )
            await self._after_stop(run, error)
        finally:
            self._metrics.run_ended()
            await _stop(claim.heartbeat)
            await ahead.drop()
            self._signal.notify(message_id)
        return None, fanout

    async def _after_stop(self, run: Run, error: Exception) -> None:
        if is_database_unavailable(error):
            return  # an outage is no fault of the message: it never counts towards failing it
        message_id = run.message.message_id
        stops = self._count_stop(run)
        if stops < _STOPS_BEFORE_FAILING:
            return
        del self._stops[_key(run)]
        # The error's own text stays in the log: error_message is for clients.
        reason = f"delivery stopped {stops} times in a row without progress; see the server log"
        try:
            if await self._messages.fail(message_id, run.claim, reason, self._clock.now()):
                self._metrics.message_ended(MessageState.FAILED)
        except Exception:
            # The store may be what keeps failing: the run resumes, and counts again.
            _log.exception("could not mark message %s failed", message_id)

    def _count_stop(self, run: Run) -> int:
        """Counts a stop of run: one more when the stop before started where this
        run did (no progress since), else the first in a row."""
        key = _key(run)
        start = (run.run_at, run.cursor)
        # Popped and put back, so the dict stays ordered from the oldest stop.
        earlier = self._stops.pop(key, None)
        stops = earlier[1] + 1 if earlier is not None and earlier[0] == start else 1
        self._stops[key] = (start, stops)
        if len(self._stops) > _STOPS_REMEMBERED:
            del self._stops[next(iter(self._stops))]
        return stops

    async def _keep_claim(self, run: Run, lost: asyncio.Event) -> None:
        """Renews the lease every heartbeat until the run ends, however long a chunk
        takes. Once the store says the claim is no longer live (cancelled or claimed
        again) it sets `lost`, which ends a chunk's retries at once, and ends: the
        chunk's checkpoint then stops the run."""
        message_id = run.message.message_id
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                if not await self._messages.renew_lease(
                    message_id, run.claim, self._clock.now(), self.lease
                ):
                    lost.set()
                    return
            except Exception as error:
                # The next heartbeat tries again: the lease outlasts one missed renewal.
                _log.warning(
                    "renewing the lease of message %s failed: %s",
                    message_id,
                    error,
                    exc_info=not is_database_unavailable(error),
                )

    async def _fanout_or_fail(self, run: Run) -> _Fanout | None:
        """What every partition of the message's run shares; None (and the message
        failed) when its content cannot be rendered for anyone."""
        message_id = run.message.message_id
        try:
            # One renderer per run: it prepares each platform's payload once for everyone.
            renderer = PayloadRenderer(run.message.content, now=self._clock.now())
        except Exception:
            # Its content, the same for every recipient: resuming could never cure it.
            _log.exception("message %s cannot be rendered for any recipient", message_id)
            if await self._messages.fail(message_id, run.claim, _UNRENDERABLE, self._clock.now()):
                self._metrics.message_ended(MessageState.FAILED)  # once, whichever partition
            return None
        provider = await self._provider_for(run.message.app_id)
        return _Fanout(run.message, provider, renderer)

    async def _deliver(self, claim: _Claim, fanout: _Fanout, ahead: _Ahead) -> bool:
        """Sends the partition and ends it; False when it had to stop (the message
        was cancelled, or the partition claimed again): not ours to finish."""
        run = claim.run
        message = run.message
        if not await self._send_pages(claim, fanout, ahead):
            return False
        now = self._clock.now()
        next_run_at = message.schedule.next_run_after(run.run_at, now)
        ended = await self._messages.finish_run(message.message_id, run.claim, next_run_at, now)
        if ended and next_run_at is None:
            self._metrics.message_ended(MessageState.PUBLISHED)
        _log.info("claim %d of message %s: partition %d delivered", *_described(run))
        return True

    async def _send_pages(self, claim: _Claim, fanout: _Fanout, ahead: _Ahead) -> bool:
        """Sends every page of the partition after its cursor; False when it had to
        stop. Near its end (see _claim_ahead_at), or once its last page is read,
        the next partition is claimed and its first page read while this one's
        last chunks are sent (_Ahead)."""
        run = claim.run
        first = claim.first or asyncio.ensure_future(
            self._prepare(fanout, run.cursor, run.partition.last_id)
        )
        try:
            chunk = await first
        finally:
            first.cancel()  # only still running when this task was cancelled
        read = 0
        while chunk is not None:
            read += chunk.read
            if chunk.last or 0 < self._claim_ahead_at <= read:
                ahead.start(fanout)
            upcoming = self._prepare_ahead(fanout, run.partition.last_id, chunk, ahead)
            try:
                if not await self._send_chunk(claim, fanout, chunk):
                    return False
                chunk = await upcoming
            finally:
                upcoming.cancel()  # only still running when the send failed or stopped
        ahead.start(fanout)  # an empty partition: nothing was read ahead
        return True

    def _prepare_ahead(
        self, fanout: _Fanout, last_id: str | None, chunk: _Chunk, ahead: _Ahead
    ) -> asyncio.Future[_Chunk | None]:
        """Starts preparing the chunk after `chunk`, so it overlaps the send."""
        if chunk.last:
            done: asyncio.Future[_Chunk | None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return asyncio.ensure_future(self._prepare_then_look(fanout, chunk, last_id, ahead))

    async def _prepare_then_look(
        self, fanout: _Fanout, chunk: _Chunk, last_id: str | None, ahead: _Ahead
    ) -> _Chunk | None:
        """The next chunk; when it is the partition's last, the next partition is
        claimed at once, while the chunk before is still being sent."""
        upcoming = await self._prepare(fanout, chunk.outcome.cursor, last_id)
        if upcoming is None or upcoming.last:
            ahead.start(fanout)
        return upcoming

    async def _claim_ahead(self, claim: _Claim, fanout: _Fanout) -> _Claim | None:
        """Claims another partition of claim's message and starts reading its first
        page; None when there is none to claim (done, or other servers have them).
        The partition open to the end of the audience is the last one cut: after
        it, the scheduler's next round finds any partition left behind (so SQLite,
        one partition a run, never pays for a claim that finds nothing)."""
        run = claim.run
        if run.partition.last_id is None:
            return None
        now = self._clock.now()
        successor = await self._messages.claim_partition(run.message, run.claim, now, self.lease)
        if successor is None:
            return None
        self._metrics.run_claimed((now - successor.run_at).total_seconds())
        held = self._hold(successor)
        held.first = asyncio.ensure_future(
            self._prepare(fanout, successor.cursor, successor.partition.last_id)
        )
        return held

    async def _give_back(self, claim: _Claim) -> None:
        """Ends the lease of a partition claimed ahead and never started, so any
        server claims it at once, not a lease later."""
        run = claim.run
        if claim.first is not None:
            claim.first.cancel()
        await _stop(claim.heartbeat)
        message_id = run.message.message_id
        try:
            await self._messages.renew_lease(message_id, run.claim, self._clock.now(), timedelta(0))
        except Exception as error:
            _log.warning("giving back a partition of message %s failed: %s", message_id, error)
            return
        _log.info("claim %d of message %s: partition %d given back", *_described(run))

    async def _prepare(
        self, fanout: _Fanout, after_id: str | None, last_id: str | None
    ) -> _Chunk | None:
        """The page after `after_id` up to `last_id` (the partition's end), rendered;
        None when there is none."""
        message = fanout.message
        renderer = fanout.renderer
        page = await self._audience.page(
            message.app_id,
            message.audience,
            after_id,
            self._chunk_size,
            self._clock.now(),
            with_metadata=renderer.uses_metadata,
            with_templates=renderer.uses_templates,
            last_id=last_id,
        )
        if not page:
            return None
        cursor = page[-1].registration_id
        read = len(page)
        outcome = ChunkOutcome(cursor=cursor)
        # A short page, or one that reached the partition's end, is its last: no
        # empty page is read to find out.
        last = read < self._chunk_size or cursor == last_id
        # Consumed as rendered: each recipient, with what it decoded, is freed in
        # its slice, not all at once (a page of large metadata is tens of MB).
        pending = deque(page)
        del page
        deliveries: list[Delivery] = []
        fanout.render(pending, time.perf_counter() + _SLICE_SECONDS, outcome, deliveries)
        while pending:
            # Let other work in: RPCs wait for the loop while a chunk renders.
            await asyncio.sleep(0)
            fanout.render(pending, time.perf_counter() + _SLICE_SECONDS, outcome, deliveries)
        return _Chunk(outcome, deliveries, last, read)

    async def _send_chunk(self, claim: _Claim, fanout: _Fanout, chunk: _Chunk) -> bool:
        """Sends one chunk and stores its checkpoint; False when the run must stop."""
        run = claim.run
        with self._tracing.chunk(run.message, len(chunk.deliveries)):
            outcome = chunk.outcome
            self._metrics.chunk_counted(await self._send(fanout, chunk, claim.lost))
            message_id = run.message.message_id
            recorded = await self._messages.record_chunk(
                message_id, run.claim, outcome, self._clock.now(), self.lease
            )
        self._signal.notify(message_id)
        return recorded

    async def _send(
        self, fanout: _Fanout, chunk: _Chunk, lost: asyncio.Event
    ) -> NotificationCounts:
        """Sends the chunk's deliveries, retries included, and counts their results
        in its outcome; returns them counted for metrics, once per chunk."""
        outcome = chunk.outcome
        # What failed before sending failed to render (core.delivery_metrics).
        counts = NotificationCounts(sent=outcome.sent)
        for platform, unrendered in outcome.failed.items():
            counts.count_failed(platform, FailureKind.UNRENDERABLE, unrendered)
        if chunk.deliveries:
            results = await self._retry.send(
                fanout.provider, chunk.deliveries, lost, on_retry=counts.count_resent
            )
            _classify(chunk.deliveries, results, outcome, counts)
        return counts


@dataclass
class _Chunk:
    """One page of the audience, rendered: what to send, and its counts so far."""

    outcome: ChunkOutcome
    deliveries: list[Delivery]
    # The partition's last page: none follows.
    last: bool
    # Registrations on the page, before selectors left some out.
    read: int


@dataclass
class _Claim:
    """A claimed partition: its run, its heartbeat, and (when claimed ahead) the
    reading of its first page."""

    run: Run
    # Set when the partition is no longer ours (cancelled, claimed again): retries stop.
    lost: asyncio.Event
    heartbeat: asyncio.Task[None]
    first: asyncio.Future[_Chunk | None] | None = None


class _Ahead:
    """The next partition of a message, claimed while the current one's last
    chunks are sent, so the pipeline never empties at a partition's end
    (docs/fleet.md). Its chunks are sent only once the current partition is
    finished: a process still sends one chunk of a message at a time, and a crash
    re-sends at most that one. When the current partition stops instead, the
    next one is given back at once (its lease ended), for anyone to claim."""

    def __init__(
        self,
        claim_next: Callable[[_Fanout], Awaitable[_Claim | None]],
        give_back: Callable[[_Claim], Awaitable[None]],
    ) -> None:
        self._claim_next = claim_next
        self._give_back = give_back
        self._task: asyncio.Future[_Claim | None] | None = None

    def start(self, fanout: _Fanout) -> None:
        """Claims the next partition, once."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._claim_next(fanout))

    async def take(self) -> _Claim | None:
        """The next partition, now the caller's to deliver."""
        task = self._task
        if task is None:
            return None
        try:
            claim = await task
        except Exception as error:
            # The scheduler claims it (or another) on its next round instead.
            _log.warning("claiming the next partition failed: %s", error)
            claim = None
        # Only now: cancelled while waiting, drop() still gives the claim back.
        self._task = None
        return claim

    async def drop(self) -> None:
        """Gives back a partition claimed ahead and not taken. A claim in flight is
        let finish, not cancelled inside its transaction, then given back; one
        cancelled anyway (the process stopping) may have committed unseen: that
        partition waits out its lease."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(Exception, asyncio.CancelledError):
            claim = await task
            if claim is not None:
                await self._give_back(claim)


@dataclass
class _Fanout:
    """What stays the same for every chunk of one run, across its partitions."""

    message: Message
    provider: DeliveryProvider
    renderer: PayloadRenderer
    # Selector text -> whether the message's headers satisfy it (see the module docstring).
    selected: dict[str, bool] = field(default_factory=dict)
    # An unexpected render error is logged once per run, not once per recipient.
    unrenderable_logged: bool = False

    def render(
        self,
        pending: deque[Recipient],
        deadline: float,
        outcome: ChunkOutcome,
        deliveries: list[Delivery],
    ) -> None:
        """Takes recipients from pending and renders them into deliveries until
        `deadline` (time.perf_counter) passes, at least one. Counts targets and
        render failures in outcome.

        Runs once per recipient, so it reads a recipient's metadata and templates only
        when the message uses them (the store decodes them on first use), and keeps
        everything else in locals.
        """
        message_id = self.message.message_id
        app_id = self.message.app_id
        render = self.renderer.body_and_headers
        uses_metadata = self.renderer.uses_metadata
        uses_templates = self.renderer.uses_templates
        targeted = outcome.targeted
        append = deliveries.append
        clock = time.perf_counter
        take = pending.popleft
        first = True
        while pending:
            if not first and clock() > deadline:
                return
            first = False
            recipient = take()
            selector = recipient.selector
            if selector and not self._selects(selector):
                continue  # conditional delivery: not part of this message's audience
            platform = recipient.platform
            targeted[platform] = targeted.get(platform, 0) + 1
            token = recipient.device_token
            try:
                body, headers = render(
                    platform,
                    token,
                    recipient.metadata if uses_metadata else None,
                    recipient.templates if uses_templates else None,
                )
            except PushHubError as error:
                outcome.count_failure(platform, error.reason)
                continue
            except Exception:  # noqa: BLE001 - this recipient's problem, not the message's
                self._log_unrenderable(recipient)
                outcome.count_failure(platform, PAYLOAD_UNRENDERABLE)
                continue
            append(
                new_delivery(
                    message_id,
                    app_id,
                    recipient.registration_id,
                    platform,
                    token,
                    body,
                    headers,
                    recipient.web_push_keys,
                )
            )

    def _selects(self, selector: str) -> bool:
        selected = self.selected.get(selector)
        if selected is None:
            try:
                selected = matches(parse_selector(selector), self.message.content.headers)
            except PushHubError:
                # Stored selectors were validated; one the parser no longer accepts
                # matches nothing.
                selected = False
            if len(self.selected) >= _SELECTORS_REMEMBERED:
                del self.selected[next(iter(self.selected))]
            self.selected[selector] = selected
        return selected

    def _log_unrenderable(self, recipient: Recipient) -> None:
        if not self.unrenderable_logged:
            self.unrenderable_logged = True
            _log.warning(
                "registration %s cannot be rendered for message %s; counted as %s"
                " (later ones of this run are counted without a log line)",
                recipient.registration_id,
                self.message.message_id,
                PAYLOAD_UNRENDERABLE,
                exc_info=True,
            )


def _cancelling() -> bool:
    """Whether the running task has been asked to stop (even if the CancelledError
    was absorbed on the way)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _stop(task: asyncio.Future[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _key(run: Run) -> _PartitionKey:
    return run.message.message_id, run.partition.number


def _described(run: Run) -> tuple[int, str, int]:
    """The claim, message and partition a log line names."""
    return run.claim, run.message.message_id, run.partition.number


def _classify(
    deliveries: Sequence[Delivery],
    results: Sequence[DeliveryResult],
    outcome: ChunkOutcome,
    counts: NotificationCounts,
) -> None:
    """Counts sent and failed results; still-RETRY ones ran out of attempts, or the
    run was lost before they could be retried, and failed. Failures are counted for
    metrics too, under their FailureKind."""
    sent = outcome.sent
    for delivery, result in zip(deliveries, results, strict=True):
        if result.outcome is DeliveryOutcome.SENT:
            sent[delivery.platform] = sent.get(delivery.platform, 0) + 1
            continue
        if result.outcome is DeliveryOutcome.INVALID_TOKEN:
            outcome.invalid_registration_ids.append(delivery.registration_id)
        outcome.count_failure(delivery.platform, result.reason or result.outcome.name)
        counts.count_failed(delivery.platform, _FAILURE_KINDS[result.outcome])


_FAILURE_KINDS = {
    DeliveryOutcome.INVALID_TOKEN: FailureKind.INVALID_TOKEN,
    DeliveryOutcome.REJECTED: FailureKind.REJECTED,
    DeliveryOutcome.RETRY: FailureKind.RETRIES_EXHAUSTED,
}
