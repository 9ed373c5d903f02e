"""DeviceRegistrationService: devices, channels, tags, users and expiry.

Every rule lives in core (RegistrationService and the rules it applies); this
file only authenticates, converts and lets map_errors turn failures into statuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

import grpc

from pushhub.v1 import registration_pb2, registration_pb2_grpc

from ..core.admission import Credits, Holding
from ..core.errors import ErrorCode, PushHubError
from ..core.key_rights import require_server
from ..core.pipeline import KeyedOrder, ordered_pipeline
from ..core.registration_rules import RegistrationDraft
from ..core.registration_tracking import RegisterOutcome
from ..core.registrations import RegistrationService
from .answer_sizes import MAX_ANSWER_BYTES, answer_bound, check_answer_fits
from .auth import Authenticator
from .convert import registration as convert
from .convert.common import optional_platform
from .errors import map_errors, status_proto

Context = grpc.aio.ServicerContext

# Batches of one stream started ahead of the one being answered (ordered_pipeline
# runs up to four then): written side by side when their tokens are disjoint
# (register_many's order), else validated while the one before them is written.
_BATCHES_IN_FLIGHT = 2
# A ListRegistrations page's framing and page token, below MAX_ANSWER_BYTES.
_PAGE_OVERHEAD = 1024


@dataclass(frozen=True)
class _Batch:
    """A RegisterDevices message admitted to the pipeline, holding `units` items."""

    items: Sequence[registration_pb2.RegisterDeviceRequest]
    sizes: list[int]
    units: int


class DeviceRegistrationServicer(registration_pb2_grpc.DeviceRegistrationServiceServicer):
    def __init__(
        self, registrations: RegistrationService, auth: Authenticator, import_items: Credits
    ) -> None:
        self._registrations = registrations
        self._auth = auth
        # Items of every stream read but not yet answered (PUSHHUB_MAX_IMPORT_ITEMS_IN_FLIGHT).
        self._import_items = import_items

    @map_errors
    async def CreateRegistrationId(
        self, request: registration_pb2.CreateRegistrationIdRequest, context: Context
    ) -> registration_pb2.CreateRegistrationIdResponse:
        principal = self._auth.principal()
        registration_id = await self._registrations.create_registration_id(principal)
        return registration_pb2.CreateRegistrationIdResponse(registration_id=registration_id)

    @map_errors
    async def RegisterDevice(
        self, request: registration_pb2.RegisterDeviceRequest, context: Context
    ) -> registration_pb2.RegisterDeviceResponse:
        principal = self._auth.principal()
        outcome = await self._registrations.register(principal, convert.draft(request))
        response = registration_pb2.RegisterDeviceResponse()
        convert.fill_register_response(response, outcome)
        return response

    @map_errors
    async def RegisterDevices(
        self, requests: AsyncIterator[registration_pb2.RegisterDevicesRequest], context: Context
    ) -> AsyncIterator[registration_pb2.RegisterDevicesResponse]:
        principal = self._auth.principal()
        # Refuse a device key before it streams anything; register_many checks again.
        require_server(principal, "import registrations in batches")
        order = KeyedOrder()
        holding = self._import_items.holding()
        item_limit = self._registrations.limits.registration_bytes

        async def answer(batch: _Batch) -> registration_pb2.RegisterDevicesResponse:
            try:
                drafts = _drafts(batch, item_limit)
                # Every failure of an item comes back as its result.
                outcomes = await self._registrations.register_many(principal, drafts, order)
                return _results(outcomes)
            finally:
                holding.release(batch.units)

        try:
            admitted = self._admitted(requests, holding)
            async for response in ordered_pipeline(admitted, answer, _BATCHES_IN_FLIGHT):
                yield response
        finally:
            holding.close()

    async def _admitted(
        self, requests: AsyncIterator[registration_pb2.RegisterDevicesRequest], holding: Holding
    ) -> AsyncIterator[_Batch]:
        """Each message once it may be answered, and its items fit in the budget.

        A message refused here ends the stream after the answers to those before
        it: it is refused once, as a whole. The next message is read only once
        this one's items are counted in flight, so a stream waiting for room
        holds at most one message the budget has not counted.
        """
        async for request in requests:
            items = request.registrations
            self._registrations.check_batch_size(len(items))
            sizes = [item.ByteSize() for item in items]
            channels = [len(item.channels) for item in items]
            if answer_bound(sizes, channels) > MAX_ANSWER_BYTES:
                # Close to the limit: count channel names exactly before refusing.
                names = [sum(len(name.encode()) for name in item.channels) for item in items]
                check_answer_fits(answer_bound(sizes, channels, names))
            units = await holding.acquire(len(items))
            yield _Batch(items, sizes, units)

    @map_errors
    async def GetRegistration(
        self, request: registration_pb2.GetRegistrationRequest, context: Context
    ) -> registration_pb2.GetRegistrationResponse:
        principal = self._auth.principal()
        found = await self._registrations.get(principal, request.registration_id)
        response = registration_pb2.GetRegistrationResponse()
        convert.fill_registration(response.registration, found)
        return response

    @map_errors
    async def ListRegistrations(
        self, request: registration_pb2.ListRegistrationsRequest, context: Context
    ) -> registration_pb2.ListRegistrationsResponse:
        principal = self._auth.principal()
        where = convert.registration_filter(request)
        items, next_page_token = await self._registrations.list(
            principal, where, request.page_size, request.page_token
        )
        response = registration_pb2.ListRegistrationsResponse(next_page_token=next_page_token)
        room = MAX_ANSWER_BYTES - _PAGE_OVERHEAD
        for index, item in enumerate(items):
            entry = response.registrations.add()
            convert.fill_registration(entry, item)
            room -= entry.ByteSize() + 4  # and the entry's own framing
            if room < 0 and index > 0:
                # A shorter page (AIP-158 allows it): it fits what a client accepts.
                del response.registrations[-1]
                response.next_page_token = self._registrations.page_token(where, items[index - 1])
                break
        return response

    @map_errors
    async def UpdateTags(
        self, request: registration_pb2.UpdateTagsRequest, context: Context
    ) -> registration_pb2.UpdateTagsResponse:
        principal = self._auth.principal()
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
        principal = self._auth.principal()
        removed = await self._registrations.unregister(
            principal,
            request.registration_id,
            optional_platform(request.platform),
            request.device_token,
        )
        return registration_pb2.UnregisterDeviceResponse(removed_count=removed)

    @map_errors
    async def CleanupDevices(
        self, request: registration_pb2.CleanupDevicesRequest, context: Context
    ) -> registration_pb2.CleanupDevicesResponse:
        principal = self._auth.principal()
        removed = await self._registrations.cleanup(principal, convert.cleanup_targets(request))
        return registration_pb2.CleanupDevicesResponse(removed_count=removed)


def _drafts(batch: _Batch, limit: int) -> list[RegistrationDraft]:
    """The items as drafts; one larger than a registration may be fails alone."""
    drafts = [convert.draft(item) for item in batch.items]
    for index, size in enumerate(batch.sizes):
        if size > limit:
            drafts[index] = replace(drafts[index], conversion_error=_too_large(size, limit))
    return drafts


def _too_large(size: int, limit: int) -> PushHubError:
    return PushHubError(
        ErrorCode.INVALID_ARGUMENT,
        "REGISTRATION_TOO_LARGE",
        f"a registration holds at most {limit} bytes (serialized); this one has {size}",
        {"limit": str(limit), "size": str(size)},
    )


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
