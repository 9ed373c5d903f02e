"""DeviceRegistrationService: devices, channels, tags, users and expiry.

Every rule lives in core.registrations.RegistrationService; this file only
authenticates, converts and lets map_errors turn failures into statuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from pushhub.v1 import registration_pb2, registration_pb2_grpc

from ..core.errors import PushHubError
from ..core.pipeline import KeyedOrder, ordered_pipeline
from ..core.registrations import RegisterOutcome, RegistrationService, require_server
from . import convert
from .auth import Authenticator
from .errors import map_errors, status_proto

Context = grpc.aio.ServicerContext

# Batches of one stream started ahead of the one being answered (ordered_pipeline
# runs up to four then): written side by side when their tokens are disjoint
# (register_many's order), else validated while the one before them is written.
_BATCHES_IN_FLIGHT = 2


class DeviceRegistrationServicer(registration_pb2_grpc.DeviceRegistrationServiceServicer):
    def __init__(self, registrations: RegistrationService, auth: Authenticator) -> None:
        self._registrations = registrations
        self._auth = auth

    @map_errors
    async def CreateRegistrationId(
        self, request: registration_pb2.CreateRegistrationIdRequest, context: Context
    ) -> registration_pb2.CreateRegistrationIdResponse:
        principal = await self._auth.principal(context)
        registration_id = await self._registrations.create_registration_id(principal)
        return registration_pb2.CreateRegistrationIdResponse(registration_id=registration_id)

    @map_errors
    async def RegisterDevice(
        self, request: registration_pb2.RegisterDeviceRequest, context: Context
    ) -> registration_pb2.RegisterDeviceResponse:
        principal = await self._auth.principal(context)
        outcome = await self._registrations.register(principal, convert.draft(request))
        response = registration_pb2.RegisterDeviceResponse()
        convert.fill_register_response(response, outcome)
        return response

    @map_errors
    async def RegisterDevices(
        self, requests: AsyncIterator[registration_pb2.RegisterDevicesRequest], context: Context
    ) -> AsyncIterator[registration_pb2.RegisterDevicesResponse]:
        principal = await self._auth.principal(context)
        # Refuse a device key before it streams anything; register_many checks again.
        require_server(principal, "import registrations in batches")
        order = KeyedOrder()

        async def answer(
            request: registration_pb2.RegisterDevicesRequest,
        ) -> registration_pb2.RegisterDevicesResponse:
            drafts = [convert.draft(item) for item in request.registrations]
            # Every failure of an item, too many items included, comes back as its result.
            return _results(await self._registrations.register_many(principal, drafts, order))

        async for response in ordered_pipeline(requests, answer, _BATCHES_IN_FLIGHT):
            yield response

    @map_errors
    async def GetRegistration(
        self, request: registration_pb2.GetRegistrationRequest, context: Context
    ) -> registration_pb2.GetRegistrationResponse:
        principal = await self._auth.principal(context)
        found = await self._registrations.get(principal, request.registration_id)
        response = registration_pb2.GetRegistrationResponse()
        convert.fill_registration(response.registration, found)
        return response

    @map_errors
    async def ListRegistrations(
        self, request: registration_pb2.ListRegistrationsRequest, context: Context
    ) -> registration_pb2.ListRegistrationsResponse:
        principal = await self._auth.principal(context)
        items, next_page_token = await self._registrations.list(
            principal, convert.registration_filter(request), request.page_size, request.page_token
        )
        response = registration_pb2.ListRegistrationsResponse(next_page_token=next_page_token)
        for item in items:
            convert.fill_registration(response.registrations.add(), item)
        return response

    @map_errors
    async def UpdateTags(
        self, request: registration_pb2.UpdateTagsRequest, context: Context
    ) -> registration_pb2.UpdateTagsResponse:
        principal = await self._auth.principal(context)
        updated = await self._registrations.update_tags(
            principal,
            request.registration_id,
            convert.tag_update_filter(request),
            request.add_tags,
            request.remove_tags,
        )
        return registration_pb2.UpdateTagsResponse(updated_count=updated)

    @map_errors
    async def UnregisterDevice(
        self, request: registration_pb2.UnregisterDeviceRequest, context: Context
    ) -> registration_pb2.UnregisterDeviceResponse:
        principal = await self._auth.principal(context)
        removed = await self._registrations.unregister(
            principal, request.registration_id, request.platform, request.device_token
        )
        return registration_pb2.UnregisterDeviceResponse(removed_count=removed)

    @map_errors
    async def CleanupDevices(
        self, request: registration_pb2.CleanupDevicesRequest, context: Context
    ) -> registration_pb2.CleanupDevicesResponse:
        principal = await self._auth.principal(context)
        removed = await self._registrations.cleanup(principal, convert.cleanup_targets(request))
        return registration_pb2.CleanupDevicesResponse(removed_count=removed)


def _results(
    outcomes: list[RegisterOutcome | PushHubError],
) -> registration_pb2.RegisterDevicesResponse:
    """One result per item, in order, built in place (the hot path of bulk imports)."""
    response = registration_pb2.RegisterDevicesResponse()
    results = response.results
    for outcome in outcomes:
        result = results.add()
        if isinstance(outcome, PushHubError):
            result.error.CopyFrom(status_proto(outcome))
        else:
            convert.fill_register_response(result.response, outcome)
    return response
