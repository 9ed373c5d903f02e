"""PublishService. Publishing arrives with the delivery pipeline; authorization is settled now."""

from __future__ import annotations

import grpc

from pushhub.v1 import publish_pb2, publish_pb2_grpc

from ..core.errors import unimplemented
from ..core.publishing import require_publisher
from .auth import Authenticator
from .errors import map_errors

Context = grpc.aio.ServicerContext


class PublishServicer(publish_pb2_grpc.PublishServiceServicer):
    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth

    @map_errors
    async def Publish(
        self, request: publish_pb2.PublishRequest, context: Context
    ) -> publish_pb2.PublishResponse:
        require_publisher(await self._auth.principal(context))
        raise unimplemented("Publish")

    @map_errors
    async def CancelMessage(
        self, request: publish_pb2.CancelMessageRequest, context: Context
    ) -> publish_pb2.CancelMessageResponse:
        require_publisher(await self._auth.principal(context))
        raise unimplemented("CancelMessage")
