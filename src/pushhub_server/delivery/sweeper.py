"""Deletes expired registrations, and long-invalidated ones, periodically.

Reads already hide both; this reclaims their rows (RegistrationService.sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..core.errors import is_database_unavailable
from ..core.registrations import RegistrationService

_log = logging.getLogger(__name__)


class ExpirySweeper:
    def __init__(self, registrations: RegistrationService, interval: float) -> None:
        self._registrations = registrations
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                removed = await self._registrations.sweep()
            except Exception as error:
                # A failed sweep (database briefly unavailable) must not end the loop.
                if is_database_unavailable(error):
                    _log.warning("sweeping stale registrations failed: %s", error)
                else:
                    _log.exception("sweeping stale registrations failed")
                continue
            if removed:
                _log.info("swept %d stale registrations", removed)
