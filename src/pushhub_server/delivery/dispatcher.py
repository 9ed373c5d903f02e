"""The dispatcher: fans one claimed run of a message out to its audience, chunk by chunk.

Per chunk (one keyset page of the audience): leave out registrations whose
selector the message's headers do not satisfy, render each payload, send,
retry the retryable subset (RetryPolicy), classify the results, then store the
counters, the invalidated registrations and the checkpoint in one transaction
(MessageRepository.record_chunk). A restart resumes after the last checkpoint,
so at most one chunk is sent twice. Nothing is kept across chunks, so memory
stays flat however large the audience; the next page is read while the current
one is being sent.
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
        page = await self._page(run.message, run.cursor)
        while page:
            next_page = self._read_ahead(run.message, page)
            try:
                if not await self._send_chunk(run, fanout, page):
                    return False
                page = await next_page
            finally:
                next_page.cancel()  # only still running when the send failed or stopped
        return True

    def _read_ahead(
        self, message: Message, page: list[Recipient]
    ) -> asyncio.Future[list[Recipient]]:
        """Starts reading the page after `page`, so the read overlaps the send."""
        if len(page) < self._chunk_size:  # a short page is the last one
            done: asyncio.Future[list[Recipient]] = asyncio.get_running_loop().create_future()
            done.set_result([])
            return done
        return asyncio.ensure_future(self._page(message, page[-1].registration_id))

    async def _page(self, message: Message, after_id: str | None) -> list[Recipient]:
        return await self._audience.page(
            message.app_id, message.audience, after_id, self._chunk_size, self._clock.now()
        )

    async def _send_chunk(self, run: Run, fanout: _Fanout, page: list[Recipient]) -> bool:
        """Sends one page and stores its checkpoint; False when the message was cancelled."""
        outcome = ChunkOutcome(cursor=page[-1].registration_id)
        deliveries: list[Delivery] = []
        for start in range(0, len(page), _RENDER_SLICE):
            if start:
                # Let other work in: RPCs wait for the loop while a chunk renders.
                await asyncio.sleep(0)
            deliveries += fanout.deliveries(page[start : start + _RENDER_SLICE], outcome)
        if deliveries:
            results = await self._retry.send(fanout.provider, deliveries)
            _classify(deliveries, results, outcome)
        message_id = run.message.message_id
        recorded = await self._messages.record_chunk(
            message_id, run.run_number, outcome, self._clock.now(), self.lease
        )
        self._signal.notify(message_id)
        return recorded


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
