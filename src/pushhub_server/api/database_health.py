"""The gRPC health service follows the database: NOT_SERVING while it does not answer.

Every RPC needs the database, so while it is out a balancer or orchestrator
should send calls elsewhere, and take this server back once it answers again,
without a restart. A background task probes it (one SELECT 1 on the RPCs' own
pool) every `interval` seconds, and at once when a transaction reports an
outage (Database.add_outage_listener), so health turns NOT_SERVING on the
first failed call rather than at the next probe. While it is out, a probe runs
every second (a refused connection costs nothing), so SERVING comes back
within a second of the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from grpc_health.v1 import health, health_pb2

_log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# A probe that takes longer than this counts as failed: a database that slow
# does not serve RPCs either.
_PROBE_TIMEOUT = 5.0
# Seconds between probes while the database is out.
_RECOVERY_INTERVAL = 1.0

Probe = Callable[[], Awaitable[None]]


class DatabaseHealth:
    def __init__(
        self,
        probe: Probe,
        servicer: health.aio.HealthServicer,
        services: Sequence[str],
        interval: float,
    ) -> None:
        self._probe = probe
        self._servicer = servicer
        # "" is the server as a whole; each service depends on the database alike.
        self._services = ("", *services)
        self._interval = interval
        self._serving = True
        self._suspect = asyncio.Event()
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

    def suspect(self) -> None:
        """A call found the database unreachable: probe now (called from the store)."""
        if self._serving:  # while NOT_SERVING the regular probes look for the way back
            self._suspect.set()

    async def _run(self) -> None:
        while True:
            self._suspect.clear()
            await self._report(await self._answers())
            wait = self._interval if self._serving else min(self._interval, _RECOVERY_INTERVAL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._suspect.wait(), wait)

    async def _answers(self) -> bool:
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                await self._probe()
        except Exception as error:
            if self._serving:
                cause = error.__cause__ or error
                _log.warning("database unreachable, health NOT_SERVING: %s", _one_line(cause))
            return False
        return True

    async def _report(self, serving: bool) -> None:
        if serving == self._serving:
            return
        self._serving = serving
        if serving:
            _log.warning("database answers again, health SERVING")
        for service in self._services:
            await self._servicer.set(service, SERVING if serving else NOT_SERVING)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
