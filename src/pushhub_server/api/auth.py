"""Who is calling: an app's API key (with an optional user token), or the operator.

The authentication interceptor looks the key up once per call, before the
request is read, and hands what it found to the handler in a context variable:
grpc.aio runs a call's interceptors and its handler in the call's own task, so
the value one sets is the value the other reads, and no other call's. Handlers
ask the Authenticator first thing for the principal they need, which keeps each
RPC's rule visible; the user token is verified then, once the call is admitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from ..core.apps import AppService, AuthenticatedKey
from ..core.errors import api_key_invalid
from ..core.models import Principal

_BEARER = "bearer "


@dataclass(frozen=True)
class Identity:
    """What the authentication interceptor found: an app's key, or (key None)
    the operator's admin token; and the user token sent with it, unverified."""

    key: AuthenticatedKey | None
    user_token: str | None = field(default=None, repr=False)

    @property
    def is_trusted(self) -> bool:
        """A server key or the admin token: secrets of the operator's backend."""
        return self.key is None or self.key.is_server


# Set by the interceptor for every call, None where no key is needed (health, reflection).
_IDENTITY: ContextVar[Identity | None] = ContextVar("pushhub_identity", default=None)


def set_identity(identity: Identity | None) -> None:
    _IDENTITY.set(identity)


def current_identity() -> Identity | None:
    return _IDENTITY.get()


@dataclass(frozen=True)
class Caller:
    """An admin-service caller: the operator's admin token (principal None), or an app key."""

    is_operator: bool
    principal: Principal | None


class Authenticator:
    def __init__(self, apps: AppService) -> None:
        self._apps = apps

    def principal(self) -> Principal:
        """The current call's app key as a principal; the admin token is no app's key."""
        return self._principal(self._identity())

    def caller(self) -> Caller:
        identity = self._identity()
        if identity.key is None:
            return Caller(is_operator=True, principal=None)
        return Caller(False, self._principal(identity))

    async def recheck(self) -> None:
        """Looks the current call's key up again: a long watch may outlive it."""
        key = self._identity().key
        await self._apps.authenticate_key(key.api_key if key is not None else None)

    def _principal(self, identity: Identity) -> Principal:
        if identity.key is None:
            # As an API key, the admin token is unknown (it is no key's hash).
            raise api_key_invalid("unknown or revoked API key")
        return self._apps.principal(identity.key, identity.user_token)

    @staticmethod
    def _identity() -> Identity:
        identity = _IDENTITY.get()
        if identity is None:  # refuse, never guess: nothing checked a key for this call
            raise api_key_invalid("no API key was checked for this call")
        return identity


def credentials(
    metadata: Sequence[tuple[str, str | bytes]] | None,
) -> tuple[str | None, str | None]:
    """The bearer key of `authorization` and the `user-token`, when present."""
    api_key = user_token = None
    for name, value in metadata or ():
        if isinstance(value, bytes):  # only -bin keys carry bytes
            continue
        if name == "authorization" and value[: len(_BEARER)].lower() == _BEARER:
            api_key = value[len(_BEARER) :].strip()
        elif name == "user-token":
            user_token = value
    return api_key, user_token
