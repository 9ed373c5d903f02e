"""Apps, API keys and user tokens: who may call, and as what."""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import jwt

from .clock import Clock
from .credentials import (
    ApnsCredentials,
    FcmCredentials,
    HmsCredentials,
    SecretBox,
    UnreadableCredentials,
    dump_apns,
    dump_fcm,
    dump_hms,
    dump_web_push,
    load_apns,
    load_fcm,
    load_hms,
    load_web_push,
)
from .errors import (
    ErrorCode,
    PushHubError,
    api_key_invalid,
    invalid_field,
    not_found,
    required,
)
from .ids import new_id
from .limits import Limits
from .models import ApiKey, App, KeyKind, Platform, Principal
from .ports import AppRepository
from .validation import check_name, check_text
from .web_push import WebPushCredentials

_KEY_PREFIX = {KeyKind.SERVER: "phs_", KeyKind.DEVICE: "phd_"}
_TOKEN_ALGORITHM = "HS256"
USER_ID_LIMIT = Limits().user_id
ID_LIMIT = Limits().registration_id
DEFAULT_USER_TOKEN_TTL = timedelta(hours=1)
MAX_USER_TOKEN_TTL = timedelta(days=30)
# Opened signing secrets kept in memory, so authentication does not decrypt per call.
_MAX_OPENED_SECRETS = 1024
# Apps read per query when sealing their signing secrets.
_APPS_PAGE = 500

_log = logging.getLogger(__name__)
ProviderCredentials = ApnsCredentials | FcmCredentials | WebPushCredentials | HmsCredentials
# How each platform's stored credentials are read back.
_LOADERS: dict[Platform, Callable[[str], ProviderCredentials]] = {
    Platform.APNS: load_apns,
    Platform.FCM: load_fcm,
    Platform.WEB_PUSH: load_web_push,
    Platform.HMS: load_hms,
}


def hash_key(api_key: str) -> str:
    """Keys are 256-bit random strings, so one SHA-256 suffices (no password stretching)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedApp:
    app: App
    server_key: str
    device_key: str


@dataclass(frozen=True)
class AuthenticatedKey:
    """An active API key a caller presented, with its app."""

    api_key: str = field(repr=False)
    key: ApiKey
    app: App

    @property
    def is_server(self) -> bool:
        return self.key.kind is KeyKind.SERVER


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secret: str


class AppService:
    def __init__(
        self,
        apps: AppRepository,
        clock: Clock,
        admin_token: str | None = None,
        secrets_box: SecretBox | None = None,
    ) -> None:
        self._apps = apps
        self._clock = clock
        self._admin_token = admin_token
        self._box = secrets_box or SecretBox(None)
        # Stored (sealed) signing secret -> opened secret. Keyed by the stored value,
        # so a rotated secret is never served from here.
        self._opened: dict[str, str] = {}
        # (app, platform) pairs already warned about unsealed credentials.
        self._warned: set[tuple[str, Platform]] = set()
        # Awaited with each deleted app's id, so whoever holds resources for apps
        # (the delivery providers) can release them: core cannot call delivery itself.
        self.on_deleted: list[Callable[[str], Awaitable[None]]] = []

    async def create_app(self, name: str) -> CreatedApp:
        check_name("name", name, 255)
        now = self._clock.now()
        app = App(new_id(), name, now, signing_secret=self._new_signing_secret())
        server = self._new_key(app.app_id, KeyKind.SERVER, now)
        device = self._new_key(app.app_id, KeyKind.DEVICE, now)
        await self._apps.create_app(
            app, [(server.key, hash_key(server.secret)), (device.key, hash_key(device.secret))]
        )
        return CreatedApp(app, server.secret, device.secret)

    async def create_key(self, app_id: str, kind: KeyKind) -> CreatedKey:
        await self.require_app(app_id)
        created = self._new_key(app_id, kind, self._clock.now())
        await self._apps.add_key(created.key, hash_key(created.secret))
        return created

    async def list_keys(self, app_id: str) -> list[ApiKey]:
        await self.require_app(app_id)
        return await self._apps.list_keys(app_id)

    async def revoke_key(self, app_id: str, key_id: str) -> ApiKey:
        _check_id("app_id", app_id)
        _check_id("key_id", key_id)
        revoked = await self._apps.revoke_key(app_id, key_id, self._clock.now())
        if revoked is None:
            raise not_found(
                "API_KEY_NOT_FOUND", f"no API key {key_id!r} in this app", key_id=key_id
            )
        return revoked

    async def list_apps(self, limit: int, after_id: str | None) -> list[App]:
        return await self._apps.list_apps(limit, after_id)

    async def delete_app(self, app_id: str) -> None:
        _check_id("app_id", app_id)
        if not await self._apps.delete_app(app_id):
            raise _app_not_found(app_id)
        for listener in self.on_deleted:
            try:
                await listener(app_id)
            except Exception:  # the app is gone: failing the call now would say otherwise
                _log.exception("app %s was deleted, but releasing its resources failed", app_id)

    async def find_app(self, id_or_name: str) -> App:
        app = await self._apps.find_app(id_or_name)
        if app is None:
            raise _app_not_found(id_or_name)
        return app

    async def require_app(self, app_id: str) -> App:
        _check_id("app_id", app_id)
        app = await self._apps.get_app(app_id)
        if app is None:
            raise _app_not_found(app_id)
        return app

    async def set_apns_credentials(self, app_id: str, credentials: ApnsCredentials) -> App:
        return await self._set_credentials(app_id, Platform.APNS, dump_apns(credentials))

    async def set_fcm_credentials(self, app_id: str, credentials: FcmCredentials) -> App:
        return await self._set_credentials(app_id, Platform.FCM, dump_fcm(credentials))

    async def set_web_push_credentials(self, app_id: str, credentials: WebPushCredentials) -> App:
        """Stores the VAPID key sealed; its public half is stored in the clear, for App."""
        return await self._set_credentials(
            app_id, Platform.WEB_PUSH, dump_web_push(credentials), credentials.public_key
        )

    async def set_hms_credentials(self, app_id: str, credentials: HmsCredentials) -> App:
        return await self._set_credentials(app_id, Platform.HMS, dump_hms(credentials))

    async def provider_credentials(
        self, app_id: str
    ) -> dict[Platform, ProviderCredentials | UnreadableCredentials | None]:
        """Each platform's credentials, None when not set. One platform's unreadable
        credentials come back as UnreadableCredentials, so the others still deliver."""
        stored = await self._apps.credentials(app_id)
        return {
            platform: self._open(app_id, platform, stored.get(platform), load)
            for platform, load in _LOADERS.items()
        }

    def _open(
        self,
        app_id: str,
        platform: Platform,
        stored: str | None,
        load: Callable[[str], ProviderCredentials],
    ) -> ProviderCredentials | UnreadableCredentials | None:
        if stored is None:
            return None
        if self._box.needs_sealing(stored):
            self._warn_unsealed(app_id, platform)
        try:
            return load(self._box.open(stored))
        except PushHubError as error:  # sealed with another key, or no key given
            return UnreadableCredentials(error.message)
        except (ValueError, KeyError, TypeError):
            return UnreadableCredentials("the stored credentials are not in a known format")

    def _warn_unsealed(self, app_id: str, platform: Platform) -> None:
        # Once per app and platform: deliveries read the credentials on every run.
        if (app_id, platform) in self._warned:
            return
        self._warned.add((app_id, platform))
        _log.warning(
            "app %s: its %s credentials are stored unsealed although PUSHHUB_SECRET_KEY "
            "is set; setting any of the app's credentials again seals them",
            app_id,
            platform.name,
        )

    async def _set_credentials(
        self, app_id: str, platform: Platform, plain: str, public: str | None = None
    ) -> App:
        await self.require_app(app_id)
        sealed = self._box.seal(plain)
        if not await self._apps.set_credentials(app_id, platform, sealed, public):
            raise _app_not_found(app_id)
        await self._seal_stored(app_id)
        return await self.require_app(app_id)

    async def _seal_stored(self, app_id: str) -> None:
        """Seals the app's credentials stored before PUSHHUB_SECRET_KEY was set (the
        other platform's: the ones just written are sealed already)."""
        for platform, stored in (await self._apps.credentials(app_id)).items():
            if self._box.needs_sealing(stored):
                sealed = self._box.seal(self._box.open(stored))
                # Only if unchanged meanwhile: a concurrent write must not be undone.
                await self._apps.replace_credentials(app_id, platform, stored, sealed)

    async def rotate_signing_secret(self, app_id: str) -> None:
        """A new user-token signing secret: tokens signed with the old one are refused."""
        await self.require_app(app_id)
        if not await self._apps.set_signing_secret(app_id, self._new_signing_secret()):
            raise _app_not_found(app_id)

    async def seal_signing_secrets(self) -> int:
        """Seals the signing secrets stored plain although PUSHHUB_SECRET_KEY is set
        (apps created before it was); returns how many it sealed."""
        if not self._box.has_key:  # nothing could need sealing: skip reading every app
            return 0
        sealed = 0
        after: str | None = None
        while page := await self._apps.list_apps(_APPS_PAGE, after):
            for app in page:
                sealed += await self._seal_signing_secret(app)
            after = page[-1].app_id
        return sealed

    async def _seal_signing_secret(self, app: App) -> bool:
        stored = app.signing_secret
        if not self._box.needs_sealing(stored):
            return False
        sealed = self._box.seal(self._box.open(stored))
        # Only if unchanged meanwhile: a concurrent rotation must not be undone.
        return await self._apps.replace_signing_secret(app.app_id, stored, sealed)

    def _new_signing_secret(self) -> str:
        return self._box.seal(secrets.token_urlsafe(32))

    def _signing_secret(self, stored: str) -> str:
        """The opened secret; CREDENTIALS_UNREADABLE when sealed with another key."""
        opened = self._opened.get(stored)
        if opened is None:
            try:
                opened = self._box.open(stored)
            except PushHubError as error:
                message = f"cannot read the app's user-token signing secret ({error.message})"
                raise PushHubError(error.code, error.reason, message) from None
            if len(self._opened) >= _MAX_OPENED_SECRETS:
                self._opened.clear()
            self._opened[stored] = opened
        return opened

    async def authenticate(self, api_key: str | None, user_token: str | None) -> Principal:
        return self.principal(await self.authenticate_key(api_key), user_token)

    async def authenticate_key(self, api_key: str | None) -> AuthenticatedKey:
        """The active key presented, and its app: the one lookup a call needs."""
        if not api_key:
            raise api_key_invalid("missing API key: send 'authorization: Bearer <key>'")
        found = await self._apps.active_key(hash_key(api_key))
        if found is None:
            raise api_key_invalid("unknown or revoked API key")
        key, app = found
        return AuthenticatedKey(api_key, key, app)

    def principal(self, found: AuthenticatedKey, user_token: str | None) -> Principal:
        """The caller, with the user a valid user token names (no lookup: the app is known)."""
        user_id, error = (None, None)
        if user_token:
            user_id, error = self._verify_user_token(found.app, user_token)
        app_id, key = found.app.app_id, found.key
        return Principal(app_id, key.key_id, key.kind, found.api_key, user_id, error)

    def is_admin(self, token: str | None) -> bool:
        if not self._admin_token or not token:
            return False
        return secrets.compare_digest(self._admin_token.encode(), token.encode())

    async def issue_user_token(
        self, app_id: str, user_id: str, ttl: timedelta | None = None
    ) -> tuple[str, datetime]:
        app = await self.require_app(app_id)
        if not user_id:
            raise required("user_id")
        check_text("user_id", user_id, USER_ID_LIMIT)
        ttl = ttl or DEFAULT_USER_TOKEN_TTL
        if ttl <= timedelta(0) or ttl > MAX_USER_TOKEN_TTL:
            raise invalid_field("ttl", "INVALID_TTL", "ttl must be positive and at most 30 days")
        now = self._clock.now()
        expires = now + ttl
        claims = {"sub": user_id, "iss": app.app_id, "iat": now, "exp": expires}
        secret = self._signing_secret(app.signing_secret)
        return jwt.encode(claims, secret, algorithm=_TOKEN_ALGORITHM), expires

    def _verify_user_token(self, app: App, token: str) -> tuple[str | None, str | None]:
        try:
            secret = self._signing_secret(app.signing_secret)
        except PushHubError as error:  # a misconfigured server, not a bad token: still refused
            return None, f"user token rejected: {error.message}"
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[_TOKEN_ALGORITHM],
                issuer=app.app_id,
                options={
                    "require": ["sub", "exp", "iss"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as error:
            return None, f"user token rejected: {error}"
        # Expiry is checked against our clock (not PyJWT's), so tests can move time;
        # PyJWT then does not check exp's type either.
        expires = _seconds(claims["exp"])
        if expires is None:
            return None, "user token rejected: exp must be a number of seconds"
        if expires <= self._clock.now().timestamp():
            return None, "user token expired"
        user_id = claims["sub"]  # a string: PyJWT checks that
        if not _is_user_id(user_id):
            return None, f"user token rejected: sub must be 1-{USER_ID_LIMIT} characters of text"
        return user_id, None

    @staticmethod
    def _new_key(app_id: str, kind: KeyKind, now: datetime) -> CreatedKey:
        secret = _KEY_PREFIX[kind] + secrets.token_urlsafe(32)
        return CreatedKey(ApiKey(new_id(), app_id, kind, secret[:10], now), secret)


def _check_id(field_name: str, value: str) -> None:
    """An id the client names: looked up in SQL, so it obeys the stored-text rule
    (PostgreSQL text cannot hold NUL) and the length every id shares."""
    if not value:
        raise required(field_name)
    check_text(field_name, value, ID_LIMIT)


def _is_user_id(value: str) -> bool:
    """The user_id rule, for a claim: unlike proto strings, JSON text can hold
    lone surrogates (a "\\udc00" escape), which no database can store or compare."""
    try:
        check_text("user_id", value, USER_ID_LIMIT)
        value.encode()
    except (PushHubError, UnicodeEncodeError):
        return False
    return bool(value)


def _seconds(value: object) -> float | None:
    """A claim as seconds since the epoch; None unless it is a finite number.

    A string would raise in the comparison, NaN compares false with everything
    (a token that never expires), and an integer beyond any float raises
    OverflowError when compared with one.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def _app_not_found(app: str) -> PushHubError:
    return PushHubError(ErrorCode.NOT_FOUND, "APP_NOT_FOUND", f"no app {app!r}", {"app": app})
