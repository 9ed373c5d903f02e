"""A client of a PushHub subprocess for fan-out tests: register many devices
through RegisterDevices, publish a broadcast, read its status, and count what
the simulator recorded for it (the inbox table)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from pushhub.v1 import (
    common_pb2,
    publish_pb2,
    publish_pb2_grpc,
    registration_pb2,
    registration_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
)

BATCH = 1_000


@dataclass
class Client:
    channel: grpc.aio.Channel
    server_key: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.server_key}"),)

    async def register_all(self, count: int) -> None:
        stub = registration_pb2_grpc.DeviceRegistrationServiceStub(self.channel)

        async def batches() -> AsyncIterator[registration_pb2.RegisterDevicesRequest]:
            for start in range(0, count, BATCH):
                yield registration_pb2.RegisterDevicesRequest(
                    registrations=[
                        registration_pb2.RegisterDeviceRequest(
                            platform=common_pb2.PLATFORM_APNS if n % 2 else common_pb2.PLATFORM_FCM,
                            # 64 hex digits: a valid token on either platform.
                            device_token=f"{n:06d}{uuid.uuid4().hex}{uuid.uuid4().hex[:26]}",
                            channels=["all"],
                        )
                        for n in range(start, min(start + BATCH, count))
                    ]
                )

        registered = 0
        async for response in stub.RegisterDevices(batches(), metadata=self.metadata):
            for result in response.results:
                assert result.WhichOneof("outcome") == "response", result
                registered += 1
        assert registered == count

    async def publish_broadcast(self) -> str:
        stub = publish_pb2_grpc.PublishServiceStub(self.channel)
        response = await stub.Publish(
            publish_pb2.PublishRequest(broadcast=True, message="survive a crash"),
            metadata=self.metadata,
        )
        assert response.status == publish_pb2.PUBLISH_STATUS_SCHEDULED
        return response.message_id

    async def status(self, message_id: str) -> status_pb2.MessageStatus:
        stub = status_pb2_grpc.StatusServiceStub(self.channel)
        response = await stub.GetMessageStatus(
            status_pb2.GetMessageStatusRequest(message_id=message_id), metadata=self.metadata
        )
        return response.status

    async def watch(self, message_id: str) -> list[status_pb2.MessageStatus]:
        """Every status WatchMessageStatus streams, to the terminal one."""
        stub = status_pb2_grpc.StatusServiceStub(self.channel)
        request = status_pb2.WatchMessageStatusRequest(message_id=message_id)
        return [
            response.status
            async for response in stub.WatchMessageStatus(request, metadata=self.metadata)
        ]


async def delivered(engine: AsyncEngine, message_id: str) -> tuple[int, int]:
    """(deliveries, distinct registrations) the simulator recorded for the message."""
    query = sa.text(
        "SELECT count(*), count(DISTINCT registration_id) FROM inbox WHERE message_id = :m"
    )
    async with engine.connect() as conn:
        total, distinct = (await conn.execute(query, {"m": message_id})).one()
    return int(total), int(distinct)
