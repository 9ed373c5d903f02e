"""Dry runs (Customer Insights - Journeys): a silent send proves a tracked
registration's token works, while its request waits as PENDING."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .models import Platform, Principal, Registration, TrackedRequest
from .ports import RegistrationVerifier

_log = logging.getLogger(__name__)
# Called with the request and whether the provider accepted the silent send.
Finish = Callable[[Principal, TrackedRequest, bool], Awaitable[None]]


class DryRunVerifications:
    """The dry runs in flight; each ends by calling `finish`."""

    def __init__(self, verifier: RegistrationVerifier | None, finish: Finish) -> None:
        self._verifier = verifier
        self._finish = finish
        self._tasks: set[asyncio.Task[None]] = set()

    async def needed(self, app_id: str, platform: Platform, known: dict[Platform, bool]) -> bool:
        """Whether the app delivers to the platform through a real provider; `known`
        remembers the answers within one batch."""
        if self._verifier is None:
            return False
        if platform not in known:
            known[platform] = await self._verifier.applies(app_id, platform)
        return known[platform]

    def start(
        self, principal: Principal, request: TrackedRequest, registration: Registration
    ) -> None:
        task = asyncio.create_task(self._verify(principal, request, registration))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _verify(
        self, principal: Principal, request: TrackedRequest, registration: Registration
    ) -> None:
        assert self._verifier is not None
        try:
            accepted = await self._verifier.verify(
                principal.app_id,
                registration.platform,
                registration.device_token,
                registration.web_push_keys,
            )
        except Exception:
            _log.exception("dry-run verification of %s failed", request.request_id)
            accepted = False
        await self._finish(principal, request, accepted)

    async def drain(self, timeout: float) -> None:
        """Lets dry runs in flight finish (on shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
