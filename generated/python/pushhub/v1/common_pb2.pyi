from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class Platform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLATFORM_UNSPECIFIED: _ClassVar[Platform]
    PLATFORM_APNS: _ClassVar[Platform]
    PLATFORM_FCM: _ClassVar[Platform]
    PLATFORM_WEB_PUSH: _ClassVar[Platform]
    PLATFORM_HMS: _ClassVar[Platform]

class MessageState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_STATE_UNSPECIFIED: _ClassVar[MessageState]
    MESSAGE_STATE_SCHEDULED: _ClassVar[MessageState]
    MESSAGE_STATE_PUBLISHING: _ClassVar[MessageState]
    MESSAGE_STATE_PUBLISHED: _ClassVar[MessageState]
    MESSAGE_STATE_FAILED: _ClassVar[MessageState]
    MESSAGE_STATE_CANCELLED: _ClassVar[MessageState]
PLATFORM_UNSPECIFIED: Platform
PLATFORM_APNS: Platform
PLATFORM_FCM: Platform
PLATFORM_WEB_PUSH: Platform
PLATFORM_HMS: Platform
MESSAGE_STATE_UNSPECIFIED: MessageState
MESSAGE_STATE_SCHEDULED: MessageState
MESSAGE_STATE_PUBLISHING: MessageState
MESSAGE_STATE_PUBLISHED: MessageState
MESSAGE_STATE_FAILED: MessageState
MESSAGE_STATE_CANCELLED: MessageState
