"""Several processes on one PostgreSQL, as several hosts would run them (issue 13 §2).

On loopback: an api-role `pushhub serve --workers 2` and a delivery-role
`pushhub serve`, started at once on a new database (they migrate one after the
other), sharing nothing but that database (docs/processes.md). A publish made
through the api processes is delivered by the delivery process: the message's
status, read through the api, and the simulator's inbox (`pushhub inbox`) say so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pushhub.v1 import (
    common_pb2,
    publish_pb2,
    publish_pb2_grpc,
    registration_pb2,
    registration_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
)
from tests.acceptance.harness import new_token
from tests.e2e.server_process import Launcher

pytestmark = pytest.mark.slow

RECIPIENTS = 5
# The delivery process learns of a publish made elsewhere through the change feed,
# or at worst at its next poll (5 s).
DELIVERY_TIMEOUT = 60.0


@pytest.fixture
def launchers(fleet_url: str, tmp_path: Path) -> Iterator[tuple[Launcher, Launcher]]:
    api = Launcher(fleet_url, tmp_path, {"PUSHHUB_ROLE": "api", "PUSHHUB_WORKERS": "2"})
    delivery = Launcher(fleet_url, tmp_path, {"PUSHHUB_ROLE": "delivery"})
    try:
        yield api, delivery
    finally:
        api.kill_all()  # its workers die with their supervisor
        delivery.kill_all()


async def test_a_publish_through_the_api_processes_is_delivered_by_the_delivery_process(
    launchers: tuple[Launcher, Launcher],
) -> None:
    api_launcher, delivery_launcher = launchers
    api, delivery = await asyncio.gather(api_launcher.serve(), delivery_launcher.serve())
    created = json.loads(api_launcher.cli("apps", "create", "fleet", "--json"))
    metadata = (("authorization", f"Bearer {created['server_key']}"),)

    async with grpc.aio.insecure_channel(api.address) as channel:
        registrations = registration_pb2_grpc.DeviceRegistrationServiceStub(channel)
        registered = sorted(
            [
                (
                    await registrations.RegisterDevice(
                        registration_pb2.RegisterDeviceRequest(
                            platform=common_pb2.PLATFORM_APNS, device_token=new_token()
                        ),
                        metadata=metadata,
                    )
                ).registration.registration_id
                for _ in range(RECIPIENTS)
            ]
        )
        published = await publish_pb2_grpc.PublishServiceStub(channel).Publish(
            publish_pb2.PublishRequest(broadcast=True, message="across processes"),
            metadata=metadata,
        )
        status = await published_status(channel, metadata, published.message_id, delivery)
    assert (status.sent_count, status.failed_count, status.run_count) == (RECIPIENTS, 0, 1)

    inbox = api_launcher.cli("inbox", "--message", published.message_id, "--json")
    delivered = sorted(json.loads(line)["registration_id"] for line in inbox.splitlines())
    assert delivered == registered

    # The delivery process serves health, not the API.
    async with grpc.aio.insecure_channel(delivery.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await registration_pb2_grpc.DeviceRegistrationServiceStub(channel).RegisterDevice(
                registration_pb2.RegisterDeviceRequest(), metadata=metadata
            )
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def published_status(
    channel: grpc.aio.Channel, metadata: tuple, message_id: str, delivery
) -> status_pb2.MessageStatus:
    stub = status_pb2_grpc.StatusServiceStub(channel)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DELIVERY_TIMEOUT
    while True:
        answer = await stub.GetMessageStatus(
            status_pb2.GetMessageStatusRequest(message_id=message_id), metadata=metadata
        )
        if answer.status.state == common_pb2.MESSAGE_STATE_PUBLISHED:
            return answer.status
        assert loop.time() < deadline, f"never delivered: {answer.status}\n{delivery.output()}"
        await asyncio.sleep(0.1)


async def test_api_processes_started_at_once_on_a_new_database_all_serve(
    fleet_url: str, tmp_path: Path
) -> None:
    """Each looks for an app, finds none, and creates `default`: one wins, the others
    find it taken and serve on; its keys are shown once."""
    launcher = Launcher(fleet_url, tmp_path, {"PUSHHUB_ROLE": "api"})
    try:
        servers = await asyncio.gather(*(launcher.serve() for _ in range(3)))
        shown = [server for server in servers if "server key:" in server.output()]
        assert len(shown) == 1
        assert all(server.process.poll() is None for server in servers)
    finally:
        launcher.kill_all()
