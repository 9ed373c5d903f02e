"""Device registration use cases: validation, authorization, tracking."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .batching import UpsertBatcher
from .clock import Clock
from .device_tokens import check_device_token, token_forms
from .errors import (
    ErrorCode,
    PushHubError,
    invalid_field,
    permission_denied,
    registration_gone,
    required,
    too_many,
)
from .ids import new_id
from .json_documents import parse_json
from .limits import Limits
from .models import (
    CleanupTarget,
    DeviceActor,
    FailureReason,
    Page,
    Platform,
    Principal,
    Registration,
    RegistrationFilter,
    RegistrationInput,
    RequestState,
    Template,
    TokenKey,
    TrackedRequest,
    UpsertResult,
)
from .outbound import OutboundPolicy, OutboundRefused
from .pagination import clamp_page_size, decode_cursor, encode_cursor
from .pipeline import KeyedOrder
from .ports import (
    RegistrationRepository,
    RegistrationVerifier,
    TrackingRepository,
    WebhookSender,
)
from .selector import check_selector
from .validation import (
    check_count,
    check_future,
    check_http_headers,
    check_map,
    check_name,
    check_tag,
    check_tags,
    check_text,
    is_reserved_tag,
    is_valid_name,
)

DEFAULT_CHANNEL = "default"
# How long an invalidated registration is kept (hidden) before the sweeper deletes
# it: its device re-registering the token meanwhile revives it, keeping its id.
INVALIDATED_RETENTION = timedelta(days=7)
_log = logging.getLogger(__name__)
# Callback URLs when the operator lists no allowed hosts: https to public names only.
STRICT_CALLBACKS = OutboundPolicy()
# The answer for a batch item whose validation failed unexpectedly (a bug, logged).
_ITEM_FAILED = PushHubError(ErrorCode.INTERNAL, "INTERNAL", "internal error")


@dataclass(frozen=True)
class RegistrationDraft:
    """A RegisterDevice item as the client sent it, before validation."""

    platform: int
    device_token: str
    registration_id: str = ""
    channels: Sequence[str] = ()
    tags: Sequence[str] = ()
    user_id: str = ""
    expires_at: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    selector: str = ""
    track: bool = False
    callback_url: str = ""
    callback_headers: dict[str, str] = field(default_factory=dict)
    # A field the api layer could not convert (a timestamp beyond any date):
    # validation reports it, so it fails this item alone, tracked like any other.
    conversion_error: PushHubError | None = None


@dataclass(frozen=True)
class RegisterOutcome:
    result: UpsertResult
    request_id: str | None


def validate_draft(
    draft: RegistrationDraft,
    limits: Limits,
    now: datetime,
    device_actor: DeviceActor | None = None,
    callback_urls: OutboundPolicy = STRICT_CALLBACKS,
) -> RegistrationInput:
    if draft.conversion_error is not None:
        raise draft.conversion_error
    platform = parse_platform(draft.platform)
    if not draft.device_token:
        raise required("device_token")
    device_token = check_device_token(
        "device_token", platform, draft.device_token, limits.device_token
    )
    if draft.registration_id:
        check_text("registration_id", draft.registration_id, limits.registration_id)
    channels = tuple(dict.fromkeys(draft.channels)) or (DEFAULT_CHANNEL,)
    check_count("channels", channels, limits.channels_per_registration)
    for index, channel in enumerate(channels):
        # Name the field only for a failing channel (see check_tags).
        if not is_valid_name(channel, limits.channel_name):
            check_name(f"channels[{index}]", channel, limits.channel_name)
    tags = check_tags("tags", draft.tags, limits.tag, limits.tags_per_registration)
    check_text("user_id", draft.user_id, limits.user_id)
    if draft.expires_at is not None:
        check_future("expires_at", draft.expires_at, now, "5004", "INVALID_EXPIRATION")
    metadata = check_map(
        "metadata", draft.metadata, limits.metadata_keys, limits.metadata_key, limits.metadata_value
    )
    if draft.templates:
        _check_templates(draft.templates, limits)
    check_text("selector", draft.selector, limits.selector)
    if draft.selector:
        # Parsed now so a bad selector fails at registration, naming its position.
        check_selector(draft.selector, "selector", limits.selector)
    _check_callback(draft, limits, callback_urls)
    return RegistrationInput(
        platform=platform,
        device_token=device_token,
        channels=channels,
        tags=tags,
        user_id=draft.user_id or None,
        expires_at=draft.expires_at,
        metadata=metadata,
        templates=dict(draft.templates) if draft.templates else {},
        selector=draft.selector or None,
        registration_id=draft.registration_id or None,
        device_actor=device_actor,
    )


def parse_platform(value: int, field: str = "platform") -> Platform:
    try:
        return Platform(value)
    except ValueError:
        raise invalid_field(
            field, "INVALID_PLATFORM", f"{field} must be PLATFORM_APNS or PLATFORM_FCM"
        ) from None


def _check_templates(templates: dict[str, Template], limits: Limits) -> None:
    check_count("templates", templates, limits.templates_per_registration)
    for name, template in templates.items():
        check_name("templates.key", name, limits.template_name)
        check_text(f"templates[{name}].body", template.body, limits.template_body)
        try:
            parse_json(template.body)
        except ValueError as error:
            raise invalid_field(
                f"templates[{name}].body",
                "INVALID_TEMPLATE",
                f"template {name!r} is not JSON: {error}",
            ) from None
        check_tags(
            f"templates[{name}].tags", template.tags, limits.tag, limits.tags_per_registration
        )


def _check_callback(draft: RegistrationDraft, limits: Limits, urls: OutboundPolicy) -> None:
    if draft.callback_url:
        check_text("callback_url", draft.callback_url, limits.callback_url)
        try:
            # What can be refused before any DNS lookup; the addresses are checked
            # at send time (delivery.address_guard).
            urls.destination(draft.callback_url)
        except OutboundRefused as refused:
            raise invalid_field("callback_url", "INVALID_URL", f"callback_url {refused}") from None
    check_http_headers(
        "callback_headers", draft.callback_headers, limits.callback_headers, limits.callback_header
    )


def check_lookup(limits: Limits, **values: str | None) -> None:
    """Values used only to look rows up obey the rules of the values they look up:
    a filter that cannot match anything stored is refused, not answered empty."""
    for name, value in values.items():
        if not value:
            continue
        if name == "tag":
            check_tag(name, value, limits.tag)
        elif name == "channel":
            check_name(name, value, limits.channel_name)
        elif name == "user_id":
            check_text(name, value, limits.user_id)
        else:  # registration_id, request_id
            check_text(name, value, limits.registration_id)


def authorize_fields(principal: Principal, item: RegistrationInput) -> None:
    """Only a server key or a matching user token may set user_id or user: tags."""
    if principal.is_server:
        return
    reserved = [tag for tag in item.tags if is_reserved_tag(tag)]
    if item.user_id is None and not reserved:
        return
    if principal.user_id is None:
        # Say why a token that was sent did not count (expired, another app's...).
        why = f" ({principal.user_token_error})" if principal.user_token_error else ""
        raise permission_denied(
            "USER_TOKEN_REQUIRED",
            f"a device key needs a valid user-token to set user_id or user: tags{why}",
            field="user_id" if item.user_id else "tags",
        )
    if item.user_id not in (None, principal.user_id):
        raise permission_denied(
            "USER_TOKEN_MISMATCH", "user_id does not match the user token", field="user_id"
        )
    for tag in reserved:
        if tag != f"user:{principal.user_id}":
            raise permission_denied(
                "RESERVED_TAG", f"tag {tag!r} is reserved for user {tag[5:]!r}", field="tags"
            )


def actor_of(principal: Principal) -> DeviceActor | None:
    """What a device key may touch (DeviceActor.may_take); a server key may touch anything."""
    return None if principal.is_server else DeviceActor(principal.user_id)


def require_server(principal: Principal, action: str) -> None:
    if not principal.is_server:
        raise permission_denied(
            "SERVER_KEY_REQUIRED", f"a device key may not {action}", action=action
        )


def webhook_signature(api_key: str, callback_url: str) -> str:
    """HMAC-SHA256 of the callback URL keyed by the presenting API key, hex-encoded."""
    return hmac.new(api_key.encode(), callback_url.encode(), hashlib.sha256).hexdigest()


def failure_reason_for(error: PushHubError) -> FailureReason:
    if error.metadata.get("field") == "device_token" and error.reason == "VALUE_TOO_LONG":
        return FailureReason.DEVICE_TOKEN_TOO_LONG
    if error.code is ErrorCode.PERMISSION_DENIED and error.reason.startswith("USER_TOKEN"):
        return FailureReason.API_TOKEN_NOT_VALID
    return FailureReason.FAILED_TO_STORE_DEVICE


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
    ) -> None:
        self._registrations = registrations
        self._callback_urls = callback_urls
        self._tracking = tracking
        self._webhooks = webhooks
        self._clock = clock
        self._limits = limits
        self._verifier = verifier
        self._verifications: set[asyncio.Task[None]] = set()
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
                draft, self._limits, now, actor_of(principal), self._callback_urls
            )
            authorize_fields(principal, item)
            result = await self._batcher.upsert(principal.app_id, item)
        except PushHubError as error:
            result = error
        [outcome] = await self._track(principal, [draft], [result])
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
        return await self._track(principal, drafts, merged)

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
                valid.append(validate_draft(draft, self._limits, now, None, self._callback_urls))
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

    async def _track(
        self,
        principal: Principal,
        drafts: Sequence[RegistrationDraft],
        results: Sequence[UpsertResult | PushHubError],
    ) -> list[RegisterOutcome | PushHubError]:
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
                if await self._needs_dry_run(principal.app_id, registration, verified_platforms):
                    request = replace(request, state=RequestState.PENDING)
                    to_verify.append((request, registration))
            tracked.append(request)
            outcomes.append(_with_request_id(result, request.request_id))
        if tracked:
            await self._tracking.record(tracked, self._clock.now())
            for request in tracked:
                if request.state is not RequestState.PENDING:
                    self._notify(principal, request)
            for request, registration in to_verify:
                self._start_verification(principal, request, registration)
        return outcomes

    async def _needs_dry_run(
        self, app_id: str, registration: Registration, known: dict[Platform, bool]
    ) -> bool:
        if self._verifier is None:
            return False
        platform = registration.platform
        if platform not in known:
            known[platform] = await self._verifier.applies(app_id, platform)
        return known[platform]

    def _start_verification(
        self, principal: Principal, request: TrackedRequest, registration: Registration
    ) -> None:
        task = asyncio.create_task(self._verify(principal, request, registration))
        self._verifications.add(task)
        task.add_done_callback(self._verifications.discard)

    async def _verify(
        self, principal: Principal, request: TrackedRequest, registration: Registration
    ) -> None:
        """PENDING until the silent send answers; then SUCCESS or DRY_RUN_SENDING_FAILED."""
        assert self._verifier is not None
        try:
            accepted = await self._verifier.verify(
                principal.app_id, registration.platform, registration.device_token
            )
        except Exception:
            _log.exception("dry-run verification of %s failed", request.request_id)
            accepted = False
        state = RequestState.SUCCESS if accepted else RequestState.FAILED
        reason = None if accepted else FailureReason.DRY_RUN_SENDING_FAILED
        await self._tracking.finish(principal.app_id, request.request_id, state, reason)
        self._notify(principal, replace(request, state=state, failure_reason=reason))

    async def drain(self, timeout: float) -> None:
        """Lets dry-run verifications in flight finish (on shutdown)."""
        if self._verifications:
            await asyncio.wait(set(self._verifications), timeout=timeout)

    def _notify(self, principal: Principal, request: TrackedRequest) -> None:
        if not request.callback_url:
            return
        body = {
            "status": request.state.name,
            "signature": webhook_signature(principal.api_key, request.callback_url),
            "failure_reason": request.failure_reason.name if request.failure_reason else None,
        }
        self._webhooks.send(request.callback_url, request.callback_headers, body)

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
        self, principal: Principal, registration_id: str, platform: int, device_token: str
    ) -> int:
        """Removes the registration named by id or token, counting it only if live.

        An expired or invalidated one goes too, but clients already see it gone:
        by id that answers REGISTRATION_GONE, by token 0. The repository checks
        ownership in the delete itself, so no write slips between check and delete.
        """
        check_lookup(self._limits, registration_id=registration_id)
        # Refused even when unused (by id): proto3 enums carry any number.
        chosen = parse_platform(platform) if platform else None
        app_id, actor, now = principal.app_id, actor_of(principal), self._clock.now()
        if registration_id:
            removed = await self._registrations.delete(app_id, registration_id, actor, now)
            if not removed:
                raise registration_gone(registration_id)
            return removed
        if not device_token:
            raise required("registration_id")
        if chosen is None:
            chosen = parse_platform(platform)  # refuses PLATFORM_UNSPECIFIED
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
        found = await self._tracking.get_many(principal.app_id, list(dict.fromkeys(request_ids)))
        return [
            found.get(request_id)
            or TrackedRequest(request_id, principal.app_id, RequestState.PENDING, None, None, {})
            for request_id in request_ids
        ]

    async def sweep(self) -> int:
        """Deletes expired registrations, and those invalidated over INVALIDATED_RETENTION ago."""
        now = self._clock.now()
        return await self._registrations.delete_stale(now, now - INVALIDATED_RETENTION)


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
        _check_callback(draft, limits, callback_urls)
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


def _filter_key(where: RegistrationFilter) -> str:
    platform = int(where.platform) if where.platform else 0
    return json.dumps([where.user_id, where.channel, where.tag, platform])


def _touched(items: Sequence[RegistrationInput]) -> frozenset[TokenKey] | None:
    """The (platform, token digest) keys of the rows a batch writes; None when an item
    names a registration id: which row that touches is only known inside the write."""
    if any(item.registration_id for item in items):
        return None
    return frozenset(item.token_key for item in items)
