"""StatusService: what happened to a tracked registration request or a message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import grpc

from pushhub.v1 import status_pb2, status_pb2_grpc

from ..core.errors import server_stopping
from ..core.messages import MessageStatus
from ..core.publishing import PublishingService
from ..core.registrations import RegistrationService
from .auth import Authenticator
from .convert import status as convert
from .errors import map_errors

Context = grpc.aio.ServicerContext


class StatusServicer(status_pb2_grpc.StatusServiceServicer):
    def __init__(
        self,
        registrations: RegistrationService,
        publishing: PublishingService,
        auth: Authenticator,
        *,
        key_check_seconds: float,
        stopping: asyncio.Event,
    ) -> None:
        self._registrations = registrations
        self._publishing = publishing
        self._auth = auth
        # A watch re-checks its key at least this often, even when nothing changes.
        self._key_check_seconds = key_check_seconds
        # Set when the server begins to stop: open watches end at once.
        self._stopping = stopping

    @map_errors
    async def GetRegistrationStatus(
        self, request: status_pb2.GetRegistrationStatusRequest, context: Context
    ) -> status_pb2.GetRegistrationStatusResponse:
        principal = self._auth.principal()
        statuses = await self._registrations.registration_statuses(principal, request.request_ids)
        return status_pb2.GetRegistrationStatusResponse(
            statuses=[convert.registration_status(status) for status in statuses]
        )

    @map_errors
    async def GetMessageStatus(
        self, request: status_pb2.GetMessageStatusRequest, context: Context
    ) -> status_pb2.GetMessageStatusResponse:
        principal = self._auth.principal()
        status = await self._publishing.status(principal, request.message_id)
        return status_pb2.GetMessageStatusResponse(status=convert.message_status(status))

    @map_errors
    async def WatchMessageStatus(
        self, request: status_pb2.WatchMessageStatusRequest, context: Context
    ) -> AsyncIterator[status_pb2.WatchMessageStatusResponse]:
        principal = self._auth.principal()
        statuses = self._publishing.watch(principal, request.message_id)
        async for status in self._guarded(statuses):
            yield status_pb2.WatchMessageStatusResponse(status=convert.message_status(status))

    async def _guarded(
        self, statuses: AsyncGenerator[MessageStatus, None]
    ) -> AsyncIterator[MessageStatus]:
        """statuses, for as long as the caller's key stays valid and the server runs.

        A watch may outlive its key (a repeat runs for days): the key is checked
        again before each answer and every key_check_seconds while nothing
        changes, so a key revoked (or an app deleted) ends it with UNAUTHENTICATED.
        A stopping server ends it with UNAVAILABLE at once: a watch is no work a
        graceful stop should wait for, and the client can watch again elsewhere.
        """
        stopping = asyncio.ensure_future(self._stopping.wait())
        pending: asyncio.Future[MessageStatus] | None = None
        try:
            while True:
                pending = pending or asyncio.ensure_future(anext(statuses))
                await asyncio.wait(
                    (pending, stopping),
                    timeout=self._key_check_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stopping.done():
                    raise server_stopping()
                await self._auth.recheck()
                if pending.done():
                    try:
                        status = pending.result()
                    except StopAsyncIteration:
                        return
                    pending = None
                    yield status
        finally:
            stopping.cancel()
            if pending is not None:
                pending.cancel()
                await asyncio.wait((pending,))  # the generator must be idle to be closed
            await statuses.aclose()
