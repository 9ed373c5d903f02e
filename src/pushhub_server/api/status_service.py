"""StatusService: what happened to a tracked registration request or a message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from pushhub.v1 import status_pb2, status_pb2_grpc

from ..core.publishing import PublishingService
from ..core.registrations import RegistrationService
from . import convert, convert_messages
from .auth import Authenticator
from .errors import map_errors

Context = grpc.aio.ServicerContext


class StatusServicer(status_pb2_grpc.StatusServiceServicer):
    def __init__(
        self,
        registrations: RegistrationService,
        publishing: PublishingService,
        auth: Authenticator,
    ) -> None:
        self._registrations = registrations
        self._publishing = publishing
        self._auth = auth

    @map_errors
    async def GetRegistrationStatus(
        self, request: status_pb2.GetRegistrationStatusRequest, context: Context
    ) -> status_pb2.GetRegistrationStatusResponse:
        principal = await self._auth.principal(context)
        statuses = await self._registrations.registration_statuses(principal, request.request_ids)
        return status_pb2.GetRegistrationStatusResponse(
            statuses=[convert.registration_status(status) for status in statuses]
        )

    @map_errors
    async def GetMessageStatus(
        self, request: status_pb2.GetMessageStatusRequest, context: Context
    ) -> status_pb2.GetMessageStatusResponse:
        principal = await self._auth.principal(context)
        status = await self._publishing.status(principal, request.message_id)
        return status_pb2.GetMessageStatusResponse(status=convert_messages.message_status(status))

    @map_errors
    async def WatchMessageStatus(
        self, request: status_pb2.WatchMessageStatusRequest, context: Context
    ) -> AsyncIterator[status_pb2.WatchMessageStatusResponse]:
        principal = await self._auth.principal(context)
        first = True
        async for status in self._publishing.watch(principal, request.message_id):
            if not first:
                # A watch may outlive its key (a repeat runs for days): a key revoked
                # (or an app deleted) meanwhile ends it with UNAUTHENTICATED.
                await self._auth.principal(context)
            first = False
            yield status_pb2.WatchMessageStatusResponse(
                status=convert_messages.message_status(status)
            )
