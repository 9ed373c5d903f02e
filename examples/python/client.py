"""Registers a device, publishes to it and watches the message to the end.

Usage: PUSHHUB_SERVER_KEY=phs_... [PUSHHUB_ADDRESS=127.0.0.1:50051] python client.py
"""

import os
import uuid

import grpc

from pushhub.v1 import common_pb2, publish_pb2, registration_pb2, status_pb2
from pushhub.v1.publish_pb2_grpc import PublishServiceStub
from pushhub.v1.registration_pb2_grpc import DeviceRegistrationServiceStub
from pushhub.v1.status_pb2_grpc import StatusServiceStub

address = os.environ.get("PUSHHUB_ADDRESS", "127.0.0.1:50051")
# Every call carries the app's server key.
key = [("authorization", f"Bearer {os.environ['PUSHHUB_SERVER_KEY']}")]

with grpc.insecure_channel(address) as channel:
    registered = DeviceRegistrationServiceStub(channel).RegisterDevice(
        registration_pb2.RegisterDeviceRequest(
            platform=common_pb2.PLATFORM_APNS,
            # An APNs token is 64 hex digits (32 bytes), as iOS hands it to the app.
            device_token=uuid.uuid4().hex + uuid.uuid4().hex,
            channels=["examples"],
        ),
        metadata=key,
    )
    registration_id = registered.registration.registration_id
    print(f"registered {registration_id}")

    published = PublishServiceStub(channel).Publish(
        publish_pb2.PublishRequest(
            registration_ids=[registration_id],
            notification=publish_pb2.Notification(title="Hello", body="from Python"),
        ),
        metadata=key,
    )
    print(f"published {published.message_id}")

    # The stream sends the status each time it changes and ends at a terminal state.
    watch = status_pb2.WatchMessageStatusRequest(message_id=published.message_id)
    for update in StatusServiceStub(channel).WatchMessageStatus(watch, metadata=key):
        state = common_pb2.MessageState.Name(update.status.state).removeprefix("MESSAGE_STATE_")
        print(f"{state} sent={update.status.sent_count} failed={update.status.failed_count}")
