"""Web Push end to end against web-push-testing, an independent push service (npm).

PushHub's own server, over gRPC, as an operator and a page would use it: the app
gets VAPID credentials, a "browser" subscribes at web-push-testing with the app's
applicationServerKey, the page registers the subscription with a device key, and
a publish comes back decrypted from /get-notifications (web-push-testing checks
the VAPID token with node's jsonwebtoken and decrypts with node's http_ece).
Expiring the subscription makes the service answer 410, and the next publish
invalidates the registration.

web-push-testing listens on ``localhost`` over plain HTTP: the server reaches it
only because PUSHHUB_WEB_PUSH_ALLOWED_HOSTS lists that host and port.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from pushhub.v1 import admin_pb2, common_pb2, publish_pb2
from pushhub.v1 import registration_pb2 as reg
from pushhub.v1 import status_pb2 as st
from pushhub_server.config import Config
from tests.acceptance.harness import ADMIN_METADATA, Stubs, bearer
from tests.conftest import ADMIN_TOKEN
from tests.fakes.web_push_testing import WebPushTesting
from tests.own_database import own_database as own_database_for

WEB_PUSH = common_pb2.PLATFORM_WEB_PUSH
TERMINAL = {
    common_pb2.MESSAGE_STATE_PUBLISHED,
    common_pb2.MESSAGE_STATE_FAILED,
    common_pb2.MESSAGE_STATE_CANCELLED,
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def service() -> AsyncIterator[WebPushTesting]:
    running = await WebPushTesting.start()
    yield running
    await running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stubs(
    service: WebPushTesting, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stubs]:
    from pushhub_server.server import start_server

    async with own_database_for(
        database_url, tmp_path_factory.mktemp("wpt-db"), "pushhub_wpt"
    ) as url:
        config = Config(
            database_url=url,
            listen="127.0.0.1:0",
            admin_token=ADMIN_TOKEN,
            secret_key="web-push-testing-secret",
            sweep_interval=3600,
            web_push_allowed_hosts=f"localhost:{service.port}",
        )
        running = await start_server(config)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                await channel.channel_ready()
                yield Stubs.on(channel)
        finally:
            await running.stop(1.0)


async def finished(stubs: Stubs, key: str, message_id: str) -> st.MessageStatus:
    deadline = time.monotonic() + 30
    while True:
        answer = await stubs.status.GetMessageStatus(
            st.GetMessageStatusRequest(message_id=message_id), metadata=bearer(key)
        )
        if answer.status.state in TERMINAL:
            return answer.status
        assert time.monotonic() < deadline, answer.status
        await asyncio.sleep(0.05)


async def publish(stubs: Stubs, key: str, **notification: str) -> st.MessageStatus:
    answer = await stubs.publish.Publish(
        publish_pb2.PublishRequest(
            broadcast=True, notification=publish_pb2.Notification(**notification)
        ),
        metadata=bearer(key),
    )
    return await finished(stubs, key, answer.message_id)


async def test_subscribe_register_publish_read_back_expire_invalidate(
    service: WebPushTesting, stubs: Stubs
) -> None:
    created = await stubs.admin.CreateApp(
        admin_pb2.CreateAppRequest(name="web-push-testing"), metadata=ADMIN_METADATA
    )
    app_id, server_key = created.app.app_id, created.server_key
    credentials = await stubs.admin.SetWebPushCredentials(
        admin_pb2.SetWebPushCredentialsRequest(app_id=app_id, subject="mailto:ops@example.com"),
        metadata=bearer(server_key),
    )
    application_server_key = credentials.app.web_push_public_key

    subscription = await service.subscribe(application_server_key)
    registered = await stubs.registrations.RegisterDevice(
        reg.RegisterDeviceRequest(
            platform=WEB_PUSH,
            device_token=subscription.endpoint,
            web_push_keys=reg.WebPushKeys(p256dh=subscription.p256dh, auth=subscription.auth),
        ),
        metadata=bearer(created.device_key),
    )
    registration_id = registered.registration.registration_id

    status = await publish(stubs, server_key, title="Hello", body="From PushHub")
    assert (status.sent_count, status.failed_count) == (1, 0), status
    [payload] = await service.notifications(subscription)
    assert json.loads(payload) == {"title": "Hello", "body": "From PushHub"}

    await service.expire(subscription)
    status = await publish(stubs, server_key, title="Again")
    assert (status.sent_count, status.failed_count) == (0, 1), status
    assert dict(status.failure_reasons) == {"Gone": 1}
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stubs.registrations.GetRegistration(
            reg.GetRegistrationRequest(registration_id=registration_id),
            metadata=bearer(server_key),
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    # Left out from then on: nothing is posted for it.
    status = await publish(stubs, server_key, title="Third")
    assert status.targeted_count == 0


async def test_a_subscription_for_another_applications_key_is_refused(
    service: WebPushTesting, stubs: Stubs
) -> None:
    """web-push-testing checks the VAPID key against the subscription's: a
    subscription made for another key is not delivered, and stays registered."""
    created = await stubs.admin.CreateApp(
        admin_pb2.CreateAppRequest(name="web-push-testing-other"), metadata=ADMIN_METADATA
    )
    await stubs.admin.SetWebPushCredentials(
        admin_pb2.SetWebPushCredentialsRequest(
            app_id=created.app.app_id, subject="https://example.com/contact"
        ),
        metadata=bearer(created.server_key),
    )
    other = await stubs.admin.CreateApp(
        admin_pb2.CreateAppRequest(name="web-push-testing-key-owner"), metadata=ADMIN_METADATA
    )
    foreign_key = await stubs.admin.SetWebPushCredentials(
        admin_pb2.SetWebPushCredentialsRequest(
            app_id=other.app.app_id, subject="mailto:ops@example.com"
        ),
        metadata=bearer(other.server_key),
    )
    subscription = await service.subscribe(foreign_key.app.web_push_public_key)
    await stubs.registrations.RegisterDevice(
        reg.RegisterDeviceRequest(
            platform=WEB_PUSH,
            device_token=subscription.endpoint,
            web_push_keys=reg.WebPushKeys(p256dh=subscription.p256dh, auth=subscription.auth),
        ),
        metadata=bearer(created.device_key),
    )

    status = await publish(stubs, created.server_key, title="Not yours")

    assert (status.sent_count, status.failed_count) == (0, 1), status
    # A refusal, counted under its reason; not a sign the subscription is gone.
    assert set(status.failure_reasons) <= {"BadRequest", "Unauthorized", "Forbidden"}, status
    assert await service.notifications(subscription) == []
    answer = await stubs.registrations.ListRegistrations(
        reg.ListRegistrationsRequest(), metadata=bearer(created.server_key)
    )
    assert [r.device_token for r in answer.registrations] == [subscription.endpoint]
