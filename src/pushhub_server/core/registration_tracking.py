"""Tracked registration requests (Customer Insights - Journeys).

A RegisterDevice item sent with `track` gets a request id. Its state is
recorded (SUCCESS; FAILED with a reason; PENDING while a dry run proves the
token), clients read it back by id, and its callback_url hears how it ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .clock import Clock
from .dry_run_verification import DryRunVerifications
from .errors import ErrorCode, PushHubError
from .ids import new_id
from .limits import Limits
from .models import (
    FailureReason,
    Platform,
    Principal,
    Registration,
    RequestState,
    TrackedRequest,
    UpsertResult,
)
from .outbound import OutboundPolicy
from .ports import RegistrationVerifier, TrackingRepository, WebhookSender
from .registration_rules import RegistrationDraft, check_callback
from .registration_webhooks import call_back


@dataclass(frozen=True)
class RegisterOutcome:
    result: UpsertResult
    request_id: str | None


def failure_reason_for(error: PushHubError) -> FailureReason:
    if error.metadata.get("field") == "device_token" and error.reason == "VALUE_TOO_LONG":
        return FailureReason.DEVICE_TOKEN_TOO_LONG
    if error.code is ErrorCode.PERMISSION_DENIED and error.reason.startswith("USER_TOKEN"):
        return FailureReason.API_TOKEN_NOT_VALID
    return FailureReason.FAILED_TO_STORE_DEVICE


class RegistrationTracker:
    def __init__(
        self,
        tracking: TrackingRepository,
        webhooks: WebhookSender,
        clock: Clock,
        limits: Limits,
        verifier: RegistrationVerifier | None,
        callback_urls: OutboundPolicy,
    ) -> None:
        self._tracking = tracking
        self._webhooks = webhooks
        self._clock = clock
        self._limits = limits
        self._callback_urls = callback_urls
        self._dry_runs = DryRunVerifications(verifier, self._finish)

    async def track(
        self,
        principal: Principal,
        drafts: Sequence[RegistrationDraft],
        results: Sequence[UpsertResult | PushHubError],
    ) -> list[RegisterOutcome | PushHubError]:
        """Each item's answer; a tracked one's carries its request id, recorded here."""
        outcomes: list[RegisterOutcome | PushHubError] = []
        tracked: list[TrackedRequest] = []
        to_verify: list[tuple[TrackedRequest, Registration]] = []
        verified_platforms: dict[Platform, bool] = {}
        for draft, result in zip(drafts, results, strict=True):
            if not draft.track:
                outcomes.append(
                    result if isinstance(result, PushHubError) else RegisterOutcome(result, None)
                )
                continue
            request = _tracked_request(
                principal.app_id, draft, result, self._limits, self._callback_urls
            )
            if request.state is RequestState.SUCCESS and isinstance(result, UpsertResult):
                registration = result.registration
                if await self._dry_runs.needed(
                    principal.app_id, registration.platform, verified_platforms
                ):
                    request = replace(request, state=RequestState.PENDING)
                    to_verify.append((request, registration))
            tracked.append(request)
            outcomes.append(_with_request_id(result, request.request_id))
        if tracked:
            await self._tracking.record(tracked, self._clock.now())
            for request in tracked:
                if request.state is not RequestState.PENDING:
                    call_back(self._webhooks, principal, request)
            for request, registration in to_verify:
                self._dry_runs.start(principal, request, registration)
        return outcomes

    async def _finish(self, principal: Principal, request: TrackedRequest, accepted: bool) -> None:
        """PENDING until the silent send answers; then SUCCESS or DRY_RUN_SENDING_FAILED."""
        state = RequestState.SUCCESS if accepted else RequestState.FAILED
        reason = None if accepted else FailureReason.DRY_RUN_SENDING_FAILED
        await self._tracking.finish(principal.app_id, request.request_id, state, reason)
        call_back(self._webhooks, principal, replace(request, state=state, failure_reason=reason))

    async def statuses(self, app_id: str, request_ids: Sequence[str]) -> list[TrackedRequest]:
        """In request order. Unknown ids answer PENDING, as Journeys does: no history."""
        found = await self._tracking.get_many(app_id, list(dict.fromkeys(request_ids)))
        return [
            found.get(request_id)
            or TrackedRequest(request_id, app_id, RequestState.PENDING, None, None, {})
            for request_id in request_ids
        ]

    async def drain(self, timeout: float) -> None:
        """Lets dry runs in flight finish (on shutdown)."""
        await self._dry_runs.drain(timeout)


def _tracked_request(
    app_id: str,
    draft: RegistrationDraft,
    result: UpsertResult | PushHubError,
    limits: Limits,
    callback_urls: OutboundPolicy,
) -> TrackedRequest:
    if isinstance(result, PushHubError):
        state, reason = RequestState.FAILED, failure_reason_for(result)
    elif result.unchanged:
        state, reason = RequestState.FAILED, FailureReason.DUPLICATE_EXISTS
    else:
        state, reason = RequestState.SUCCESS, None
    try:
        check_callback(draft, limits, callback_urls)
    except PushHubError:
        # The request failed on its callback itself: record it, but call nothing.
        return TrackedRequest(new_id(), app_id, state, reason, None, {})
    return TrackedRequest(
        new_id(), app_id, state, reason, draft.callback_url or None, dict(draft.callback_headers)
    )


def _with_request_id(
    result: UpsertResult | PushHubError, request_id: str
) -> RegisterOutcome | PushHubError:
    if isinstance(result, PushHubError):
        return replace(result, metadata={**result.metadata, "request_id": request_id})
    return RegisterOutcome(result, request_id)
