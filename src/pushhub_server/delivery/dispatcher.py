"""The dispatcher: fans one claimed run of a message out to its audience, chunk by chunk.

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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from pushhub_server.core.clock import Clock
from pushhub_server.core.errors import PushHubError
from pushhub_server.core.messages import (
    ChunkOutcome,
    Delivery,
    DeliveryOutcome,
    DeliveryResult,
    Message,
    Recipient,
    Run,
    new_delivery,
)
from pushhub_server.core.models import Platform
from pushhub_server.core.ports import AudienceReader, DeliveryProvider, MessageRepository
from pushhub_server.core.publishing import StatusSignal
from pushhub_server.core.selector import matches, parse_selector

from .payloads import PayloadRenderer
from .providers.base import RetryPolicy

_log = logging.getLogger(__name__)

# Recipients rendered without yielding to the event loop: about a millisecond.
_RENDER_SLICE = 100

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
        lease: timedelta = timedelta(seconds=60),
        retry: RetryPolicy | None = None,
    ) -> None:
        self._messages = messages
        self._audience = audience
        self._provider_for = provider_for
        self._clock = clock
        self._signal = signal
        self._chunk_size = chunk_size
        # How long a claimed run stays ours without a checkpoint; the scheduler claims
        # with it too. It must outlast one chunk, retries included.
        self.lease = lease
        self._retry = retry or RetryPolicy()

    async def run(self, run: Run) -> None:
        """Delivers one claimed run. Never raises for a delivery problem: an unexpected
        error fails the message instead. Cancelling abandons the current chunk; the
        lease then runs out and the run resumes from its last checkpoint."""
        message_id = run.message.message_id
        self._signal.notify(message_id)  # claimed: now PUBLISHING
        try:
            await self._deliver(run)
        except Exception as error:
            _log.exception("run %d of message %s failed", run.run_number, message_id)
            await self._messages.fail(
                message_id, run.run_number, _error_message(error), self._clock.now()
            )
        finally:
            self._signal.notify(message_id)

    async def _deliver(self, run: Run) -> None:
        message = run.message
        provider = await self._provider_for(message.app_id)
        # One renderer per run: it prepares each platform's payload once for every recipient.
        fanout = _Fanout(message, provider, PayloadRenderer(message.content, now=self._clock.now()))
        if not await self._send_pages(run, fanout):
            return  # cancelled (or no longer our run) meanwhile: not ours to finish
        now = self._clock.now()
        next_run_at = message.schedule.next_run_after(run.run_at, now)
        await self._messages.finish_run(message.message_id, run.run_number, next_run_at, now)

    async def _send_pages(self, run: Run, fanout: _Fanout) -> bool:
        """Sends every page after run.cursor; False when the message was cancelled."""
        chunk = await self._prepare(fanout, run.cursor)
        while chunk is not None:
            upcoming = self._prepare_ahead(fanout, chunk)
            try:
                if not await self._send_chunk(run, fanout, chunk):
                    return False
                chunk = await upcoming
            finally:
                upcoming.cancel()  # only still running when the send failed or stopped
        return True

    def _prepare_ahead(self, fanout: _Fanout, chunk: _Chunk) -> asyncio.Future[_Chunk | None]:
        """Starts preparing the chunk after `chunk`, so it overlaps the send."""
        if not chunk.full:  # a short page is the last one
            done: asyncio.Future[_Chunk | None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return asyncio.ensure_future(self._prepare(fanout, chunk.outcome.cursor))

    async def _prepare(self, fanout: _Fanout, after_id: str | None) -> _Chunk | None:
        """The page after `after_id`, rendered; None when there is none."""
        message = fanout.message
        page = await self._audience.page(
            message.app_id, message.audience, after_id, self._chunk_size, self._clock.now()
        )
        if not page:
            return None
        outcome = ChunkOutcome(cursor=page[-1].registration_id)
        deliveries: list[Delivery] = []
        for start in range(0, len(page), _RENDER_SLICE):
            if start:
                # Let other work in: RPCs wait for the loop while a chunk renders.
                await asyncio.sleep(0)
            deliveries += fanout.deliveries(page[start : start + _RENDER_SLICE], outcome)
        return _Chunk(outcome, deliveries, len(page) == self._chunk_size)

    async def _send_chunk(self, run: Run, fanout: _Fanout, chunk: _Chunk) -> bool:
        """Sends one chunk and stores its checkpoint; False when the message was cancelled."""
        outcome = chunk.outcome
        if chunk.deliveries:
            results = await self._retry.send(fanout.provider, chunk.deliveries)
            _classify(chunk.deliveries, results, outcome)
        message_id = run.message.message_id
        recorded = await self._messages.record_chunk(
            message_id, run.run_number, outcome, self._clock.now(), self.lease
        )
        self._signal.notify(message_id)
        return recorded


@dataclass
class _Chunk:
    """One page of the audience, rendered: what to send, and its counts so far."""

    outcome: ChunkOutcome
    deliveries: list[Delivery]
    # A full page: another may follow.
    full: bool


@dataclass
class _Fanout:
    """What stays the same for every chunk of one run."""

    message: Message
    provider: DeliveryProvider
    renderer: PayloadRenderer

    def deliveries(self, page: Sequence[Recipient], outcome: ChunkOutcome) -> list[Delivery]:
        """The page's rendered deliveries; counts targets and render failures in outcome.

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
        deliveries = []
        append = deliveries.append
        for recipient in page:
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
                _count_failure(outcome, platform, error.reason)
                continue
            append(
                new_delivery(
                    message_id, app_id, recipient.registration_id, platform, token, body, headers
                )
            )
        return deliveries

    def _selects(self, selector: str) -> bool:
        try:
            # parse_selector caches by text, so each distinct selector is parsed once.
            return matches(parse_selector(selector), self.message.content.headers)
        except PushHubError:
            # Stored selectors were validated; one the parser no longer accepts matches nothing.
            return False


def _classify(
    deliveries: Sequence[Delivery], results: Sequence[DeliveryResult], outcome: ChunkOutcome
) -> None:
    """Counts sent and failed results; still-RETRY ones ran out of attempts and failed."""
    sent = outcome.sent
    for delivery, result in zip(deliveries, results, strict=True):
        if result.outcome is DeliveryOutcome.SENT:
            sent[delivery.platform] = sent.get(delivery.platform, 0) + 1
            continue
        if result.outcome is DeliveryOutcome.INVALID_TOKEN:
            outcome.invalid_registration_ids.append(delivery.registration_id)
        _count_failure(outcome, delivery.platform, result.reason or result.outcome.name)


def _count_failure(outcome: ChunkOutcome, platform: Platform, reason: str) -> None:
    _add(outcome.failed, platform)
    outcome.failure_reasons[reason] = outcome.failure_reasons.get(reason, 0) + 1


def _add(counts: dict[Platform, int], platform: Platform) -> None:
    counts[platform] = counts.get(platform, 0) + 1


def _error_message(error: Exception) -> str:
    return f"delivery stopped by an unexpected error: {type(error).__name__}: {error}"
