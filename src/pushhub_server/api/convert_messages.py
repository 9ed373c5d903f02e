"""Proto ⇄ domain mapping for publishing and message status. No rules here."""

from __future__ import annotations

from pushhub.v1 import common_pb2, publish_pb2, status_pb2

from ..core.messages import MessageState, MessageStatus
from ..core.notifications import NotificationContent, Priority, invalid_priority
from ..core.publishing import PublishDraft
from .convert import optional_datetime, optional_timedelta, set_time

_PRIORITIES: dict[int, Priority | None] = {
    publish_pb2.PRIORITY_UNSPECIFIED: None,
    publish_pb2.PRIORITY_NORMAL: "normal",
    publish_pb2.PRIORITY_HIGH: "high",
}
_STATES = {
    state: common_pb2.MessageState.Value(f"MESSAGE_STATE_{state.name}") for state in MessageState
}


def publish_draft(request: publish_pb2.PublishRequest) -> PublishDraft:
    return PublishDraft(
        content=_content(request),
        apns_json=request.apns_json,
        fcm_json=request.fcm_json,
        channel=request.channel,
        broadcast=request.broadcast,
        tag_expression=request.tag_expression,
        user_ids=request.user_ids,
        registration_ids=request.registration_ids,
        platforms=request.platforms,
        publish_at=optional_datetime(request, "publish_at"),
        repeat_every=optional_timedelta(request, "repeat_every"),
        repeat_expires_at=optional_datetime(request, "repeat_expires_at"),
        request_id=request.request_id,
    )


def _content(request: publish_pb2.PublishRequest) -> NotificationContent:
    note = request.notification
    return NotificationContent(
        message=request.message,
        title=note.title,
        body=note.body,
        subtitle=note.subtitle,
        badge=note.badge if note.HasField("badge") else None,
        sound=note.sound,
        image_url=note.image_url,
        category=note.category,
        thread_id=note.thread_id,
        content_available=note.content_available,
        mutable_content=note.mutable_content,
        data=dict(note.data),
        headers=dict(request.headers),
        publisher_id=request.publisher_id,
        ttl=optional_timedelta(request, "ttl"),
        priority=_priority(request.priority),
        collapse_key=request.collapse_key,
        template_name=request.template_name,
        template_properties=dict(request.template_properties),
    )


def _priority(value: int) -> Priority | None:
    # proto3 enums are open: any int32 arrives, and only the contract's numbers mean anything.
    try:
        return _PRIORITIES[value]
    except KeyError:
        raise invalid_priority() from None


def message_state(state: MessageState) -> int:
    return _STATES[state]


def message_status(status: MessageStatus) -> status_pb2.MessageStatus:
    out = status_pb2.MessageStatus(
        message_id=status.message_id,
        state=_STATES[status.state],
        targeted_count=status.targeted,
        sent_count=status.sent,
        failed_count=status.failed,
        failure_reasons=status.failure_reasons,
        run_count=status.run_count,
        error_message=status.error_message or "",
    )
    for platform, counts in sorted(status.per_platform.items()):
        out.platform_counts.add(
            platform=int(platform),
            targeted_count=counts.targeted,
            sent_count=counts.sent,
            failed_count=counts.failed,
        )
    if status.next_run_at is not None:
        set_time(out.next_run_at, status.next_run_at)
    return out
