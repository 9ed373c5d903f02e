"""PublishService: publish now, later or on repeat; cancel what has not finished."""

from __future__ import annotations

import grpc

from pushhub.v1 import publish_pb2, publish_pb2_grpc

from ..core.publishing import PublishingService
from .auth import Authenticator
from .convert import common, publish
from .errors import map_errors

Context = grpc.aio.ServicerContext


class PublishServicer(publish_pb2_grpc.PublishServiceServicer):
    def __init__(self, publishing: PublishingService, auth: Authenticator) -> None:
        self._publishing = publishing
        self._auth = auth

    @map_errors
    async def Publish(
        self, request: publish_pb2.PublishRequest, context: Context
    ) -> publish_pb2.PublishResponse:
        principal = self._auth.principal()
        message_id = await self._publishing.publish(principal, publish.publish_draft(request))
        # A refused publish is a gRPC error and stores nothing, so an answer always
        # says SCHEDULED; PUBLISH_STATUS_FAILED stays in the contract (Backendless).
        return publish_pb2.PublishResponse(
            message_id=message_id, status=publish_pb2.PUBLISH_STATUS_SCHEDULED
        )

    @map_errors
    async def CancelMessage(
        self, request: publish_pb2.CancelMessageRequest, context: Context
    ) -> publish_pb2.CancelMessageResponse:
        principal = self._auth.principal()
        status = await self._publishing.cancel(principal, request.message_id)
        return publish_pb2.CancelMessageResponse(
            message_id=status.message_id, state=common.message_state(status.state)
        )
