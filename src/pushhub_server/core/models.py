"""Domain records shared by the use cases, the store and the api layer."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from .web_push import WebPushKeys


class Platform(enum.Enum):
    """Where a device receives notifications. The api layer maps the proto enum
    to these, the store its stored codes: each keeps its own numbering."""

    APNS = "apns"
    FCM = "fcm"
    # Browsers: the device token is the subscription's endpoint URL (core.web_push).
    WEB_PUSH = "web_push"
    # Huawei Push Kit.
    HMS = "hms"


class KeyKind(enum.IntEnum):
    SERVER = 1
    DEVICE = 2


class RequestState(enum.IntEnum):
    PENDING = 1
    SUCCESS = 2
    FAILED = 3


class FailureReason(enum.IntEnum):
    DUPLICATE_EXISTS = 1
    DRY_RUN_SENDING_FAILED = 2
    DEVICE_TOKEN_TOO_LONG = 3
    FAILED_TO_STORE_DEVICE = 4
    API_TOKEN_NOT_VALID = 5


@dataclass(frozen=True)
class App:
    app_id: str
    name: str
    created_at: datetime
    # As stored: sealed by core.credentials.SecretBox; only AppService opens it.
    signing_secret: str = field(repr=False)
    apns_configured: bool = False
    fcm_configured: bool = False
    web_push_configured: bool = False
    hms_configured: bool = False
    # The VAPID public key (base64url), the browser's applicationServerKey; not secret.
    web_push_public_key: str | None = None


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    app_id: str
    kind: KeyKind
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Principal:
    """Who is calling: an app's key, and the user a valid user token names."""

    app_id: str
    key_id: str
    kind: KeyKind
    api_key: str = field(repr=False)
    user_id: str | None = None
    # Set when a user token was presented but failed verification.
    user_token_error: str | None = None

    @property
    def is_server(self) -> bool:
        return self.kind is KeyKind.SERVER


@dataclass(frozen=True)
class Template:
    body: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceActor:
    """A device key acting on registrations: those an item would replace or take a token
    from, or a delete would remove. It may take anonymous ones and its own user's only."""

    # The user its user-token proved, if any.
    user_id: str | None

    def may_take(self, owner: str | None) -> bool:
        """Anonymous registrations are anyone's; a user's only with that user's token."""
        return owner is None or owner == self.user_id


# (platform, token digest): what names a registration within an app, besides its id.
TokenKey = tuple[Platform, str]


@dataclass(frozen=True)
class RegistrationInput:
    """A validated, normalised RegisterDevice item."""

    platform: Platform
    device_token: str
    channels: tuple[str, ...]
    tags: tuple[str, ...]
    user_id: str | None
    expires_at: datetime | None
    metadata: dict[str, str]
    templates: dict[str, Template]
    selector: str | None
    registration_id: str | None = None
    # Web Push only: the subscription's keys (checked by core.web_push).
    web_push_keys: WebPushKeys | None = None
    # Set when a device key sent the item. Checked where the item is written, in
    # its transaction, against every registration it would change or delete.
    device_actor: DeviceActor | None = None
    # Both digests are computed as the item is built (during validation, before
    # any write transaction): a batch's write then holds the database for less.
    token_hash: str = field(init=False, repr=False, compare=False)
    # Digest of the stored content; equal digests mean an unchanged re-registration.
    fingerprint: str = field(init=False, repr=False, compare=False)

    @property
    def token_key(self) -> TokenKey:
        return (self.platform, self.token_hash)

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_hash", token_digest(self.device_token))
        object.__setattr__(self, "fingerprint", self._content_digest())

    def _content_digest(self) -> str:
        content = [
            self.platform.value,
            self.device_token,
            sorted(self.channels),
            sorted(self.tags),
            self.user_id,
            self.expires_at.isoformat() if self.expires_at else None,
            sorted(self.metadata.items()),
            sorted((name, t.body, sorted(t.tags)) for name, t in self.templates.items()),
            self.selector,
        ]
        if self.web_push_keys is not None:
            # A browser that subscribes again may keep its endpoint and change its keys.
            content.append([self.web_push_keys.p256dh, self.web_push_keys.auth])
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:32]


def token_digest(device_token: str) -> str:
    """Tokens may be 4,096 characters, too long for a B-tree key; index their digest."""
    return hashlib.sha256(device_token.encode()).hexdigest()


@dataclass(frozen=True)
class Registration:
    registration_id: str
    app_id: str
    platform: Platform
    device_token: str
    channels: tuple[str, ...]
    tags: tuple[str, ...]
    user_id: str | None
    expires_at: datetime | None
    metadata: dict[str, str]
    templates: dict[str, Template]
    selector: str | None
    created_at: datetime
    updated_at: datetime
    channel_registration_ids: dict[str, str]
    web_push_keys: WebPushKeys | None = None


@dataclass(frozen=True)
class UpsertResult:
    registration: Registration
    # True when the stored registration already held exactly this content.
    unchanged: bool


@dataclass(frozen=True)
class RegistrationFilter:
    user_id: str | None = None
    channel: str | None = None
    tag: str | None = None
    platform: Platform | None = None


@dataclass(frozen=True)
class Page:
    items: list[Registration]
    next_cursor: str | None

    @classmethod
    def of(cls, fetched: list[Registration], limit: int) -> Page:
        """The page of `limit` from `fetched`, read with one row beyond the page:
        that row tells whether another page exists."""
        if len(fetched) <= limit:
            return cls(fetched, None)
        return cls(fetched[:limit], fetched[limit - 1].registration_id)


@dataclass(frozen=True)
class TrackedRequest:
    request_id: str
    app_id: str
    state: RequestState
    failure_reason: FailureReason | None
    callback_url: str | None
    callback_headers: dict[str, str]


@dataclass(frozen=True)
class CleanupTarget:
    user_id: str
    device_token: str | None = None
