"""Which provider delivers an app's notifications, per platform.

An app with a platform's credentials (APNs, FCM, Web Push, HMS) delivers to that
platform through the real provider; a platform without credentials goes to the
simulator. Providers are
kept per app and platform (their HTTP/2 connections and tokens are worth
reusing) and rebuilt when that platform's credentials change: a change of FCM
credentials leaves the APNs provider alone, and a new APNs provider for the same
key keeps the old one's provider token (Apple throttles new ones).

A replaced provider is retired, not closed: every send holds the provider it
uses, and a retired provider is closed once its last send returns, so changing
credentials never cuts a delivery short. An app's credentials are read, and its
providers swapped, under that app's lock, so concurrent readers cannot undo each
other's swaps. Clearing a platform's credentials retires its provider the same
way, and deleting an app (`forget`) retires all of its providers and drops its lock.

Once closed, the registry builds nothing: every call that would need a provider
raises RegistryClosed (a run cut short that way resumes after a restart; handing
out the unusable stand-in would fail its deliveries for good).

Credentials that cannot be read (sealed with another key) or built into a
provider (stored before SetApnsCredentials and SetFcmCredentials checked what the
providers need) make that platform's deliveries fail as CredentialsUnusable; the
other platform still delivers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pushhub_server.core.apps import AppService
from pushhub_server.core.clock import Clock
from pushhub_server.core.credentials import (
    ApnsCredentials,
    FcmCredentials,
    HmsCredentials,
    UnreadableCredentials,
)
from pushhub_server.core.delivery_metrics import NO_DELIVERY_METRICS
from pushhub_server.core.delivery_tracing import NO_DELIVERY_TRACING
from pushhub_server.core.errors import PushHubError
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.core.ports import DeliveryMetrics, DeliveryProvider, DeliveryTracing
from pushhub_server.core.web_push import WebPushCredentials
from pushhub_server.core.web_push_endpoints import EndpointPolicy
from pushhub_server.delivery.address_guard import AddressGuard, ResolveChecked

from .apns import ApnsProvider, ProviderToken
from .fcm import FcmProvider
from .hms import HmsProvider
from .webpush import WebPushProvider

_log = logging.getLogger(__name__)

_Source = (
    ApnsCredentials
    | FcmCredentials
    | WebPushCredentials
    | HmsCredentials
    | UnreadableCredentials
    | None
)


@dataclass(frozen=True)
class Endpoints:
    """Overrides of the push services' hosts (a staging relay, a test fake), and
    where Web Push may connect."""

    apns_url: str | None = None
    apns_ca_file: str | None = None
    fcm_url: str | None = None
    fcm_ca_file: str | None = None
    apns_connections: int = 1
    hms_url: str | None = None
    hms_token_url: str | None = None
    hms_ca_file: str | None = None
    web_push_ca_file: str | None = None
    web_push_encryption_threads: int = 2
    # The push services' allow-list with the operator's listed hosts.
    web_push_policy: EndpointPolicy = field(default_factory=EndpointPolicy)
    # Resolves and checks Web Push hosts at send time; None: the system resolver.
    web_push_resolve: ResolveChecked | None = None


class RegistryClosed(RuntimeError):
    """The registry was closed (the server is stopping): it builds no more providers."""

    def __init__(self) -> None:
        super().__init__("the provider registry is closed: no provider is built after shutdown")


class UnusableProvider:
    """Stands in for a provider that could not be built: fails every delivery, sends nothing."""

    _RESULT = DeliveryResult(DeliveryOutcome.REJECTED, "CredentialsUnusable")

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        return [self._RESULT] * len(deliveries)


@dataclass(eq=False)
class _Slot:
    """One app's provider for one platform, and how many sends are using it now."""

    # What the provider was built from; None for the simulator.
    source: _Source
    provider: DeliveryProvider
    # Closes the provider; None for the shared simulator and unusable stand-ins.
    close: Callable[[], Awaitable[None]] | None = None
    users: int = 0
    retired: bool = False


class _AppRouter:
    """An app's DeliveryProvider: each send goes to its platforms' current providers."""

    def __init__(self, registry: ProviderRegistry, app_id: str) -> None:
        self._registry = registry
        self._app_id = app_id

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        results: list[DeliveryResult | None] = [None] * len(deliveries)
        by_platform: dict[Platform, list[int]] = {}
        for index, delivery in enumerate(deliveries):
            by_platform.setdefault(delivery.platform, []).append(index)
        sent = await asyncio.gather(
            *(
                self._send(platform, [deliveries[i] for i in indexes], validate_only)
                for platform, indexes in by_platform.items()
            )
        )
        for indexes, answers in zip(by_platform.values(), sent, strict=True):
            for index, answer in zip(indexes, answers, strict=True):
                results[index] = answer
        return results  # type: ignore[return-value]  # every index is filled above

    async def _send(
        self, platform: Platform, deliveries: list[Delivery], validate_only: bool
    ) -> list[DeliveryResult]:
        registry = self._registry
        async with registry._hold(self._app_id, platform) as slot:
            with registry.tracing.provider_send(platform, len(deliveries)):
                started = time.perf_counter()
                try:
                    return await slot.provider.send(deliveries, validate_only=validate_only)
                finally:
                    registry.metrics.provider_request(platform, time.perf_counter() - started)


class ProviderRegistry:
    def __init__(
        self,
        apps: AppService,
        simulator: DeliveryProvider,
        clock: Clock,
        endpoints: Endpoints,
        metrics: DeliveryMetrics = NO_DELIVERY_METRICS,
        tracing: DeliveryTracing = NO_DELIVERY_TRACING,
    ) -> None:
        self._apps = apps
        # Every provider send is timed and traced here, per platform, whichever
        # provider it is.
        self.metrics = metrics
        self.tracing = tracing
        self._simulator = simulator
        self._clock = clock
        self._endpoints = endpoints
        # One guard for every app's Web Push provider: its cache then serves them all.
        self._resolve: ResolveChecked = endpoints.web_push_resolve or AddressGuard()
        self._slots: dict[tuple[str, Platform], _Slot] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    async def for_app(self, app_id: str) -> DeliveryProvider:
        """The app's router; one credentials read per call (a call per run)."""
        await self._refresh(app_id)
        return _AppRouter(self, app_id)

    async def configured(self, app_id: str, platform: Platform) -> bool:
        """Whether the app has credentials for the platform (usable or not)."""
        slots = await self._refresh(app_id)
        return slots[platform].source is not None

    @asynccontextmanager
    async def real_provider(
        self, app_id: str, platform: Platform
    ) -> AsyncIterator[DeliveryProvider | None]:
        """The platform's provider for the app, held for the block; None without credentials."""
        async with self._hold(app_id, platform) as slot:
            yield None if slot.source is None else slot.provider

    @asynccontextmanager
    async def _hold(self, app_id: str, platform: Platform) -> AsyncIterator[_Slot]:
        """The current slot, kept open until the block ends even if it is replaced meanwhile."""
        if self._closed:
            raise RegistryClosed()
        slot = self._slots.get((app_id, platform))
        if slot is None:
            slot = (await self._refresh(app_id))[platform]
        slot.users += 1
        try:
            yield slot
        finally:
            slot.users -= 1
            if slot.retired and slot.users == 0 and slot.close is not None:
                await slot.close()

    async def forget(self, app_id: str) -> None:
        """Retires a deleted app's providers and drops its lock and slots."""
        lock = self._locks.get(app_id)
        if lock is None:
            return
        # Under the lock: a refresh that read the credentials before the deletion
        # stores its provider first, and is retired here with the rest.
        async with lock:
            slots = [self._slots.pop((app_id, platform), None) for platform in Platform]
            self._locks.pop(app_id, None)  # close() may have cleared it meanwhile
        for slot in slots:
            if slot is not None:
                await _retire(slot)

    async def close(self) -> None:
        self._closed = True
        slots, self._slots = list(self._slots.values()), {}
        self._locks.clear()
        for slot in slots:
            await _retire(slot)

    async def _refresh(self, app_id: str) -> dict[Platform, _Slot]:
        """Reads the app's credentials and replaces each provider whose credentials changed."""
        if self._closed:
            raise RegistryClosed()
        async with self._locks.setdefault(app_id, asyncio.Lock()):
            credentials = await self._apps.provider_credentials(app_id)
            return {
                platform: await self._swap(app_id, platform, credentials.get(platform))
                for platform in Platform
            }

    async def _swap(self, app_id: str, platform: Platform, source: _Source) -> _Slot:
        # Checked after every await: close() may have run while the credentials were read.
        if self._closed:
            raise RegistryClosed()
        current = self._slots.get((app_id, platform))
        if current is not None and current.source == source:
            return current
        slot = self._slots[(app_id, platform)] = self._build(app_id, platform, source, current)
        if current is not None:
            await _retire(current)
        return slot

    def _build(
        self, app_id: str, platform: Platform, source: _Source, previous: _Slot | None
    ) -> _Slot:
        if source is None:
            return _Slot(None, self._simulator)
        if isinstance(source, UnreadableCredentials):
            return _unusable(app_id, platform, source, source.reason)
        try:
            provider = self._provider(source, previous)
        except Exception as error:  # whatever it is, it must stay this platform's problem
            return _unusable(app_id, platform, source, _describe(error))
        return _Slot(source, provider, provider.close)

    def _provider(
        self,
        source: ApnsCredentials | FcmCredentials | WebPushCredentials | HmsCredentials,
        previous: _Slot | None,
    ) -> ApnsProvider | FcmProvider | WebPushProvider | HmsProvider:
        if isinstance(source, ApnsCredentials):
            return self._apns(source, previous)
        if isinstance(source, FcmCredentials):
            return self._fcm(source)
        if isinstance(source, WebPushCredentials):
            return self._web_push(source)
        return self._hms(source)

    def _apns(self, credentials: ApnsCredentials, previous: _Slot | None) -> ApnsProvider:
        ends = self._endpoints
        return ApnsProvider(
            credentials,
            self._clock,
            base_url=ends.apns_url,
            ca_file=ends.apns_ca_file,
            connections=ends.apns_connections,
            token=_same_key_token(previous, credentials),
        )

    def _fcm(self, credentials: FcmCredentials) -> FcmProvider:
        ends = self._endpoints
        return FcmProvider(
            credentials.service_account,
            endpoint=ends.fcm_url,
            ca_file=ends.fcm_ca_file,
            clock=self._clock,
        )

    def _web_push(self, credentials: WebPushCredentials) -> WebPushProvider:
        ends = self._endpoints
        return WebPushProvider(
            credentials,
            self._clock,
            policy=ends.web_push_policy,
            resolve=self._resolve,
            ca_file=ends.web_push_ca_file,
            encryption_threads=ends.web_push_encryption_threads,
        )

    def _hms(self, credentials: HmsCredentials) -> HmsProvider:
        ends = self._endpoints
        return HmsProvider(
            credentials.client_id,
            credentials.client_secret,
            endpoint=ends.hms_url,
            token_endpoint=ends.hms_token_url,
            ca_file=ends.hms_ca_file,
            clock=self._clock,
        )


def _same_key_token(previous: _Slot | None, credentials: ApnsCredentials) -> ProviderToken | None:
    """The replaced provider's token when the key is the same: a new one could be throttled."""
    if previous is None or not isinstance(previous.provider, ApnsProvider):
        return None
    old = previous.source
    if isinstance(old, ApnsCredentials) and old.same_signing_key(credentials):
        return previous.provider.token
    return None


def _unusable(app_id: str, platform: Platform, source: _Source, why: str) -> _Slot:
    _log.warning(
        "app %s: its %s credentials are unusable (%s); its %s deliveries fail as "
        "CredentialsUnusable until they are set again",
        app_id,
        platform.name,
        why,
        platform.name,
    )
    return _Slot(source, UnusableProvider())


def _describe(error: Exception) -> str:
    """Why a provider could not be built, never quoting the credentials themselves."""
    if isinstance(error, PushHubError | OSError):  # our own messages, or a file's (the CA)
        return str(error)
    return type(error).__name__


async def _retire(slot: _Slot) -> None:
    """Closes the slot's provider now if nothing uses it, else when its last user is done."""
    slot.retired = True
    if slot.users == 0 and slot.close is not None:
        await slot.close()
