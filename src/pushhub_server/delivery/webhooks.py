"""Registration-tracking webhooks: a JSON POST per tracked request, in the background.

A webhook never affects the registration it reports on: sending happens in a
task after the RPC answered, failures are retried with exponential backoff and
then only logged. Callback URLs come from clients (device keys included), so
none may reach the operator's network: the URL follows an OutboundPolicy
(core.outbound), every address its host resolves to is checked (an
AddressGuard), and the POST goes to a checked address and follows no redirect
(pinned_http). A refusal is logged and never retried. http.client in a worker
thread keeps this free of new dependencies. The threads are the sender's own,
for name lookups too: targets (or DNS servers) that never answer would
otherwise hold the event loop's default executor, which other work (FCM token
exchanges) needs.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import ssl
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from pushhub_server.core.outbound import OutboundPolicy, OutboundRefused

from .address_guard import AddressGuard, AddressRefused, ResolveChecked, resolver_on
from .pinned_http import pinned_post

_log = logging.getLogger(__name__)

_USER_AGENT = "PushHub-Webhook/1"
# Answers worth another attempt; any other 4xx means the request itself is refused.
_RETRYABLE_STATUS = frozenset({408, 425, 429})
# Webhooks posted at once; more wait their turn without holding anyone else's threads.
_THREADS = 8


class HttpWebhookSender:
    """Implements core.ports.WebhookSender."""

    def __init__(
        self,
        urls: OutboundPolicy,
        timeout: float,
        attempts: int,
        first_backoff: float = 0.5,
        resolve: ResolveChecked | None = None,
    ) -> None:
        self._urls = urls
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._first_backoff = first_backoff
        # Strong references: the event loop keeps only weak ones to running tasks.
        self._in_flight: set[asyncio.Task[None]] = set()
        self._threads = ThreadPoolExecutor(_THREADS, thread_name_prefix="webhook")
        self._resolve = resolve or AddressGuard(resolver_on(self._threads))
        self._tls = ssl.create_default_context()

    def send(self, url: str, headers: Mapping[str, str], body: Mapping[str, object]) -> None:
        # Copies: the caller may reuse its mappings after send() returns.
        task = asyncio.get_running_loop().create_task(
            self._deliver(url, dict(headers), json.dumps(body).encode())
        )
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def drain(self, timeout: float) -> None:
        """Waits for in-flight webhooks on shutdown; cancels what is still retrying."""
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # A POST still blocked in a thread ends at its own timeout; nobody waits for it.
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _deliver(self, url: str, headers: dict[str, str], body: bytes) -> None:
        try:
            destination = self._urls.destination(url)
        except OutboundRefused as refused:  # checked when stored; the rules may have changed
            _log.warning("webhook %s refused: callback_url %s", url, refused)
            return
        # The client's callback headers go first so ours describe the body truthfully.
        headers = {**headers, "Content-Type": "application/json", "User-Agent": _USER_AGENT}
        failure = "not attempted"
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self._first_backoff * 2 ** (attempt - 2))
            try:
                addresses = await self._resolve(
                    destination.host, destination.port, any_address=destination.allowed
                )
                status = await asyncio.get_running_loop().run_in_executor(
                    self._threads,
                    pinned_post,
                    destination,
                    addresses,
                    headers,
                    body,
                    self._timeout,
                    self._tls,
                )
            except AddressRefused as refused:
                if not refused.retryable:  # the operator's network, or no such name
                    _log.warning("webhook %s refused: %s", url, refused)
                    return
                failure = str(refused)
                continue
            except ValueError as error:  # a request http.client cannot make: not retried
                _log.warning("webhook %s not sent: %s", url, error)
                return
            except (OSError, http.client.HTTPException) as error:
                # Timeouts, resets; a malformed answer (BadStatusLine, IncompleteRead)
                # is the target's passing fault as much as a reset.
                failure = repr(error)
                continue
            if status < 300:
                return
            if status < 400:
                _log.warning("webhook %s answered HTTP %s, a redirect: not followed", url, status)
                return
            if status < 500 and status not in _RETRYABLE_STATUS:
                _log.warning("webhook %s refused with HTTP %s", url, status)
                return
            failure = f"HTTP {status}"
        _log.warning("webhook %s failed after %d attempts: %s", url, self._attempts, failure)
