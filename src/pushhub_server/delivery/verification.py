"""Dry-run verification of tracked registrations (Customer Insights - Journeys).

APNs gets a background push (apns-push-type background, priority 5), which
shows nothing to the user; FCM gets the message with validate_only, which it
checks without delivering. Apps without real credentials are not verified.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform

from .providers.base import RetryPolicy
from .providers.fcm import FcmProvider
from .providers.registry import ProviderRegistry

_BACKGROUND_PUSH = json.dumps({"aps": {"content-available": 1}}, separators=(",", ":")).encode()


class DryRunVerifier:
    def __init__(self, providers: ProviderRegistry, retry: RetryPolicy | None = None) -> None:
        self._providers = providers
        # A 429 or 503 at registration time is the provider's trouble, not the token's.
        self._retry = retry or RetryPolicy()

    async def applies(self, app_id: str, platform: Platform) -> bool:
        if platform is Platform.APNS:
            return await self._providers.apns(app_id) is not None
        return await self._providers.fcm(app_id) is not None

    async def verify(self, app_id: str, platform: Platform, device_token: str) -> bool:
        if platform is Platform.APNS:
            return await self._verify_apns(app_id, device_token)
        return await self._verify_fcm(app_id, device_token)

    async def _verify_apns(self, app_id: str, device_token: str) -> bool:
        provider = await self._providers.apns(app_id)
        if provider is None:
            return False
        headers = {
            "apns-push-type": "background",
            "apns-priority": "5",
            "apns-expiration": "0",
            "apns-id": str(uuid.uuid4()),
        }
        delivery = _delivery(app_id, Platform.APNS, device_token, _BACKGROUND_PUSH, headers)
        [result] = await self._retry.send(provider, [delivery])
        return result.outcome is DeliveryOutcome.SENT

    async def _verify_fcm(self, app_id: str, device_token: str) -> bool:
        provider = await self._providers.fcm(app_id)
        if provider is None:
            return False
        body = {"message": {"token": device_token, "data": {"pushhub": "verification"}}}
        payload = json.dumps(body, separators=(",", ":")).encode()
        delivery = _delivery(app_id, Platform.FCM, device_token, payload, {})
        [result] = await self._retry.send(_ValidateOnly(provider), [delivery])
        return result.outcome is DeliveryOutcome.SENT


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
