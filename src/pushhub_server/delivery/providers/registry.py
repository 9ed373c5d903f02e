"""Which provider delivers an app's notifications, per platform.

An app with APNs or FCM credentials delivers to that platform through the real
provider; a platform without credentials goes to the simulator. Providers are
kept per app (their HTTP/2 connections and tokens are worth reusing) and
rebuilt when the app's credentials change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from pushhub_server.core.apps import AppService
from pushhub_server.core.clock import Clock
from pushhub_server.core.credentials import ApnsCredentials, FcmCredentials
from pushhub_server.core.messages import Delivery, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.core.ports import DeliveryProvider

from .apns import ApnsProvider
from .fcm import FcmProvider


@dataclass(frozen=True)
class Endpoints:
    """Overrides of Apple's and Google's hosts (a staging relay, a test fake)."""

    apns_url: str | None = None
    apns_ca_file: str | None = None
    fcm_url: str | None = None
    fcm_ca_file: str | None = None
    apns_connections: int = 1


class PlatformRouter:
    """A DeliveryProvider that hands each delivery to its platform's provider."""

    def __init__(self, providers: dict[Platform, DeliveryProvider]) -> None:
        self._providers = providers

    async def send(self, deliveries: Sequence[Delivery]) -> list[DeliveryResult]:
        results: list[DeliveryResult | None] = [None] * len(deliveries)
        by_platform: dict[Platform, list[int]] = {}
        for index, delivery in enumerate(deliveries):
            by_platform.setdefault(delivery.platform, []).append(index)
        sent = await asyncio.gather(
            *(
                self._providers[platform].send([deliveries[i] for i in indexes])
                for platform, indexes in by_platform.items()
            )
        )
        for indexes, answers in zip(by_platform.values(), sent, strict=True):
            for index, answer in zip(indexes, answers, strict=True):
                results[index] = answer
        return results  # type: ignore[return-value]  # every index is filled above


@dataclass
class _AppProviders:
    apns: tuple[ApnsCredentials, ApnsProvider] | None
    fcm: tuple[FcmCredentials, FcmProvider] | None
    router: PlatformRouter


class ProviderRegistry:
    def __init__(
        self, apps: AppService, simulator: DeliveryProvider, clock: Clock, endpoints: Endpoints
    ) -> None:
        self._apps = apps
        self._simulator = simulator
        self._clock = clock
        self._endpoints = endpoints
        self._cache: dict[str, _AppProviders] = {}
        self._lock = asyncio.Lock()

    async def for_app(self, app_id: str) -> DeliveryProvider:
        """The app's router; one credentials read per call (a call per run)."""
        return (await self._current(app_id)).router

    async def apns(self, app_id: str) -> ApnsProvider | None:
        entry = (await self._current(app_id)).apns
        return entry[1] if entry else None

    async def fcm(self, app_id: str) -> FcmProvider | None:
        entry = (await self._current(app_id)).fcm
        return entry[1] if entry else None

    async def close(self) -> None:
        for entry in self._cache.values():
            await _close(entry)
        self._cache.clear()

    async def _current(self, app_id: str) -> _AppProviders:
        apns, fcm = await self._apps.provider_credentials(app_id)
        async with self._lock:
            cached = self._cache.get(app_id)
            if cached is not None and _same(cached, apns, fcm):
                return cached
            if cached is not None:
                await _close(cached)
            fresh = self._build(apns, fcm)
            self._cache[app_id] = fresh
            return fresh

    def _build(self, apns: ApnsCredentials | None, fcm: FcmCredentials | None) -> _AppProviders:
        ends = self._endpoints
        apns_entry = fcm_entry = None
        if apns is not None:
            provider = ApnsProvider(
                apns,
                self._clock,
                base_url=ends.apns_url,
                ca_file=ends.apns_ca_file,
                connections=ends.apns_connections,
            )
            apns_entry = (apns, provider)
        if fcm is not None:
            fcm_provider = FcmProvider(
                fcm.service_account,
                endpoint=ends.fcm_url,
                ca_file=ends.fcm_ca_file,
                clock=self._clock,
            )
            fcm_entry = (fcm, fcm_provider)
        router = PlatformRouter(
            {
                Platform.APNS: apns_entry[1] if apns_entry else self._simulator,
                Platform.FCM: fcm_entry[1] if fcm_entry else self._simulator,
            }
        )
        return _AppProviders(apns_entry, fcm_entry, router)


def _same(cached: _AppProviders, apns: ApnsCredentials | None, fcm: FcmCredentials | None) -> bool:
    return (cached.apns[0] if cached.apns else None) == apns and (
        cached.fcm[0] if cached.fcm else None
    ) == fcm


async def _close(entry: _AppProviders) -> None:
    if entry.apns:
        await entry.apns[1].close()
    if entry.fcm:
        await entry.fcm[1].close()
