"""Dry-run verification of tracked registrations (Customer Insights - Journeys).

APNs gets a background push (apns-push-type background, priority 5), which
shows nothing to the user; FCM gets the message with validate_only, which it
checks without delivering. Apps without real credentials are not verified;
credentials that cannot be used fail the dry run (registry.UnusableProvider).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform

from .providers.fcm import FcmProvider
from .providers.registry import ProviderRegistry
from .retry_policy import RetryPolicy

_BACKGROUND_PUSH = json.dumps({"aps": {"content-available": 1}}, separators=(",", ":")).encode()


class DryRunVerifier:
    def __init__(self, providers: ProviderRegistry, retry: RetryPolicy | None = None) -> None:
        self._providers = providers
        # A 429 or 503 at registration time is the provider's trouble, not the token's.
        self._retry = retry or RetryPolicy()

    async def applies(self, app_id: str, platform: Platform) -> bool:
        return await self._providers.configured(app_id, platform)

    async def verify(self, app_id: str, platform: Platform, device_token: str) -> bool:
        # Held for the retries too: a credentials change meanwhile must not close it.
        async with self._providers.real_provider(app_id, platform) as provider:
            if provider is None:
                return False
            if platform is Platform.APNS:
                delivery = _background_push(app_id, device_token)
            else:
                delivery = _validation_message(app_id, device_token)
                # Unusable credentials stand in with a provider that refuses everything.
                if isinstance(provider, FcmProvider):
                    provider = _ValidateOnly(provider)
            [result] = await self._retry.send(provider, [delivery])
        return result.outcome is DeliveryOutcome.SENT


def _background_push(app_id: str, device_token: str) -> Delivery:
    headers = {
        "apns-push-type": "background",
        "apns-priority": "5",
        "apns-expiration": "0",
        "apns-id": str(uuid.uuid4()),
    }
    return _delivery(app_id, Platform.APNS, device_token, _BACKGROUND_PUSH, headers)


def _validation_message(app_id: str, device_token: str) -> Delivery:
    body = {"message": {"token": device_token, "data": {"pushhub": "verification"}}}
    payload = json.dumps(body, separators=(",", ":")).encode()
    return _delivery(app_id, Platform.FCM, device_token, payload, {})


class _ValidateOnly:
    """An FCM provider whose sends are validate_only dry runs."""

    def __init__(self, provider: FcmProvider) -> None:
        self._provider = provider

    async def send(self, deliveries: Sequence[Delivery]) -> list[DeliveryResult]:
        return [await self._provider.validate(delivery) for delivery in deliveries]


def _delivery(
    app_id: str, platform: Platform, token: str, payload: bytes, headers: dict[str, str]
) -> Delivery:
    # Not a message: the ids only label the send in logs.
    return Delivery("verification", app_id, "", platform, token, payload, headers)
