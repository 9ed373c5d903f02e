"""Publishing use cases: validate, store, cancel and report messages."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .clock import Clock
from .delivery_metrics import NO_DELIVERY_METRICS
from .errors import ErrorCode, PushHubError, accepted, invalid_field, not_found
from .ids import new_id
from .key_rights import require_publisher, require_server
from .limits import Limits
from .messages import Audience, Message, MessageState, MessageStatus, Schedule
from .models import Platform, Principal
from .notifications import NotificationContent, parse_json_object, validate_content
from .ports import DeliveryMetrics, MessageRepository, StatusSignal
from .registration_rules import DEFAULT_CHANNEL
from .tag_expression import parse_tag_expression
from .validation import check_count, check_map, check_name, check_text

# Notification fields of free text (badge is a number, data a map).
_NOTIFICATION_TEXTS = ("title", "body", "subtitle", "sound", "image_url", "category", "thread_id")


@dataclass(frozen=True)
class PublishDraft:
    """A Publish request as the client sent it; apns_json/fcm_json still text."""

    content: NotificationContent
    apns_json: str = ""
    fcm_json: str = ""
    channel: str = ""
    broadcast: bool = False
    tag_expression: str = ""
    user_ids: Sequence[str] = ()
    registration_ids: Sequence[str] = ()
    # Each entry, or the api layer's refusal of the number the client sent.
    platforms: Sequence[Platform | PushHubError] = ()
    publish_at: datetime | None = None
    repeat_every: timedelta | None = None
    repeat_expires_at: datetime | None = None
    request_id: str = ""


@dataclass
class PublishingService:
    messages: MessageRepository
    clock: Clock
    limits: Limits
    # Renders the content for each platform given (none: any platform) and raises
    # when a payload is too large.
    check_payload_size: Callable[[NotificationContent, Sequence[Platform]], None]
    signal: StatusSignal
    # Called after a message is stored, so the scheduler need not wait to notice it.
    on_published: Callable[[], None] = field(default=lambda: None)
    # Seconds between database reads while watching, when no signal arrives
    # (another server process may be the one publishing).
    watch_poll_seconds: float = 2.0
    # Told when a cancel ends a message (the dispatcher reports the other ends).
    metrics: DeliveryMetrics = NO_DELIVERY_METRICS
    # The calling Publish's trace context (a W3C traceparent), None with tracing off.
    trace_context: Callable[[], str | None] = field(default=lambda: None)

    async def publish(self, principal: Principal, draft: PublishDraft) -> str:
        """Stores the message SCHEDULED; returns its id. A refusal raises and stores
        nothing, so every stored message's answer is SCHEDULED, a repeated
        request_id's (AIP-155) included."""
        require_publisher(principal)
        request_id = self._request_id(draft.request_id)
        if request_id is not None:
            # AIP-155: a retry gets the first answer, even once its publish_at has
            # passed and the same request would now be refused.
            existing = await self.messages.find_request(principal.app_id, request_id)
            if existing is not None:
                return existing
        now = self.clock.now()
        audience = self._audience(draft)
        message = Message(
            message_id=new_id(),
            app_id=principal.app_id,
            content=self._content(draft, audience.platforms),
            audience=audience,
            schedule=self._schedule(draft, now),
            created_at=now,
            request_id=request_id,
            trace_context=self.trace_context(),
        )
        # A concurrent twin with the same request_id may have been stored since
        # the lookup: create then answers its id, and the answer is the same.
        message_id, created = await self.messages.create(message)
        if created:
            self.on_published()
        return message_id

    async def cancel(self, principal: Principal, message_id: str) -> MessageStatus:
        require_publisher(principal)
        status = await self._status(principal.app_id, message_id)
        if status.state.terminal or not await self.messages.cancel(
            principal.app_id, message_id, self.clock.now()
        ):
            raise PushHubError(
                ErrorCode.FAILED_PRECONDITION,
                "MESSAGE_FINISHED",
                f"message {message_id!r} has already finished; nothing to cancel",
                {"message_id": message_id},
            )
        self.metrics.message_ended(MessageState.CANCELLED)
        self.signal.notify(message_id)
        return await self._status(principal.app_id, message_id)

    async def status(self, principal: Principal, message_id: str) -> MessageStatus:
        require_server(principal, "read message statuses")
        return await self._status(principal.app_id, message_id)

    async def watch(
        self, principal: Principal, message_id: str
    ) -> AsyncGenerator[MessageStatus, None]:
        """Each distinct status until a terminal one; waits on the signal, not a busy loop."""
        require_server(principal, "watch message statuses")
        last: MessageStatus | None = None
        # Listening before each read: a notify that lands during the read or the
        # yield wakes the next wait at once instead of being lost until the poll.
        listener = self.signal.listen(message_id)
        try:
            while True:
                current = await self._status(principal.app_id, message_id)
                if current != last:
                    yield current
                    last = current
                if current.state.terminal:
                    return
                await listener.wait(self.watch_poll_seconds)
        finally:
            listener.close()

    async def _status(self, app_id: str, message_id: str) -> MessageStatus:
        if message_id:
            check_text("message_id", message_id, self.limits.registration_id)
            status = await self.messages.status(app_id, message_id)
            if status is not None:
                return status
        raise not_found(
            "MESSAGE_NOT_FOUND", f"no message {message_id!r} in this app", message_id=message_id
        )

    def _content(self, draft: PublishDraft, platforms: Sequence[Platform]) -> NotificationContent:
        limits = self.limits
        content = draft.content
        check_text("message", content.message, limits.message)
        # Checked before anything is rendered: a text longer than the whole payload
        # can never be sent, and rendering a 16 MB request held the event loop for seconds.
        for name in _NOTIFICATION_TEXTS:
            check_text(f"notification.{name}", getattr(content, name), limits.message)
        check_map(
            "notification.data",
            content.data,
            limits.notification_data,
            limits.header_key,
            limits.message,
        )
        check_text("publisher_id", content.publisher_id, limits.publisher_id)
        check_map(
            "headers", content.headers, limits.headers, limits.header_key, limits.header_value
        )
        check_map(
            "template_properties",
            content.template_properties,
            limits.template_properties,
            limits.template_name,
            limits.header_value,
        )
        if content.template_name:
            check_name("template_name", content.template_name, limits.template_name)
        check_text("apns_json", draft.apns_json, limits.json_document)
        check_text("fcm_json", draft.fcm_json, limits.json_document)
        content = replace(
            content,
            apns_json=parse_json_object("apns_json", draft.apns_json),
            fcm_json=parse_json_object("fcm_json", draft.fcm_json),
        )
        validate_content(content)
        self.check_payload_size(content, platforms)
        return content

    def _audience(self, draft: PublishDraft) -> Audience:
        limits = self.limits
        if draft.broadcast and draft.channel:
            raise invalid_field(
                "channel", "CONFLICTING_AUDIENCE", "set channel or broadcast, not both"
            )
        if draft.channel:
            check_name("channel", draft.channel, limits.channel_name)
        if draft.tag_expression:
            check_text("tag_expression", draft.tag_expression, limits.tag_expression)
            parse_tag_expression(draft.tag_expression, "tag_expression", limits.tag_expression_tags)
        user_ids = _unique_texts("user_ids", draft.user_ids, limits.user_id, limits)
        registration_ids = _unique_texts(
            "registration_ids", draft.registration_ids, limits.registration_id, limits
        )
        # Counted before any entry is refused: a list over the limit is refused as a whole.
        check_count("platforms", draft.platforms, limits.platforms)
        platforms = tuple(dict.fromkeys(accepted(entry) for entry in draft.platforms))
        narrowed = draft.broadcast or draft.tag_expression or user_ids or registration_ids
        channel = draft.channel or (None if narrowed else DEFAULT_CHANNEL)
        return Audience(
            channel=channel,
            broadcast=draft.broadcast,
            tag_expression=draft.tag_expression or None,
            user_ids=user_ids,
            registration_ids=registration_ids,
            platforms=platforms,
        )

    def _schedule(self, draft: PublishDraft, now: datetime) -> Schedule:
        if draft.publish_at is not None and draft.publish_at < now:
            raise invalid_field(
                "publish_at",
                "INVALID_PUBLISH_AT",
                "publish_at must not be in the past",
                legacy_code="5030",
            )
        first = draft.publish_at or now
        if draft.repeat_every is not None:
            self._check_repeat_every(draft.repeat_every)
        expires = draft.repeat_expires_at
        if expires is not None and (expires <= now or expires < first):
            raise invalid_field(
                "repeat_expires_at",
                "INVALID_REPEAT_EXPIRES_AT",
                "repeat_expires_at must be in the future and not before publish_at",
                legacy_code="5003",
            )
        return Schedule(first, draft.repeat_every, expires)

    def _check_repeat_every(self, every: timedelta) -> None:
        shortest = timedelta(seconds=self.limits.min_repeat_seconds)
        longest = timedelta(days=self.limits.max_repeat_days)
        if not shortest <= every <= longest:
            raise invalid_field(
                "repeat_every",
                "INVALID_REPEAT_EVERY",
                f"repeat_every must be between {self.limits.min_repeat_seconds:g} second(s)"
                f" and {self.limits.max_repeat_days} days",
            )

    def _request_id(self, request_id: str) -> str | None:
        if not request_id:
            return None
        return check_text("request_id", request_id, self.limits.request_id)


def _unique_texts(
    field_name: str, values: Sequence[str], limit: int, limits: Limits
) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(values))
    check_count(field_name, unique, limits.publish_targets)
    for index, value in enumerate(unique):
        if not value:
            raise invalid_field(
                f"{field_name}[{index}]", "FIELD_REQUIRED", f"{field_name}[{index}] is empty"
            )
        check_text(f"{field_name}[{index}]", value, limit)
    return unique
