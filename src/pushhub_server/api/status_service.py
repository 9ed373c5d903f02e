"""StatusService: what happened to a tracked registration request or a message."""

from __future__ import annotations

import grpc

from pushhub.v1 import status_pb2, status_pb2_grpc

from ..core.errors import unimplemented
from ..core.registrations import RegistrationService, require_server
from . import convert
from .auth import Authenticator
from .errors import map_errors

Context = grpc.aio.ServicerContext


class StatusServicer(status_pb2_grpc.StatusServiceServicer):
    def __init__(self, registrations: RegistrationService, auth: Authenticator) -> None:
        self._registrations = registrations
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
        require_server(await self._auth.principal(context), "read message statuses")
        raise unimplemented("GetMessageStatus")

    # A coroutine rather than an async generator: grpc.aio accepts both for a
    # server stream, and this one ends before sending anything.
    @map_errors
    async def WatchMessageStatus(
        self, request: status_pb2.WatchMessageStatusRequest, context: Context
    ) -> None:
        require_server(await self._auth.principal(context), "watch message statuses")
        raise unimplemented("WatchMessageStatus")
