"""ProviderRegistry against the fake APNs: swapping providers when credentials change.

The app's stored credentials come from a stub repository whose next read can be
held, so a test can interleave readers; everything else is real: AppService
opens them, the registry builds real providers, and the fake APNs answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import cast

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushhub_server.core.apps import AppService
from pushhub_server.core.clock import ManualClock
from pushhub_server.core.credentials import (
    ApnsCredentials,
    ApnsEnvironment,
    SecretBox,
    dump_apns,
)
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.core.ports import AppRepository
from pushhub_server.delivery.providers.registry import (
    Endpoints,
    ProviderRegistry,
    RegistryClosed,
)
from tests.fakes.apns import FakeApns, new_signing_key
from tests.fakes.tls import TlsFiles, issue_tls_files

KEY_ID = "KEY1234567"
TEAM_ID = "TEAM123456"
TOPIC = "com.example.registry"
APP = "app-registry"
SENT = DeliveryResult(DeliveryOutcome.SENT)
UNUSABLE = DeliveryResult(DeliveryOutcome.REJECTED, "CredentialsUnusable")
PLAIN = SecretBox(None)


class StoredCredentials:
    """The credentials part of an AppRepository; its next read can be made to wait."""

    def __init__(self) -> None:
        self.stored: dict[Platform, str] = {}
        self.hold_next_read: asyncio.Event | None = None

    async def credentials(self, app_id: str) -> dict[Platform, str]:
        snapshot = dict(self.stored)
        gate, self.hold_next_read = self.hold_next_read, None
        if gate is not None:
            await gate.wait()  # answers what was stored when the read began
        return snapshot

    async def delete_app(self, app_id: str) -> bool:
        self.stored.clear()
        return True


class Simulated:
    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        return [SENT] * len(deliveries)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return issue_tls_files(tmp_path_factory.mktemp("registry-tls"))


@pytest.fixture(scope="module")
def signing_key() -> tuple[str, str]:
    return new_signing_key()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2025, 1, 1, 12, 0, tzinfo=UTC))


@pytest_asyncio.fixture
async def fake(
    tls: TlsFiles, signing_key: tuple[str, str], clock: ManualClock
) -> AsyncIterator[FakeApns]:
    server = FakeApns(
        tls, clock, topic=TOPIC, team_id=TEAM_ID, key_id=KEY_ID, public_key_pem=signing_key[1]
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def repository() -> StoredCredentials:
    return StoredCredentials()


@pytest.fixture
def apns_stored(repository: StoredCredentials, signing_key: tuple[str, str]) -> None:
    """Most tests start from an app holding APNs credentials of the test key."""
    repository.stored[Platform.APNS] = PLAIN.seal(dump_apns(apns(signing_key[0])))


def registry_for(
    repository: StoredCredentials,
    clock: ManualClock,
    fake: FakeApns,
    tls: TlsFiles,
    box: SecretBox = PLAIN,
) -> ProviderRegistry:
    apps = AppService(cast(AppRepository, repository), clock, secrets_box=box)
    endpoints = Endpoints(apns_url=fake.url, apns_ca_file=str(tls.ca_file))
    providers = ProviderRegistry(apps, Simulated(), clock, endpoints)
    apps.on_deleted.append(providers.forget)  # as server.py wires them
    return providers


@pytest_asyncio.fixture
async def registry(
    repository: StoredCredentials, clock: ManualClock, fake: FakeApns, tls: TlsFiles
) -> AsyncIterator[ProviderRegistry]:
    providers = registry_for(repository, clock, fake, tls)
    yield providers
    await providers.close()


def apns(
    private_key_pem: str, environment: ApnsEnvironment = ApnsEnvironment.PRODUCTION
) -> ApnsCredentials:
    return ApnsCredentials(KEY_ID, TEAM_ID, TOPIC, private_key_pem, environment)


def delivery(n: int, platform: Platform = Platform.APNS) -> Delivery:
    headers = {"apns-push-type": "alert", "apns-priority": "10"}
    return Delivery("msg", APP, f"reg-{n}", platform, f"{n:064x}", b'{"aps":{}}', headers)


def service_account() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    account = {
        "type": "service_account",
        "project_id": "registry-test",
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "client_email": "pushhub@registry-test.iam.gserviceaccount.com",
        "token_uri": "https://127.0.0.1:9/token",  # never reached: nothing is sent to FCM
    }
    return json.dumps(account)


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.mark.usefixtures("apns_stored")
async def test_a_send_in_flight_keeps_its_provider_through_a_credentials_change(
    registry: ProviderRegistry,
    repository: StoredCredentials,
    fake: FakeApns,
    signing_key: tuple[str, str],
) -> None:
    router = await registry.for_app(APP)
    fake.held.add(delivery(1).device_token)
    in_flight = asyncio.ensure_future(router.send([delivery(1)]))
    await eventually(lambda: fake.held_requests == 1)

    # Same key, other environment: a new provider, which takes over the old one's token.
    sandbox = apns(signing_key[0], ApnsEnvironment.SANDBOX)
    repository.stored[Platform.APNS] = PLAIN.seal(dump_apns(sandbox))
    await registry.for_app(APP)
    assert fake.open_connections == 1, "the replaced provider was closed under its send"
    fake.release_held()

    assert await in_flight == [SENT]
    await eventually(lambda: fake.open_connections == 0)  # retired once its send returned
    assert await router.send([delivery(2)]) == [SENT]
    first, second = fake.requests
    assert first.headers["authorization"] == second.headers["authorization"]


@pytest.mark.usefixtures("apns_stored")
async def test_the_router_passes_validate_only_to_each_platforms_provider(
    registry: ProviderRegistry, fake: FakeApns
) -> None:
    router = await registry.for_app(APP)

    results = await router.send([delivery(1), delivery(2, Platform.FCM)], validate_only=True)

    # APNs has no validate-only mode: an alert is refused unsent (providers.apns).
    assert results == [DeliveryResult(DeliveryOutcome.REJECTED, "BackgroundPushRequired"), SENT]
    assert fake.requests == []


async def test_concurrent_reads_cannot_bring_back_older_credentials(
    registry: ProviderRegistry,
    repository: StoredCredentials,
    fake: FakeApns,
    signing_key: tuple[str, str],
) -> None:
    unknown_key, _ = new_signing_key()
    repository.stored[Platform.APNS] = PLAIN.seal(dump_apns(apns(unknown_key)))
    repository.hold_next_read = asyncio.Event()
    gate = repository.hold_next_read
    slow = asyncio.ensure_future(registry.for_app(APP))  # reads the old key, then waits
    await asyncio.sleep(0.05)
    repository.stored[Platform.APNS] = PLAIN.seal(dump_apns(apns(signing_key[0])))
    fast = asyncio.ensure_future(registry.for_app(APP))  # reads the new key
    await asyncio.sleep(0.05)
    gate.set()
    await slow
    router = await fast

    assert await router.send([delivery(1)]) == [SENT]
    assert [request.status for request in fake.requests] == [200]


@pytest.mark.usefixtures("apns_stored")
async def test_new_fcm_credentials_leave_the_apns_provider_alone(
    registry: ProviderRegistry,
    repository: StoredCredentials,
    fake: FakeApns,
) -> None:
    router = await registry.for_app(APP)
    assert await router.send([delivery(1)]) == [SENT]

    repository.stored[Platform.FCM] = PLAIN.seal(service_account())
    router = await registry.for_app(APP)
    assert await router.send([delivery(2)]) == [SENT]

    assert fake.connections == 1 and fake.open_connections == 1
    first, second = fake.requests
    assert first.headers["authorization"] == second.headers["authorization"]


async def test_unreadable_credentials_fail_only_their_platform(
    repository: StoredCredentials,
    clock: ManualClock,
    fake: FakeApns,
    tls: TlsFiles,
    signing_key: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    sealed_elsewhere = SecretBox("another-secret-key").seal(dump_apns(apns(signing_key[0])))
    repository.stored[Platform.APNS] = sealed_elsewhere
    registry = registry_for(repository, clock, fake, tls, SecretBox("this-secret-key"))
    try:
        router = await registry.for_app(APP)
        results = await router.send([delivery(1), delivery(2, Platform.FCM)])
        assert await registry.configured(APP, Platform.APNS)
        assert not await registry.configured(APP, Platform.FCM)
    finally:
        await registry.close()

    assert results == [UNUSABLE, SENT]
    assert fake.requests == []
    assert f"app {APP}: its APNS credentials are unusable" in caplog.text
    assert "another PUSHHUB_SECRET_KEY" in caplog.text


async def test_credentials_stored_before_the_checks_fail_only_their_platform(
    registry: ProviderRegistry,
    repository: StoredCredentials,
    fake: FakeApns,
    signing_key: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    p384 = ec.generate_private_key(ec.SECP384R1())
    p384_pem = p384.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    repository.stored[Platform.APNS] = PLAIN.seal(dump_apns(apns(p384_pem)))
    router = await registry.for_app(APP)
    assert await router.send([delivery(1), delivery(2, Platform.FCM)]) == [UNUSABLE, SENT]

    no_token_uri = {k: v for k, v in json.loads(service_account()).items() if k != "token_uri"}
    repository.stored[Platform.APNS] = PLAIN.seal(dump_apns(apns(signing_key[0])))
    repository.stored[Platform.FCM] = PLAIN.seal(json.dumps(no_token_uri))
    router = await registry.for_app(APP)
    assert await router.send([delivery(3), delivery(4, Platform.FCM)]) == [SENT, UNUSABLE]

    assert "its APNS credentials are unusable (an APNs .p8 key must be an EC P-256" in caplog.text
    assert "its FCM credentials are unusable (the service account lacks token_uri)" in caplog.text
    assert "PRIVATE KEY" not in caplog.text


@pytest.mark.usefixtures("apns_stored")
async def test_deleting_an_app_closes_its_providers_after_their_sends(
    registry: ProviderRegistry,
    fake: FakeApns,
) -> None:
    router = await registry.for_app(APP)
    fake.held.add(delivery(1).device_token)
    in_flight = asyncio.ensure_future(router.send([delivery(1)]))
    await eventually(lambda: fake.held_requests == 1)

    await registry._apps.delete_app(APP)  # what DeleteApp and `pushhub apps delete` call
    assert fake.open_connections == 1, "the deleted app's provider was closed under its send"
    fake.release_held()

    assert await in_flight == [SENT]
    await eventually(lambda: fake.open_connections == 0)
    assert APP not in registry._locks
    assert not [key for key in registry._slots if key[0] == APP]


@pytest.mark.usefixtures("apns_stored")
async def test_deleting_an_app_mid_refresh_retires_what_the_refresh_built(
    registry: ProviderRegistry,
    repository: StoredCredentials,
    fake: FakeApns,
) -> None:
    repository.hold_next_read = asyncio.Event()
    gate = repository.hold_next_read
    reading = asyncio.ensure_future(registry.for_app(APP))  # read before the deletion
    await asyncio.sleep(0.05)
    deleting = asyncio.ensure_future(registry._apps.delete_app(APP))
    await asyncio.sleep(0.05)
    gate.set()
    router = await reading
    await deleting

    assert APP not in registry._locks
    assert not [key for key in registry._slots if key[0] == APP]
    assert await router.send([delivery(1)]) == [SENT]  # a straggler: to the simulator
    assert fake.connections == 0


@pytest.mark.usefixtures("apns_stored")
async def test_clearing_credentials_closes_the_provider_after_its_sends(
    registry: ProviderRegistry,
    repository: StoredCredentials,
    fake: FakeApns,
) -> None:
    router = await registry.for_app(APP)
    fake.held.add(delivery(1).device_token)
    in_flight = asyncio.ensure_future(router.send([delivery(1)]))
    await eventually(lambda: fake.held_requests == 1)

    del repository.stored[Platform.APNS]
    await registry.for_app(APP)
    assert not await registry.configured(APP, Platform.APNS)
    assert fake.open_connections == 1
    fake.release_held()

    assert await in_flight == [SENT]
    await eventually(lambda: fake.open_connections == 0)
    assert await router.send([delivery(2)]) == [SENT]  # now the simulator's
    assert len(fake.requests) == 1


@pytest.mark.usefixtures("apns_stored")
async def test_a_refresh_across_close_builds_nothing(
    registry: ProviderRegistry,
    repository: StoredCredentials,
    fake: FakeApns,
) -> None:
    repository.hold_next_read = asyncio.Event()
    gate = repository.hold_next_read
    pending = asyncio.ensure_future(registry.for_app(APP))
    await asyncio.sleep(0.05)
    await registry.close()
    gate.set()

    with pytest.raises(RegistryClosed):
        await pending
    assert registry._slots == {}
    assert fake.connections == 0


@pytest.mark.usefixtures("apns_stored")
async def test_a_closed_registry_refuses_every_call(
    registry: ProviderRegistry,
    fake: FakeApns,
) -> None:
    router = await registry.for_app(APP)
    await registry.close()

    with pytest.raises(RegistryClosed):
        await registry.for_app(APP)
    with pytest.raises(RegistryClosed):
        await registry.configured(APP, Platform.APNS)
    with pytest.raises(RegistryClosed):
        async with registry.real_provider(APP, Platform.APNS):
            pass
    with pytest.raises(RegistryClosed):
        await router.send([delivery(1)])
    assert registry._slots == {}
    assert fake.connections == 0


async def test_a_failing_deletion_listener_neither_fails_the_deletion_nor_stops_the_others(
    repository: StoredCredentials, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    apps = AppService(cast(AppRepository, repository), clock)
    told: list[str] = []

    async def failing(app_id: str) -> None:
        raise RuntimeError("boom")

    async def listening(app_id: str) -> None:
        told.append(app_id)

    apps.on_deleted.extend([failing, listening])
    await apps.delete_app(APP)

    assert told == [APP]
    assert f"app {APP} was deleted, but releasing its resources failed" in caplog.text
