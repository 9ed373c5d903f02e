"""Dry-run verification of tracked registrations (Customer Insights - Journeys).

The platform's dry-run payload (payloads.dry_run_payload) goes to the app's real
provider with validate_only: FCM and HMS check their data message without
delivering it; APNs, which has no such mode, gets a silent background push
(apns-push-type background, priority 5), which shows nothing to the user. Web
Push has no such mode either: its provider checks the endpoint, its addresses
and the keys, encrypts, and posts nothing. Apps without real
credentials are not verified; credentials that cannot be used fail the dry run
(registry.UnusableProvider).
"""

from __future__ import annotations

from pushhub_server.core.messages import Delivery, DeliveryOutcome
from pushhub_server.core.models import Platform
from pushhub_server.core.web_push import WebPushKeys

from .payloads import dry_run_payload
from .providers.registry import ProviderRegistry
from .retry_policy import RetryPolicy


class DryRunVerifier:
    def __init__(self, providers: ProviderRegistry, retry: RetryPolicy | None = None) -> None:
        self._providers = providers
        # A 429 or 503 at registration time is the provider's trouble, not the token's.
        self._retry = retry or RetryPolicy()

    async def applies(self, app_id: str, platform: Platform) -> bool:
        return await self._providers.configured(app_id, platform)

    async def verify(
        self,
        app_id: str,
        platform: Platform,
        device_token: str,
        web_push_keys: WebPushKeys | None = None,
    ) -> bool:
        # Held for the retries too: a credentials change meanwhile must not close it.
        async with self._providers.real_provider(app_id, platform) as provider:
            if provider is None:
                return False
            payload = dry_run_payload(platform, device_token)
            # Not a message: the ids only label the send in logs.
            delivery = Delivery(
                "verification",
                app_id,
                "",
                platform,
                device_token,
                payload.body,
                payload.headers,
                web_push_keys,
            )
            [result] = await self._retry.send(provider, [delivery], validate_only=True)
        return result.outcome is DeliveryOutcome.SENT
