"""Refuses a call to PushHub's services without a valid key before its request is read.

The request of a unary call is read before its handler runs, so a handler that
checked the key would have buffered the body first: 40 anonymous 15 MB calls
took the server from 94 MB to 1.5 GB. This interceptor sees the method and
metadata first, looks the key up (cached: see core.key_cache) and refuses
without reading anything. What it found goes to the handler (api.auth.Identity),
which so looks nothing up again; the handler verifies the user token and decides
what the key may do. The later interceptors learn who is calling: a trusted
caller (a server key, the admin token) or a public one (a device key, which
ships in every copy of an app, or anyone at all on health and reflection).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Collection

import grpc

from ..core.apps import AppService
from .auth import Identity, credentials, current_identity, set_identity
from .refusals import refusal


class CallerClass(enum.Enum):
    # A server key or the operator's admin token: secrets of the operator's backend.
    TRUSTED = "trusted"
    # A device key, or no key on a service that needs none (health, reflection).
    PUBLIC = "public"


def caller_class() -> CallerClass:
    """Who is making the current call, as the authentication interceptor found."""
    identity = current_identity()
    return CallerClass.TRUSTED if identity and identity.is_trusted else CallerClass.PUBLIC


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class AuthenticationInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, apps: AppService, services: Collection[str]) -> None:
        self._apps = apps
        # "/pushhub.v1.PublishService/" and so on: the services that need a key.
        self._prefixes = tuple(f"/{name}/" for name in services)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        # Set for each call before the later interceptors and the handler run: the
        # call's own task runs them all (api.auth), so no other call sees it.
        if not handler_call_details.method.startswith(self._prefixes):
            set_identity(None)
            return await continuation(handler_call_details)
        api_key, user_token = credentials(handler_call_details.invocation_metadata)
        if self._apps.is_admin(api_key):
            set_identity(Identity(None, user_token))
            return await continuation(handler_call_details)
        try:
            found = await self._apps.authenticate_key(api_key)
        except Exception as error:  # no key, an unknown one, or the database failing
            return refusal(error)
        set_identity(Identity(found, user_token))
        return await continuation(handler_call_details)
