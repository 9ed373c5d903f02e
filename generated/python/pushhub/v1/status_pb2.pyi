import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from pushhub.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegistrationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGISTRATION_STATE_UNSPECIFIED: _ClassVar[RegistrationState]
    REGISTRATION_STATE_PENDING: _ClassVar[RegistrationState]
    REGISTRATION_STATE_SUCCESS: _ClassVar[RegistrationState]
    REGISTRATION_STATE_FAILED: _ClassVar[RegistrationState]

class RegistrationFailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGISTRATION_FAILURE_REASON_UNSPECIFIED: _ClassVar[RegistrationFailureReason]
    REGISTRATION_FAILURE_REASON_DUPLICATE_EXISTS: _ClassVar[RegistrationFailureReason]
    REGISTRATION_FAILURE_REASON_DRY_RUN_SENDING_FAILED: _ClassVar[RegistrationFailureReason]
    REGISTRATION_FAILURE_REASON_DEVICE_TOKEN_TOO_LONG: _ClassVar[RegistrationFailureReason]
    REGISTRATION_FAILURE_REASON_FAILED_TO_STORE_DEVICE: _ClassVar[RegistrationFailureReason]
    REGISTRATION_FAILURE_REASON_API_TOKEN_NOT_VALID: _ClassVar[RegistrationFailureReason]
REGISTRATION_STATE_UNSPECIFIED: RegistrationState
REGISTRATION_STATE_PENDING: RegistrationState
REGISTRATION_STATE_SUCCESS: RegistrationState
REGISTRATION_STATE_FAILED: RegistrationState
REGISTRATION_FAILURE_REASON_UNSPECIFIED: RegistrationFailureReason
REGISTRATION_FAILURE_REASON_DUPLICATE_EXISTS: RegistrationFailureReason
REGISTRATION_FAILURE_REASON_DRY_RUN_SENDING_FAILED: RegistrationFailureReason
REGISTRATION_FAILURE_REASON_DEVICE_TOKEN_TOO_LONG: RegistrationFailureReason
REGISTRATION_FAILURE_REASON_FAILED_TO_STORE_DEVICE: RegistrationFailureReason
REGISTRATION_FAILURE_REASON_API_TOKEN_NOT_VALID: RegistrationFailureReason

class PlatformCounts(_message.Message):
    __slots__ = ("platform", "targeted_count", "sent_count", "failed_count")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    TARGETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    platform: _common_pb2.Platform
    targeted_count: int
    sent_count: int
    failed_count: int
    def __init__(self, platform: _Optional[_Union[_common_pb2.Platform, str]] = ..., targeted_count: _Optional[int] = ..., sent_count: _Optional[int] = ..., failed_count: _Optional[int] = ...) -> None: ...

class MessageStatus(_message.Message):
    __slots__ = ("message_id", "state", "targeted_count", "sent_count", "failed_count", "platform_counts", "failure_reasons", "run_count", "next_run_at", "error_message")
    class FailureReasonsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TARGETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_COUNTS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASONS_FIELD_NUMBER: _ClassVar[int]
    RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    state: _common_pb2.MessageState
    targeted_count: int
    sent_count: int
    failed_count: int
    platform_counts: _containers.RepeatedCompositeFieldContainer[PlatformCounts]
    failure_reasons: _containers.ScalarMap[str, int]
    run_count: int
    next_run_at: _timestamp_pb2.Timestamp
    error_message: str
    def __init__(self, message_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.MessageState, str]] = ..., targeted_count: _Optional[int] = ..., sent_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., platform_counts: _Optional[_Iterable[_Union[PlatformCounts, _Mapping]]] = ..., failure_reasons: _Optional[_Mapping[str, int]] = ..., run_count: _Optional[int] = ..., next_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error_message: _Optional[str] = ...) -> None: ...

class GetMessageStatusRequest(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class GetMessageStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: MessageStatus
    def __init__(self, status: _Optional[_Union[MessageStatus, _Mapping]] = ...) -> None: ...

class WatchMessageStatusRequest(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class WatchMessageStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: MessageStatus
    def __init__(self, status: _Optional[_Union[MessageStatus, _Mapping]] = ...) -> None: ...

class RegistrationStatus(_message.Message):
    __slots__ = ("request_id", "state", "failure_reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    state: RegistrationState
    failure_reason: RegistrationFailureReason
    def __init__(self, request_id: _Optional[str] = ..., state: _Optional[_Union[RegistrationState, str]] = ..., failure_reason: _Optional[_Union[RegistrationFailureReason, str]] = ...) -> None: ...

class GetRegistrationStatusRequest(_message.Message):
    __slots__ = ("request_ids",)
    REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    request_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetRegistrationStatusResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[RegistrationStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[RegistrationStatus, _Mapping]]] = ...) -> None: ...
