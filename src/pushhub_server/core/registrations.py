"""Device registration use cases: register, read, list, retag, unregister, sweep.

The rules live in their own modules: what a registration must be
(registration_rules), what each key may do (key_rights), and what tracked
requests record and call back (registration_tracking).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from .batching import UpsertBatcher
from .clock import Clock
from .device_tokens import check_device_token, token_forms
from .errors import (
    ErrorCode,
    PushHubError,
    accepted,
    invalid_field,
    registration_gone,
    required,
    too_many,
)
from .ids import new_id
from .key_rights import actor_of, authorize_fields, require_server
from .limits import Limits
from .models import (
    CleanupTarget,
    Page,
    Platform,
    Principal,
    Registration,
    RegistrationFilter,
    RegistrationInput,
    TokenKey,
    TrackedRequest,
    UpsertResult,
)
from .outbound import OutboundPolicy
from .pagination import clamp_page_size, decode_cursor, encode_cursor
from .pipeline import KeyedOrder
from .ports import (
    RegistrationRepository,
    RegistrationVerifier,
    TrackingRepository,
    WebhookSender,
)
from .registration_rules import (
    PUSH_SERVICES_ONLY,
    STRICT_CALLBACKS,
    RegistrationDraft,
    check_lookup,
    validate_draft,
)
from .registration_tracking import RegisterOutcome, RegistrationTracker
from .validation import check_count, check_tags, check_text
from .web_push_endpoints import EndpointPolicy

# How long an invalidated registration is kept (hidden) before the sweeper deletes
# it: its device re-registering the token meanwhile revives it, keeping its id.
INVALIDATED_RETENTION = timedelta(days=7)
_log = logging.getLogger(__name__)
# The answer for a batch item whose validation failed unexpectedly (a bug, logged).
_ITEM_FAILED = PushHubError(ErrorCode.INTERNAL, "INTERNAL", "internal error")


class RegistrationService:
    def __init__(
        self,
        registrations: RegistrationRepository,
        tracking: TrackingRepository,
        webhooks: WebhookSender,
        clock: Clock,
        limits: Limits,
        verifier: RegistrationVerifier | None = None,
        callback_urls: OutboundPolicy = STRICT_CALLBACKS,
        web_push_endpoints: EndpointPolicy = PUSH_SERVICES_ONLY,
    ) -> None:
        self._registrations = registrations
        self._callback_urls = callback_urls
        self._web_push_endpoints = web_push_endpoints
        self._clock = clock
        self._limits = limits
        self._tracker = RegistrationTracker(
            tracking, webhooks, clock, limits, verifier, callback_urls
        )
        # Concurrent RegisterDevice calls share write transactions (group commit).
        self._batcher = UpsertBatcher(self._upsert_now, limits.batch_items)

    @property
    def limits(self) -> Limits:
        return self._limits

    async def create_registration_id(self, principal: Principal) -> str:
        registration_id = new_id()
        await self._registrations.reserve_id(principal.app_id, registration_id, self._clock.now())
        return registration_id

    async def register(self, principal: Principal, draft: RegistrationDraft) -> RegisterOutcome:
        now = self._clock.now()
        try:
            item = validate_draft(
                draft,
                self._limits,
                now,
                actor_of(principal),
                self._callback_urls,
                self._web_push_endpoints,
            )
            authorize_fields(principal, item)
            result = await self._batcher.upsert(principal.app_id, item)
        except PushHubError as error:
            result = error
        [outcome] = await self._tracker.track(principal, [draft], [result])
        if isinstance(outcome, PushHubError):
            raise outcome
        return outcome

    async def register_many(
        self,
        principal: Principal,
        drafts: Sequence[RegistrationDraft],
        order: KeyedOrder | None = None,
    ) -> list[RegisterOutcome | PushHubError]:
        """A batch import: each item succeeds or fails alone. Server keys only.

        The batches of one stream share an ``order``: a batch validates while
        earlier ones are written, and its own write waits for every earlier one
        it could interfere with (a shared token; any, when it names a
        registration id), so they resolve exactly as sequential calls would.
        Its place in the order is taken before the first await.
        """
        require_server(principal, "import registrations in batches")
        self.check_batch_size(len(drafts))
        now = self._clock.now()
        valid, errors = self._validate_batch(drafts, now)
        async with (order or KeyedOrder()).turn(_touched(valid)):
            stored = iter(await self._registrations.upsert_many(principal.app_id, valid, now))
        merged = [next(stored) if error is None else error for error in errors]
        return await self._tracker.track(principal, drafts, merged)

    def check_batch_size(self, count: int) -> None:
        """A batch over the limit is refused once, as a whole: one error per item
        would make an answer bigger than the batch (200,000 items: 53 MB)."""
        if count > self._limits.batch_items:
            raise too_many(
                "registrations",
                self._limits.batch_items,
                f"a batch holds at most {self._limits.batch_items} registrations",
            )

    def _validate_batch(
        self, drafts: Sequence[RegistrationDraft], now: datetime
    ) -> tuple[list[RegistrationInput], list[PushHubError | None]]:
        """The valid items, and per draft its error or None when it is among them.

        No item's failure, however unexpected, reaches the others: a bad item
        never aborts the stream.
        """
        errors: list[PushHubError | None] = []
        valid: list[RegistrationInput] = []
        for draft in drafts:
            try:
                valid.append(
                    validate_draft(
                        draft,
                        self._limits,
                        now,
                        None,
                        self._callback_urls,
                        self._web_push_endpoints,
                    )
                )
                errors.append(None)
            except PushHubError as error:
                errors.append(error)
            except Exception:  # noqa: BLE001 - a bug in a rule fails its item only
                _log.exception("validating a batch item failed")
                errors.append(_ITEM_FAILED)
        return valid, errors

    async def _upsert_now(
        self, app_id: str, items: Sequence[RegistrationInput]
    ) -> list[UpsertResult | PushHubError]:
        """Timestamps come from when the batch's transaction starts."""
        return await self._registrations.upsert_many(app_id, items, self._clock.now())

    async def drain(self, timeout: float) -> None:
        """Lets dry-run verifications in flight finish (on shutdown)."""
        await self._tracker.drain(timeout)

    async def get(self, principal: Principal, registration_id: str) -> Registration:
        require_server(principal, "read registrations")
        if not registration_id:
            raise required("registration_id")
        check_lookup(self._limits, registration_id=registration_id)
        found = await self._registrations.get(principal.app_id, registration_id, self._clock.now())
        if found is None:
            raise registration_gone(registration_id)
        return found

    async def list(
        self, principal: Principal, where: RegistrationFilter, page_size: int, page_token: str
    ) -> tuple[list[Registration], str]:
        require_server(principal, "list registrations")
        limit = clamp_page_size(page_size, self._limits)
        check_lookup(self._limits, user_id=where.user_id, channel=where.channel, tag=where.tag)
        filter_key = _filter_key(where)
        after = decode_cursor(page_token, filter_key) if page_token else None
        page: Page = await self._registrations.list(
            principal.app_id, where, limit, after, self._clock.now()
        )
        token = encode_cursor(page.next_cursor, filter_key) if page.next_cursor else ""
        return page.items, token

    def page_token(self, where: RegistrationFilter, last: Registration) -> str:
        """The token of the page after `last`, for a page cut short."""
        return encode_cursor(last.registration_id, _filter_key(where))

    async def update_tags(
        self,
        principal: Principal,
        registration_id: str,
        where: RegistrationFilter,
        add: Sequence[str],
        remove: Sequence[str],
    ) -> int:
        require_server(principal, "update tags")
        chosen = [
            name
            for name, value in (
                ("registration_id", registration_id),
                ("user_id", where.user_id),
                ("tag", where.tag),
            )
            if value
        ]
        if len(chosen) != 1:
            raise invalid_field(
                "registration_id",
                "INVALID_SELECTION",
                "set exactly one of registration_id, user_id and tag",
            )
        limits = self._limits
        check_lookup(limits, registration_id=registration_id, user_id=where.user_id, tag=where.tag)
        add_tags = check_tags("add_tags", add, limits.tag, limits.tag_update_values)
        remove_tags = check_tags("remove_tags", remove, limits.tag, limits.tag_update_values)
        if not add_tags and not remove_tags:
            raise required("add_tags")
        updated = await self._registrations.update_tags(
            principal.app_id,
            registration_id or None,
            where,
            add_tags,
            remove_tags,
            limits.tags_per_registration,
            self._clock.now(),
        )
        if registration_id and not updated:
            raise registration_gone(registration_id)
        return updated

    async def unregister(
        self,
        principal: Principal,
        registration_id: str,
        platform: Platform | PushHubError | None,
        device_token: str,
    ) -> int:
        """Removes the registration named by id or token, counting it only if live.

        An expired or invalidated one goes too, but clients already see it gone:
        by id that answers REGISTRATION_GONE, by token 0. The repository checks
        ownership in the delete itself, so no write slips between check and delete.
        """
        check_lookup(self._limits, registration_id=registration_id)
        # Refused even when unused (by id): proto3 enums carry any number.
        chosen = accepted(platform)
        app_id, actor, now = principal.app_id, actor_of(principal), self._clock.now()
        if registration_id:
            removed = await self._registrations.delete(app_id, registration_id, actor, now)
            if not removed:
                raise registration_gone(registration_id)
            return removed
        if not device_token:
            raise required("registration_id")
        if chosen is None:
            raise invalid_field(
                "platform", "INVALID_PLATFORM", "platform must be given with device_token"
            )
        token = check_device_token("device_token", chosen, device_token, self._limits.device_token)
        return await self._registrations.delete_by_token(app_id, chosen, token, actor, now)

    async def cleanup(self, principal: Principal, targets: Sequence[CleanupTarget]) -> int:
        require_server(principal, "clean up devices")
        if not targets:
            raise required("targets")
        check_count("targets", targets, self._limits.cleanup_targets)
        chosen: list[CleanupTarget] = []
        for index, target in enumerate(targets):
            if not target.user_id:
                raise required(f"targets[{index}].user_id")
            check_text(f"targets[{index}].user_id", target.user_id, self._limits.user_id)
            if target.device_token is None:
                chosen.append(target)
                continue
            # No platform here: the token is looked up in each form it may be stored in.
            field_name = f"targets[{index}].device_token"
            for token in token_forms(field_name, target.device_token, self._limits.device_token):
                chosen.append(CleanupTarget(target.user_id, token))
        return await self._registrations.cleanup(principal.app_id, chosen, self._clock.now())

    async def registration_statuses(
        self, principal: Principal, request_ids: Sequence[str]
    ) -> list[TrackedRequest]:
        """In request order. Unknown ids answer PENDING, as Journeys does: no history."""
        require_server(principal, "read registration statuses")
        check_count("request_ids", request_ids, self._limits.request_ids)
        for request_id in request_ids:
            check_lookup(self._limits, request_id=request_id)
        return await self._tracker.statuses(principal.app_id, request_ids)

    async def sweep(self) -> int:
        """Deletes expired registrations, and those invalidated over INVALIDATED_RETENTION ago."""
        now = self._clock.now()
        return await self._registrations.delete_stale(now, now - INVALIDATED_RETENTION)


def _filter_key(where: RegistrationFilter) -> str:
    platform = where.platform.value if where.platform else 0
    return json.dumps([where.user_id, where.channel, where.tag, platform])


def _touched(items: Sequence[RegistrationInput]) -> frozenset[TokenKey] | None:
    """The (platform, token digest) keys of the rows a batch writes; None when an item
    names a registration id: which row that touches is only known inside the write."""
    if any(item.registration_id for item in items):
        return None
    return frozenset(item.token_key for item in items)
