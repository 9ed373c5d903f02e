import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from pushhub.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_NORMAL: _ClassVar[Priority]
    PRIORITY_HIGH: _ClassVar[Priority]

class PublishStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUBLISH_STATUS_UNSPECIFIED: _ClassVar[PublishStatus]
    PUBLISH_STATUS_SCHEDULED: _ClassVar[PublishStatus]
    PUBLISH_STATUS_FAILED: _ClassVar[PublishStatus]
PRIORITY_UNSPECIFIED: Priority
PRIORITY_NORMAL: Priority
PRIORITY_HIGH: Priority
PUBLISH_STATUS_UNSPECIFIED: PublishStatus
PUBLISH_STATUS_SCHEDULED: PublishStatus
PUBLISH_STATUS_FAILED: PublishStatus

class Notification(_message.Message):
    __slots__ = ("title", "body", "subtitle", "badge", "sound", "image_url", "category", "thread_id", "content_available", "mutable_content", "data")
    class DataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SUBTITLE_FIELD_NUMBER: _ClassVar[int]
    BADGE_FIELD_NUMBER: _ClassVar[int]
    SOUND_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    MUTABLE_CONTENT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    title: str
    body: str
    subtitle: str
    badge: int
    sound: str
    image_url: str
    category: str
    thread_id: str
    content_available: bool
    mutable_content: bool
    data: _containers.ScalarMap[str, str]
    def __init__(self, title: _Optional[str] = ..., body: _Optional[str] = ..., subtitle: _Optional[str] = ..., badge: _Optional[int] = ..., sound: _Optional[str] = ..., image_url: _Optional[str] = ..., category: _Optional[str] = ..., thread_id: _Optional[str] = ..., content_available: _Optional[bool] = ..., mutable_content: _Optional[bool] = ..., data: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("channel", "broadcast", "message", "notification", "headers", "publisher_id", "publish_at", "repeat_every", "repeat_expires_at", "tag_expression", "user_ids", "registration_ids", "platforms", "template_name", "template_properties", "apns_json", "fcm_json", "ttl", "priority", "collapse_key", "request_id")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class TemplatePropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    BROADCAST_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_AT_FIELD_NUMBER: _ClassVar[int]
    REPEAT_EVERY_FIELD_NUMBER: _ClassVar[int]
    REPEAT_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    TAG_EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_IDS_FIELD_NUMBER: _ClassVar[int]
    PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_NAME_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    APNS_JSON_FIELD_NUMBER: _ClassVar[int]
    FCM_JSON_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    COLLAPSE_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    channel: str
    broadcast: bool
    message: str
    notification: Notification
    headers: _containers.ScalarMap[str, str]
    publisher_id: str
    publish_at: _timestamp_pb2.Timestamp
    repeat_every: _duration_pb2.Duration
    repeat_expires_at: _timestamp_pb2.Timestamp
    tag_expression: str
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    registration_ids: _containers.RepeatedScalarFieldContainer[str]
    platforms: _containers.RepeatedScalarFieldContainer[_common_pb2.Platform]
    template_name: str
    template_properties: _containers.ScalarMap[str, str]
    apns_json: str
    fcm_json: str
    ttl: _duration_pb2.Duration
    priority: Priority
    collapse_key: str
    request_id: str
    def __init__(self, channel: _Optional[str] = ..., broadcast: _Optional[bool] = ..., message: _Optional[str] = ..., notification: _Optional[_Union[Notification, _Mapping]] = ..., headers: _Optional[_Mapping[str, str]] = ..., publisher_id: _Optional[str] = ..., publish_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., repeat_every: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., repeat_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tag_expression: _Optional[str] = ..., user_ids: _Optional[_Iterable[str]] = ..., registration_ids: _Optional[_Iterable[str]] = ..., platforms: _Optional[_Iterable[_Union[_common_pb2.Platform, str]]] = ..., template_name: _Optional[str] = ..., template_properties: _Optional[_Mapping[str, str]] = ..., apns_json: _Optional[str] = ..., fcm_json: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., priority: _Optional[_Union[Priority, str]] = ..., collapse_key: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("message_id", "status")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    status: PublishStatus
    def __init__(self, message_id: _Optional[str] = ..., status: _Optional[_Union[PublishStatus, str]] = ...) -> None: ...

class CancelMessageRequest(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class CancelMessageResponse(_message.Message):
    __slots__ = ("message_id", "state")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    state: _common_pb2.MessageState
    def __init__(self, message_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.MessageState, str]] = ...) -> None: ...
