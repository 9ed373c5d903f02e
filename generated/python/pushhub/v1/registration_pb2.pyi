import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from pushhub.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Template(_message.Message):
    __slots__ = ("body", "tags")
    BODY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    body: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, body: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class WebPushKeys(_message.Message):
    __slots__ = ("p256dh", "auth")
    P256DH_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    p256dh: str
    auth: str
    def __init__(self, p256dh: _Optional[str] = ..., auth: _Optional[str] = ...) -> None: ...

class Registration(_message.Message):
    __slots__ = ("registration_id", "platform", "device_token", "channels", "tags", "user_id", "expires_at", "metadata", "templates", "selector", "create_time", "update_time", "channel_registration_ids", "web_push_keys")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class TemplatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Template
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Template, _Mapping]] = ...) -> None: ...
    class ChannelRegistrationIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_REGISTRATION_IDS_FIELD_NUMBER: _ClassVar[int]
    WEB_PUSH_KEYS_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    platform: _common_pb2.Platform
    device_token: str
    channels: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    user_id: str
    expires_at: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    templates: _containers.MessageMap[str, Template]
    selector: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    channel_registration_ids: _containers.ScalarMap[str, str]
    web_push_keys: WebPushKeys
    def __init__(self, registration_id: _Optional[str] = ..., platform: _Optional[_Union[_common_pb2.Platform, str]] = ..., device_token: _Optional[str] = ..., channels: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., user_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., templates: _Optional[_Mapping[str, Template]] = ..., selector: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel_registration_ids: _Optional[_Mapping[str, str]] = ..., web_push_keys: _Optional[_Union[WebPushKeys, _Mapping]] = ...) -> None: ...

class CreateRegistrationIdRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateRegistrationIdResponse(_message.Message):
    __slots__ = ("registration_id",)
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    def __init__(self, registration_id: _Optional[str] = ...) -> None: ...

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("registration_id", "platform", "device_token", "channels", "tags", "user_id", "expires_at", "metadata", "templates", "selector", "track", "callback_url", "callback_headers", "web_push_keys")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class TemplatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Template
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Template, _Mapping]] = ...) -> None: ...
    class CallbackHeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    TRACK_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_HEADERS_FIELD_NUMBER: _ClassVar[int]
    WEB_PUSH_KEYS_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    platform: _common_pb2.Platform
    device_token: str
    channels: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    user_id: str
    expires_at: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    templates: _containers.MessageMap[str, Template]
    selector: str
    track: bool
    callback_url: str
    callback_headers: _containers.ScalarMap[str, str]
    web_push_keys: WebPushKeys
    def __init__(self, registration_id: _Optional[str] = ..., platform: _Optional[_Union[_common_pb2.Platform, str]] = ..., device_token: _Optional[str] = ..., channels: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., user_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., templates: _Optional[_Mapping[str, Template]] = ..., selector: _Optional[str] = ..., track: _Optional[bool] = ..., callback_url: _Optional[str] = ..., callback_headers: _Optional[_Mapping[str, str]] = ..., web_push_keys: _Optional[_Union[WebPushKeys, _Mapping]] = ...) -> None: ...

class RegisterDeviceResponse(_message.Message):
    __slots__ = ("registration", "channel_registration_ids", "request_id")
    class ChannelRegistrationIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_REGISTRATION_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    registration: Registration
    channel_registration_ids: _containers.ScalarMap[str, str]
    request_id: str
    def __init__(self, registration: _Optional[_Union[Registration, _Mapping]] = ..., channel_registration_ids: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RegisterDevicesRequest(_message.Message):
    __slots__ = ("registrations",)
    REGISTRATIONS_FIELD_NUMBER: _ClassVar[int]
    registrations: _containers.RepeatedCompositeFieldContainer[RegisterDeviceRequest]
    def __init__(self, registrations: _Optional[_Iterable[_Union[RegisterDeviceRequest, _Mapping]]] = ...) -> None: ...

class RegisterDevicesResult(_message.Message):
    __slots__ = ("response", "error")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    response: RegisterDeviceResponse
    error: _status_pb2.Status
    def __init__(self, response: _Optional[_Union[RegisterDeviceResponse, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class RegisterDevicesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RegisterDevicesResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RegisterDevicesResult, _Mapping]]] = ...) -> None: ...

class GetRegistrationRequest(_message.Message):
    __slots__ = ("registration_id",)
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    def __init__(self, registration_id: _Optional[str] = ...) -> None: ...

class GetRegistrationResponse(_message.Message):
    __slots__ = ("registration",)
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    registration: Registration
    def __init__(self, registration: _Optional[_Union[Registration, _Mapping]] = ...) -> None: ...

class ListRegistrationsRequest(_message.Message):
    __slots__ = ("user_id", "channel", "tag", "platform", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    channel: str
    tag: str
    platform: _common_pb2.Platform
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., channel: _Optional[str] = ..., tag: _Optional[str] = ..., platform: _Optional[_Union[_common_pb2.Platform, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRegistrationsResponse(_message.Message):
    __slots__ = ("registrations", "next_page_token")
    REGISTRATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    registrations: _containers.RepeatedCompositeFieldContainer[Registration]
    next_page_token: str
    def __init__(self, registrations: _Optional[_Iterable[_Union[Registration, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateTagsRequest(_message.Message):
    __slots__ = ("registration_id", "user_id", "tag", "add_tags", "remove_tags")
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    ADD_TAGS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_TAGS_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    user_id: str
    tag: str
    add_tags: _containers.RepeatedScalarFieldContainer[str]
    remove_tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, registration_id: _Optional[str] = ..., user_id: _Optional[str] = ..., tag: _Optional[str] = ..., add_tags: _Optional[_Iterable[str]] = ..., remove_tags: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateTagsResponse(_message.Message):
    __slots__ = ("updated_count",)
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    updated_count: int
    def __init__(self, updated_count: _Optional[int] = ...) -> None: ...

class UnregisterDeviceRequest(_message.Message):
    __slots__ = ("registration_id", "platform", "device_token")
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    platform: _common_pb2.Platform
    device_token: str
    def __init__(self, registration_id: _Optional[str] = ..., platform: _Optional[_Union[_common_pb2.Platform, str]] = ..., device_token: _Optional[str] = ...) -> None: ...

class UnregisterDeviceResponse(_message.Message):
    __slots__ = ("removed_count",)
    REMOVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    removed_count: int
    def __init__(self, removed_count: _Optional[int] = ...) -> None: ...

class CleanupTarget(_message.Message):
    __slots__ = ("user_id", "device_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    device_token: str
    def __init__(self, user_id: _Optional[str] = ..., device_token: _Optional[str] = ...) -> None: ...

class CleanupDevicesRequest(_message.Message):
    __slots__ = ("targets",)
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedCompositeFieldContainer[CleanupTarget]
    def __init__(self, targets: _Optional[_Iterable[_Union[CleanupTarget, _Mapping]]] = ...) -> None: ...

class CleanupDevicesResponse(_message.Message):
    __slots__ = ("removed_count",)
    REMOVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    removed_count: int
    def __init__(self, removed_count: _Optional[int] = ...) -> None: ...
