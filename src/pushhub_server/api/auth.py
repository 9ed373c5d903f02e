"""Who is calling: an app's API key (with an optional user token), or the operator.

Handlers call the Authenticator first thing: grpc.aio interceptors cannot hand
a principal to a handler, and an explicit call keeps each RPC's rule visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from ..core.apps import AppService
from ..core.models import Principal

_BEARER = "bearer "


@dataclass(frozen=True)
class Caller:
    """An admin-service caller: the operator's admin token (principal None), or an app key."""

    is_operator: bool
    principal: Principal | None


class Authenticator:
    def __init__(self, apps: AppService) -> None:
        self._apps = apps

    async def principal(self, context: grpc.aio.ServicerContext) -> Principal:
        api_key, user_token = credentials(context.invocation_metadata())
        return await self._apps.authenticate(api_key, user_token)

    async def caller(self, context: grpc.aio.ServicerContext) -> Caller:
        api_key, user_token = credentials(context.invocation_metadata())
        if self._apps.is_admin(api_key):
            return Caller(is_operator=True, principal=None)
        return Caller(False, await self._apps.authenticate(api_key, user_token))


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
