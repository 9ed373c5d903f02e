"""Admission control through the real server: request sizes per method, caps on
calls and streams, the per-address rate of device keys, and keys checked before
a request is read (docs/admission.md).

Each test starts its own server with small limits; every refusal must carry an
ErrorInfo and, for RESOURCE_EXHAUSTED, a RetryInfo (harness.check_status).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pushhub.v1 import admin_pb2, publish_pb2, registration_pb2, status_pb2
from pushhub.v1 import registration_pb2 as reg
from pushhub.v1 import status_pb2 as st
from pushhub_server.api.answer_sizes import answer_bound
from pushhub_server.api.message_sizes import request_limits
from pushhub_server.core.clock import ManualClock
from pushhub_server.core.limits import Limits

from .harness import (
    ADMIN_METADATA,
    APNS,
    AppHandle,
    Stubs,
    check_error,
    check_status,
    create_app,
    new_token,
    retry_delay,
    rich_status,
    start_test_server,
    stream_requests,
    timestamp,
    unpack_details,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
IMPORT = "/pushhub.v1.DeviceRegistrationService/RegisterDevices"
# Small limits, so that requests over every method's limit stay small.
SMALL_LIMITS = Limits(
    registration_bytes=4096,
    batch_bytes=48 * 1024,
    cleanup_targets=5,
    publish_targets=5,
    request_ids=5,
)


@dataclass
class Limited:
    server: object
    channel: grpc.aio.Channel
    stubs: Stubs
    app: AppHandle


@asynccontextmanager
async def limited_server(
    database_url: str, clock: ManualClock, **settings: object
) -> AsyncIterator[Limited]:
    running = await start_test_server(database_url, clock, **settings)
    options = [("grpc.max_send_message_length", 16 * 1024 * 1024)]
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{running.port}", options=options
        ) as channel:
            stubs = Stubs.on(channel)
            yield Limited(running, channel, stubs, await create_app(stubs, clock))
    finally:
        await running.stop(1.0)


def padded(size: int) -> bytes:
    """A valid protobuf message of exactly `size` bytes: one unknown field (number 1000)."""
    for length in range(size, -1, -1):
        message = _varint(1000 << 3 | 2) + _varint(length) + b"x" * length
        if len(message) == size:
            return message
    raise ValueError(size)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def unary_methods() -> Iterator[tuple[str, bool]]:
    """(full method name, whether it takes the admin token) of every unary-request RPC."""
    for module, service in (
        (registration_pb2, "DeviceRegistrationService"),
        (publish_pb2, "PublishService"),
        (status_pb2, "StatusService"),
        (admin_pb2, "AdminService"),
    ):
        descriptor = module.DESCRIPTOR.services_by_name[service]
        for method in descriptor.methods:
            if not method.client_streaming:
                yield f"/{descriptor.full_name}/{method.name}", service == "AdminService"


async def outcome(call) -> grpc.aio.AioRpcError | None:
    """The error a unary call ends with, or None."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    return None


def reason_of(error: grpc.aio.AioRpcError | None) -> str | None:
    if error is None:
        return None
    infos, _ = unpack_details(rich_status(error))
    return infos[0].reason if infos else None


async def unary_outcome(channel: grpc.aio.Channel, method: str, body: bytes, metadata):
    """The error of one call (its responses drained for a server stream), or None."""
    if method.endswith("/WatchMessageStatus"):
        call = channel.unary_stream(method)(body, metadata=metadata)
        try:
            async for _ in call:
                break
        except grpc.aio.AioRpcError as error:
            return error
        call.cancel()
        return None
    try:
        await channel.unary_unary(method)(body, metadata=metadata)
    except grpc.aio.AioRpcError as error:
        return error
    return None


def waiting_requests(
    release: asyncio.Event, *batches: reg.RegisterDevicesRequest
) -> AsyncIterator[reg.RegisterDevicesRequest]:
    """Sends the batches, then keeps the stream open until `release`."""

    async def requests() -> AsyncIterator[reg.RegisterDevicesRequest]:
        for batch in batches:
            yield batch
        await release.wait()

    return requests()


def batch(count: int, **fields: object) -> reg.RegisterDevicesRequest:
    return reg.RegisterDevicesRequest(
        registrations=[
            reg.RegisterDeviceRequest(platform=APNS, device_token=new_token(), **fields)
            for _ in range(count)
        ]
    )


# ------------------------------------------------------------ message sizes ----


async def test_each_method_refuses_a_request_over_its_own_limit(
    empty_database: str, clock: ManualClock
) -> None:
    limits = request_limits(SMALL_LIMITS)
    largest = max(limits.values())
    async with limited_server(empty_database, clock, limits=SMALL_LIMITS) as limited:
        for method, admin in unary_methods():
            limit = limits[method]
            metadata = ADMIN_METADATA if admin else limited.app.server()
            at_limit = await unary_outcome(limited.channel, method, padded(limit), metadata)
            assert reason_of(at_limit) != "MESSAGE_TOO_LARGE", method
            over = await unary_outcome(limited.channel, method, padded(limit + 1), metadata)
            assert over is not None, method
            if limit < largest:
                check_error(over, INVALID, "MESSAGE_TOO_LARGE", metadata={"limit": str(limit)})
            else:  # grpc's own limit, the largest of all: it answers before reading
                assert over.code() == EXHAUSTED, (method, over)


async def test_a_device_key_is_held_to_the_same_limits(
    empty_database: str, clock: ManualClock
) -> None:
    limit = request_limits(SMALL_LIMITS)["/pushhub.v1.DeviceRegistrationService/RegisterDevice"]
    async with limited_server(empty_database, clock, limits=SMALL_LIMITS) as limited:
        call = limited.stubs.registrations.RegisterDevice
        over = reg.RegisterDeviceRequest(platform=APNS, device_token="a" * 64)
        over.metadata["k"] = "v" * limit
        error = await outcome(call(over, metadata=limited.app.device()))
        assert error is not None
        check_error(error, INVALID, "MESSAGE_TOO_LARGE", metadata={"limit": str(limit)})


async def test_a_stream_message_over_the_limit_ends_the_stream_once(
    empty_database: str, clock: ManualClock
) -> None:
    limit = request_limits(SMALL_LIMITS)[IMPORT]
    async with limited_server(empty_database, clock, limits=SMALL_LIMITS) as limited:
        first = batch(2)
        big = batch(1)
        big.registrations[0].metadata["k"] = "v" * limit
        call = limited.stubs.registrations.RegisterDevices(
            stream_requests([first, big, batch(1)]), metadata=limited.app.server()
        )
        answers = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for answer in call:
                answers.append(answer)
        check_error(caught.value, INVALID, "MESSAGE_TOO_LARGE", metadata={"limit": str(limit)})
        assert [len(answer.results) for answer in answers] == [2]
        assert len(await limited.app.list_all()) == 2


async def test_a_registration_over_its_size_fails_alone_in_a_batch(
    empty_database: str, clock: ManualClock
) -> None:
    async with limited_server(empty_database, clock, limits=SMALL_LIMITS) as limited:
        message = batch(3)
        message.registrations[1].metadata["k"] = "v" * SMALL_LIMITS.registration_bytes
        call = limited.stubs.registrations.RegisterDevices(
            stream_requests([message]), metadata=limited.app.server()
        )
        [answer] = [a async for a in call]
        outcomes = [result.WhichOneof("outcome") for result in answer.results]
        assert outcomes == ["response", "error", "response"]
        info = check_status(answer.results[1].error, INVALID, "REGISTRATION_TOO_LARGE")
        assert info.metadata["limit"] == str(SMALL_LIMITS.registration_bytes)


# -------------------------------------------------------------- key checks ----


async def test_a_large_request_without_a_valid_key_is_unauthenticated(
    app: AppHandle, channel: grpc.aio.Channel
) -> None:
    """The key is checked before the request is read: a body larger than the method
    takes is refused as unauthenticated, not as too large."""
    body = padded(1024 * 1024)
    for metadata in ((), (("authorization", "Bearer phs_not-a-key"),)):
        error = await unary_outcome(
            channel, "/pushhub.v1.DeviceRegistrationService/RegisterDevice", body, metadata
        )
        assert error is not None
        check_error(error, UNAUTHENTICATED, "API_KEY_INVALID")
    release = asyncio.Event()
    call = app.stubs.registrations.RegisterDevices(
        waiting_requests(release), metadata=(("authorization", "Bearer phs_nope"),)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [a async for a in call]
    release.set()
    check_error(caught.value, UNAUTHENTICATED, "API_KEY_INVALID")


# --------------------------------------------------------------------- caps ----


async def test_import_streams_over_the_cap_are_refused_until_one_ends(
    empty_database: str, clock: ManualClock
) -> None:
    async with limited_server(empty_database, clock, max_import_streams=1) as limited:
        rpc, key = limited.stubs.registrations, limited.app.server()
        release = asyncio.Event()
        holder = rpc.RegisterDevices(waiting_requests(release, batch(1)), metadata=key)
        first = await holder.read()  # answered: it holds the only import slot
        assert len(first.results) == 1
        # Its iterator sends nothing: a Python client still writing when the
        # refusal comes sees INTERNAL instead (grpc/grpc#36066).
        refused = rpc.RegisterDevices(waiting_requests(release), metadata=key)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [a async for a in refused]
        info = check_error(caught.value, EXHAUSTED, "TOO_MANY_IMPORT_STREAMS")
        assert info.metadata["setting"] == "PUSHHUB_MAX_IMPORT_STREAMS"
        # Unary calls are not import streams.
        await limited.app.register()
        release.set()
        assert await rest(holder) == []
        await admitted_eventually(
            lambda: rpc.RegisterDevices(stream_requests([batch(1)]), metadata=key)
        )


async def rest(call) -> list:
    """The remaining answers of a stream already read with read()."""
    answers = []
    while (answer := await call.read()) is not grpc.aio.EOF:
        answers.append(answer)
    return answers


async def admitted_eventually(start_call) -> None:
    """The slot of a finished call comes back when its task ends, just after the
    client saw the end: retry a refused call a bounded number of times."""
    for _ in range(100):
        try:
            [a async for a in start_call()]
            return
        except grpc.aio.AioRpcError as error:
            if error.code() != EXHAUSTED:
                raise
            await asyncio.sleep(0.02)
    raise AssertionError("the slot never came back")


async def test_calls_over_the_cap_are_refused_and_health_still_answers(
    empty_database: str, clock: ManualClock
) -> None:
    async with limited_server(
        empty_database, clock, max_concurrent_rpcs=2, max_import_streams=2
    ) as limited:
        rpc, key = limited.stubs.registrations, limited.app.server()
        release = asyncio.Event()
        holders = [
            rpc.RegisterDevices(waiting_requests(release, batch(1)), metadata=key) for _ in range(2)
        ]
        for holder in holders:
            await holder.read()
        error = await outcome(limited.app.register())
        assert error is not None
        info = check_error(error, EXHAUSTED, "TOO_MANY_CALLS")
        assert info.metadata["limit"] == "2"
        health = health_pb2_grpc.HealthStub(limited.channel)
        answer = await health.Check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        release.set()
        for holder in holders:
            assert await rest(holder) == []
        await admitted_eventually(
            lambda: rpc.RegisterDevices(stream_requests([batch(1)]), metadata=key)
        )


async def test_a_call_cancelled_before_its_request_gives_its_slot_back(
    empty_database: str, clock: ManualClock
) -> None:
    async with limited_server(
        empty_database, clock, max_concurrent_rpcs=1, max_import_streams=1
    ) as limited:
        rpc, key = limited.stubs.registrations, limited.app.server()
        release = asyncio.Event()
        abandoned = rpc.RegisterDevices(waiting_requests(release), metadata=key)
        # Once the stream holds the only slot, other calls are refused...
        for _ in range(100):
            if abandoned.done():  # refused: a probing call had the slot first
                abandoned = rpc.RegisterDevices(waiting_requests(release), metadata=key)
            await asyncio.sleep(0.02)
            if reason_of(await outcome(limited.app.register())) == "TOO_MANY_CALLS":
                break
        else:
            raise AssertionError("the waiting stream never took the slot")
        # ...and its client leaving without sending anything gives it back.
        abandoned.cancel()
        release.set()
        await admitted_eventually(
            lambda: rpc.RegisterDevices(stream_requests([batch(1)]), metadata=key)
        )


async def test_watches_have_their_own_cap_and_leave_unary_calls_alone(
    empty_database: str, clock: ManualClock
) -> None:
    async with limited_server(
        empty_database, clock, max_concurrent_rpcs=1, max_watches=2
    ) as limited:
        app = limited.app
        later = timestamp(clock.now().replace(year=clock.now().year + 1))
        published = await app.publish(channel="c", message="m", publish_at=later)
        request = st.WatchMessageStatusRequest(message_id=published.message_id)
        watches = [limited.stubs.status.WatchMessageStatus(request, metadata=app.server())]
        watches.append(limited.stubs.status.WatchMessageStatus(request, metadata=app.server()))
        for watch in watches:
            await watch.read()  # each is open, and counted
        # The only call slot is free: watches do not take it.
        assert (await app.status(published.message_id)).message_id == published.message_id
        third = limited.stubs.status.WatchMessageStatus(request, metadata=app.server())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [s async for s in third]
        check_error(caught.value, EXHAUSTED, "TOO_MANY_WATCHES")
        for watch in watches:
            watch.cancel()


async def test_imports_share_a_tiny_item_budget_and_all_finish(
    empty_database: str, clock: ManualClock
) -> None:
    """One item in flight across all streams: every message still gets its turn
    (a message larger than the budget takes all of it), and the budget comes back."""
    async with limited_server(
        empty_database, clock, max_import_items_in_flight=1, max_import_streams=4
    ) as limited:
        rpc, key = limited.stubs.registrations, limited.app.server()

        async def stream() -> list[int]:
            call = rpc.RegisterDevices(
                stream_requests([batch(2), batch(3), batch(1)]), metadata=key
            )
            return [len(answer.results) async for answer in call]

        for _ in range(2):
            assert await asyncio.gather(*(stream() for _ in range(4))) == [[2, 3, 1]] * 4
        assert len(await limited.app.list_all()) == 2 * 4 * 6


# -------------------------------------------------------------- rate limit ----


async def test_a_device_key_is_rate_limited_per_address_and_a_server_key_is_not(
    empty_database: str, clock: ManualClock
) -> None:
    # A rate too slow to refill during the test: the burst is all this address gets.
    async with limited_server(empty_database, clock, device_rate=0.001, device_burst=3) as limited:
        app, rpc = limited.app, limited.stubs.registrations
        for _ in range(3):
            await rpc.CreateRegistrationId(reg.CreateRegistrationIdRequest(), metadata=app.device())
        error = await outcome(
            rpc.CreateRegistrationId(reg.CreateRegistrationIdRequest(), metadata=app.device())
        )
        assert error is not None
        info = check_error(error, EXHAUSTED, "RATE_LIMITED")
        assert info.metadata["setting"] == "PUSHHUB_DEVICE_RATE"
        assert retry_delay(rich_status(error)) > 100  # a token every 1,000 s
        for _ in range(10):
            await rpc.CreateRegistrationId(reg.CreateRegistrationIdRequest(), metadata=app.server())


async def test_device_calls_in_flight_are_capped_per_address(
    empty_database: str, clock: ManualClock
) -> None:
    async with limited_server(empty_database, clock, device_concurrency=1) as limited:
        app, stubs = limited.app, limited.stubs
        holder = health_pb2_grpc.HealthStub(limited.channel).Watch(health_pb2.HealthCheckRequest())
        await holder.read()  # an anonymous call in flight from this address
        error = await outcome(
            stubs.registrations.CreateRegistrationId(
                reg.CreateRegistrationIdRequest(), metadata=app.device()
            )
        )
        assert error is not None
        check_error(error, EXHAUSTED, "TOO_MANY_CALLS_FROM_ADDRESS")
        # Server keys are not counted per address.
        await stubs.registrations.CreateRegistrationId(
            reg.CreateRegistrationIdRequest(), metadata=app.server()
        )
        holder.cancel()


# ------------------------------------------------------------ answer sizes ----


@asynccontextmanager
async def default_client(server) -> AsyncIterator[Stubs]:
    """A client with gRPC's default limits: it receives at most 4 MiB."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Stubs.on(channel)


async def test_a_list_page_ends_early_rather_than_outgrow_a_client(server, app: AppHandle) -> None:
    metadata = {f"k{index}": "v" * 1000 for index in range(14)}  # about 14 KB each
    for _ in range(2):
        call = app.stubs.registrations.RegisterDevices(
            stream_requests([batch(150, metadata=metadata)]), metadata=app.server()
        )
        [answer] = [a async for a in call]
        assert all(result.HasField("response") for result in answer.results)
    async with default_client(server) as stubs:
        pages, token = [], ""
        for _ in range(10):
            page = await stubs.registrations.ListRegistrations(
                reg.ListRegistrationsRequest(page_size=1000, page_token=token),
                metadata=app.server(),
            )
            pages.append(page.registrations)
            token = page.next_page_token
            if not token:
                break
    assert len(pages) > 1 and len(pages[0]) < 300, [len(page) for page in pages]
    ids = [item.registration_id for page in pages for item in page]
    assert len(ids) == len(set(ids)) == 300


async def test_a_message_whose_answer_could_outgrow_a_client_is_refused_once(
    server, app: AppHandle
) -> None:
    channels = [chr(ord("a") + index % 26) * (1 + index // 26) for index in range(64)]
    async with default_client(server) as stubs:
        call = stubs.registrations.RegisterDevices(
            stream_requests([batch(1000, channels=channels)]), metadata=app.server()
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [a async for a in call]
        check_error(caught.value, INVALID, "ANSWER_TOO_LARGE", field="registrations")
        assert await app.list_all() == []
        # Fewer per message: answered, within what this client accepts.
        call = stubs.registrations.RegisterDevices(
            stream_requests([batch(300, channels=channels)]), metadata=app.server()
        )
        [answer] = [a async for a in call]
    assert all(len(result.response.channel_registration_ids) == 64 for result in answer.results)


async def test_answers_stay_within_the_bound_they_are_admitted_by(server, app: AppHandle) -> None:
    """answer_bound admits a message only if its answer fits; it must never be
    smaller than the real answer, whatever the items and their outcomes."""
    wide = "\U0001f600"
    shapes = [
        {},  # the default channel is added
        {"channels": [chr(ord("a") + i % 26) * (1 + i // 26) for i in range(64)]},
        {"channels": [wide * 60 + str(i) for i in range(64)]},
        {"metadata": {"k": wide * 900}, "tags": ["t" * 120] * 3},
        {"templates": {"t": reg.Template(body='{"a": "' + wide * 500 + '"}', tags=["x"])}},
        {"track": True, "callback_url": "http://127.0.0.1:9/" + wide * 100},
        {"device_token": ""},  # fails: required
        {"device_token": wide * 5000},  # fails: too long, echoed in no error text
        {"channels": [wide * 300]},  # fails: a channel name too long
        {"selector": "a = '" + wide * 200 + "'"},
    ]
    items = []
    for index in range(300):
        fields = dict(shapes[index % len(shapes)])
        fields.setdefault("device_token", new_token())
        items.append(reg.RegisterDeviceRequest(platform=APNS, **fields))
    message = reg.RegisterDevicesRequest(registrations=items)
    sizes = [item.ByteSize() for item in message.registrations]
    channels = [len(item.channels) for item in message.registrations]
    names = [sum(len(c.encode()) for c in item.channels) for item in message.registrations]
    async with default_client(server) as stubs:
        for _ in range(2):  # created, then updated
            call = stubs.registrations.RegisterDevices(
                stream_requests([message]), metadata=app.server()
            )
            [answer] = [a async for a in call]
            assert answer.ByteSize() <= answer_bound(sizes, channels, names)
            assert answer.ByteSize() <= answer_bound(sizes, channels)
    outcomes = {result.WhichOneof("outcome") for result in answer.results}
    assert outcomes == {"response", "error"}
