import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApiKeyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_KEY_KIND_UNSPECIFIED: _ClassVar[ApiKeyKind]
    API_KEY_KIND_SERVER: _ClassVar[ApiKeyKind]
    API_KEY_KIND_DEVICE: _ClassVar[ApiKeyKind]

class ApnsEnvironment(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APNS_ENVIRONMENT_UNSPECIFIED: _ClassVar[ApnsEnvironment]
    APNS_ENVIRONMENT_PRODUCTION: _ClassVar[ApnsEnvironment]
    APNS_ENVIRONMENT_SANDBOX: _ClassVar[ApnsEnvironment]
API_KEY_KIND_UNSPECIFIED: ApiKeyKind
API_KEY_KIND_SERVER: ApiKeyKind
API_KEY_KIND_DEVICE: ApiKeyKind
APNS_ENVIRONMENT_UNSPECIFIED: ApnsEnvironment
APNS_ENVIRONMENT_PRODUCTION: ApnsEnvironment
APNS_ENVIRONMENT_SANDBOX: ApnsEnvironment

class App(_message.Message):
    __slots__ = ("app_id", "name", "create_time", "apns_configured", "fcm_configured", "web_push_configured", "web_push_public_key", "hms_configured")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    APNS_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    FCM_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    WEB_PUSH_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    WEB_PUSH_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    HMS_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    name: str
    create_time: _timestamp_pb2.Timestamp
    apns_configured: bool
    fcm_configured: bool
    web_push_configured: bool
    web_push_public_key: str
    hms_configured: bool
    def __init__(self, app_id: _Optional[str] = ..., name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., apns_configured: _Optional[bool] = ..., fcm_configured: _Optional[bool] = ..., web_push_configured: _Optional[bool] = ..., web_push_public_key: _Optional[str] = ..., hms_configured: _Optional[bool] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("key_id", "app_id", "kind", "prefix", "create_time", "revoke_time")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    app_id: str
    kind: ApiKeyKind
    prefix: str
    create_time: _timestamp_pb2.Timestamp
    revoke_time: _timestamp_pb2.Timestamp
    def __init__(self, key_id: _Optional[str] = ..., app_id: _Optional[str] = ..., kind: _Optional[_Union[ApiKeyKind, str]] = ..., prefix: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateAppRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateAppResponse(_message.Message):
    __slots__ = ("app", "server_key", "device_key")
    APP_FIELD_NUMBER: _ClassVar[int]
    SERVER_KEY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_KEY_FIELD_NUMBER: _ClassVar[int]
    app: App
    server_key: str
    device_key: str
    def __init__(self, app: _Optional[_Union[App, _Mapping]] = ..., server_key: _Optional[str] = ..., device_key: _Optional[str] = ...) -> None: ...

class ListAppsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAppsResponse(_message.Message):
    __slots__ = ("apps", "next_page_token")
    APPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    apps: _containers.RepeatedCompositeFieldContainer[App]
    next_page_token: str
    def __init__(self, apps: _Optional[_Iterable[_Union[App, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteAppRequest(_message.Message):
    __slots__ = ("app_id",)
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    def __init__(self, app_id: _Optional[str] = ...) -> None: ...

class DeleteAppResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("app_id", "kind")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    kind: ApiKeyKind
    def __init__(self, app_id: _Optional[str] = ..., kind: _Optional[_Union[ApiKeyKind, str]] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("api_key", "key")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: ApiKey
    key: str
    def __init__(self, api_key: _Optional[_Union[ApiKey, _Mapping]] = ..., key: _Optional[str] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ("app_id",)
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    def __init__(self, app_id: _Optional[str] = ...) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ("api_keys",)
    API_KEYS_FIELD_NUMBER: _ClassVar[int]
    api_keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    def __init__(self, api_keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("app_id", "key_id")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    key_id: str
    def __init__(self, app_id: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ("api_key",)
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: ApiKey
    def __init__(self, api_key: _Optional[_Union[ApiKey, _Mapping]] = ...) -> None: ...

class SetApnsCredentialsRequest(_message.Message):
    __slots__ = ("app_id", "key_id", "team_id", "topic", "private_key_pem", "environment")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    key_id: str
    team_id: str
    topic: str
    private_key_pem: str
    environment: ApnsEnvironment
    def __init__(self, app_id: _Optional[str] = ..., key_id: _Optional[str] = ..., team_id: _Optional[str] = ..., topic: _Optional[str] = ..., private_key_pem: _Optional[str] = ..., environment: _Optional[_Union[ApnsEnvironment, str]] = ...) -> None: ...

class SetApnsCredentialsResponse(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: App
    def __init__(self, app: _Optional[_Union[App, _Mapping]] = ...) -> None: ...

class SetFcmCredentialsRequest(_message.Message):
    __slots__ = ("app_id", "service_account_json")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_JSON_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    service_account_json: str
    def __init__(self, app_id: _Optional[str] = ..., service_account_json: _Optional[str] = ...) -> None: ...

class SetFcmCredentialsResponse(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: App
    def __init__(self, app: _Optional[_Union[App, _Mapping]] = ...) -> None: ...

class SetWebPushCredentialsRequest(_message.Message):
    __slots__ = ("app_id", "vapid_private_key", "subject")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    VAPID_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    vapid_private_key: str
    subject: str
    def __init__(self, app_id: _Optional[str] = ..., vapid_private_key: _Optional[str] = ..., subject: _Optional[str] = ...) -> None: ...

class SetWebPushCredentialsResponse(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: App
    def __init__(self, app: _Optional[_Union[App, _Mapping]] = ...) -> None: ...

class SetHmsCredentialsRequest(_message.Message):
    __slots__ = ("app_id", "client_id", "client_secret")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    client_id: str
    client_secret: str
    def __init__(self, app_id: _Optional[str] = ..., client_id: _Optional[str] = ..., client_secret: _Optional[str] = ...) -> None: ...

class SetHmsCredentialsResponse(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: App
    def __init__(self, app: _Optional[_Union[App, _Mapping]] = ...) -> None: ...

class IssueUserTokenRequest(_message.Message):
    __slots__ = ("app_id", "user_id", "ttl")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    user_id: str
    ttl: _duration_pb2.Duration
    def __init__(self, app_id: _Optional[str] = ..., user_id: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class IssueUserTokenResponse(_message.Message):
    __slots__ = ("token", "expire_time")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    token: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
