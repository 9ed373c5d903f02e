"""AdminService: apps, API keys, provider credentials and user tokens.

The operator's admin token may administer every app; a server key only its own
(core.key_rights.require_app_access). Secrets are shown once, when they are created.
"""

from __future__ import annotations

import grpc

from pushhub.v1 import admin_pb2, admin_pb2_grpc

from ..core.apps import AppService
from ..core.credentials import apns_credentials, fcm_credentials, hms_credentials
from ..core.key_rights import require_app_access, require_operator
from ..core.limits import Limits
from ..core.models import App
from ..core.pagination import clamp_page_size, decode_cursor, encode_cursor
from ..core.web_push import web_push_credentials
from .auth import Authenticator, Caller
from .convert import admin as convert
from .convert.proto_time import optional_timedelta, timestamp
from .errors import map_errors

Context = grpc.aio.ServicerContext

# Binds ListApps page tokens to ListApps (AIP-158: tokens are not portable).
_APPS_CURSOR = "apps"


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, apps: AppService, auth: Authenticator, limits: Limits) -> None:
        self._apps = apps
        self._auth = auth
        self._limits = limits

    def _authorize(self, app_id: str) -> Caller:
        caller = self._auth.caller()
        require_app_access(caller.principal, caller.is_operator, app_id)
        return caller

    @map_errors
    async def CreateApp(
        self, request: admin_pb2.CreateAppRequest, context: Context
    ) -> admin_pb2.CreateAppResponse:
        caller = self._auth.caller()
        require_operator(caller.is_operator, "create apps")
        created = await self._apps.create_app(request.name)
        return admin_pb2.CreateAppResponse(
            app=convert.app(created.app),
            server_key=created.server_key,
            device_key=created.device_key,
        )

    @map_errors
    async def ListApps(
        self, request: admin_pb2.ListAppsRequest, context: Context
    ) -> admin_pb2.ListAppsResponse:
        caller = self._auth.caller()
        principal = caller.principal
        if principal is None:  # the operator sees every app
            apps, next_page_token = await self._page_of_apps(request.page_size, request.page_token)
            return admin_pb2.ListAppsResponse(
                apps=[convert.app(app) for app in apps], next_page_token=next_page_token
            )
        # A server key sees its own app, and only that.
        require_app_access(principal, caller.is_operator, principal.app_id)
        own = await self._apps.require_app(principal.app_id)
        return admin_pb2.ListAppsResponse(apps=[convert.app(own)])

    async def _page_of_apps(self, page_size: int, page_token: str) -> tuple[list[App], str]:
        size = clamp_page_size(page_size, self._limits)
        after = decode_cursor(page_token, _APPS_CURSOR) if page_token else None
        # One extra row tells whether another page follows.
        apps = await self._apps.list_apps(size + 1, after)
        if len(apps) <= size:
            return apps, ""
        return apps[:size], encode_cursor(apps[size - 1].app_id, _APPS_CURSOR)

    @map_errors
    async def DeleteApp(
        self, request: admin_pb2.DeleteAppRequest, context: Context
    ) -> admin_pb2.DeleteAppResponse:
        self._authorize(request.app_id)
        await self._apps.delete_app(request.app_id)
        return admin_pb2.DeleteAppResponse()

    @map_errors
    async def CreateApiKey(
        self, request: admin_pb2.CreateApiKeyRequest, context: Context
    ) -> admin_pb2.CreateApiKeyResponse:
        self._authorize(request.app_id)
        created = await self._apps.create_key(request.app_id, convert.key_kind(request.kind))
        return admin_pb2.CreateApiKeyResponse(
            api_key=convert.api_key(created.key), key=created.secret
        )

    @map_errors
    async def ListApiKeys(
        self, request: admin_pb2.ListApiKeysRequest, context: Context
    ) -> admin_pb2.ListApiKeysResponse:
        self._authorize(request.app_id)
        keys = await self._apps.list_keys(request.app_id)
        return admin_pb2.ListApiKeysResponse(api_keys=[convert.api_key(key) for key in keys])

    @map_errors
    async def RevokeApiKey(
        self, request: admin_pb2.RevokeApiKeyRequest, context: Context
    ) -> admin_pb2.RevokeApiKeyResponse:
        self._authorize(request.app_id)
        revoked = await self._apps.revoke_key(request.app_id, request.key_id)
        return admin_pb2.RevokeApiKeyResponse(api_key=convert.api_key(revoked))

    @map_errors
    async def SetApnsCredentials(
        self, request: admin_pb2.SetApnsCredentialsRequest, context: Context
    ) -> admin_pb2.SetApnsCredentialsResponse:
        self._authorize(request.app_id)
        credentials = apns_credentials(
            request.key_id,
            request.team_id,
            request.topic,
            request.private_key_pem,
            request.environment,
        )
        app = await self._apps.set_apns_credentials(request.app_id, credentials)
        return admin_pb2.SetApnsCredentialsResponse(app=convert.app(app))

    @map_errors
    async def SetFcmCredentials(
        self, request: admin_pb2.SetFcmCredentialsRequest, context: Context
    ) -> admin_pb2.SetFcmCredentialsResponse:
        self._authorize(request.app_id)
        credentials = fcm_credentials(request.service_account_json)
        app = await self._apps.set_fcm_credentials(request.app_id, credentials)
        return admin_pb2.SetFcmCredentialsResponse(app=convert.app(app))

    @map_errors
    async def SetWebPushCredentials(
        self, request: admin_pb2.SetWebPushCredentialsRequest, context: Context
    ) -> admin_pb2.SetWebPushCredentialsResponse:
        self._authorize(request.app_id)
        credentials = web_push_credentials(request.vapid_private_key, request.subject)
        app = await self._apps.set_web_push_credentials(request.app_id, credentials)
        return admin_pb2.SetWebPushCredentialsResponse(app=convert.app(app))

    @map_errors
    async def SetHmsCredentials(
        self, request: admin_pb2.SetHmsCredentialsRequest, context: Context
    ) -> admin_pb2.SetHmsCredentialsResponse:
        self._authorize(request.app_id)
        credentials = hms_credentials(request.client_id, request.client_secret)
        app = await self._apps.set_hms_credentials(request.app_id, credentials)
        return admin_pb2.SetHmsCredentialsResponse(app=convert.app(app))

    @map_errors
    async def IssueUserToken(
        self, request: admin_pb2.IssueUserTokenRequest, context: Context
    ) -> admin_pb2.IssueUserTokenResponse:
        self._authorize(request.app_id)
        ttl = optional_timedelta(request, "ttl")
        token, expires = await self._apps.issue_user_token(request.app_id, request.user_id, ttl)
        return admin_pb2.IssueUserTokenResponse(token=token, expire_time=timestamp(expires))
