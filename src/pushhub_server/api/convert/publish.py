"""PublishService messages ⇄ domain."""

from __future__ import annotations

from pushhub.v1 import publish_pb2

from ...core.notifications import NotificationContent, Priority, invalid_priority
from ...core.publishing import PublishDraft
from .common import platforms_or_refusals
from .proto_time import optional_datetime, optional_timedelta

_PRIORITIES: dict[int, Priority | None] = {
    publish_pb2.PRIORITY_UNSPECIFIED: None,
    publish_pb2.PRIORITY_NORMAL: "normal",
    publish_pb2.PRIORITY_HIGH: "high",
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
        platforms=platforms_or_refusals(request.platforms, "platforms"),
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
