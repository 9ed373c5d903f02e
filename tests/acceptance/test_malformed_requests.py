"""Requests that are not valid protobuf: INVALID_ARGUMENT MALFORMED_REQUEST, never UNKNOWN.

gRPC decoded requests before any handler ran, and answered a DecodeError (a
string field holding invalid UTF-8, truncated wire data) with UNKNOWN.
"""

from __future__ import annotations

import grpc
import pytest

from pushhub.v1 import registration_pb2 as reg

from .harness import FCM, AppHandle, check_error, new_token

INVALID = grpc.StatusCode.INVALID_ARGUMENT
REGISTER = "/pushhub.v1.DeviceRegistrationService/RegisterDevice"
REGISTER_MANY = "/pushhub.v1.DeviceRegistrationService/RegisterDevices"
WATCH = "/pushhub.v1.StatusService/WatchMessageStatus"

MALFORMED = [
    # device_token (field 3) holding the bytes ff fe: not UTF-8.
    pytest.param(b"\x10\x02\x1a\x02\xff\xfe", id="invalid-utf8"),
    # device_token announcing 5 bytes, carrying 2.
    pytest.param(b"\x1a\x05ab", id="truncated"),
    pytest.param(b"\xff\xff\xff\xff", id="garbage"),
]


def _raw(channel: grpc.aio.Channel, method: str, kind: str = "unary_unary"):
    """A call sending bytes as they are, as a hostile client can."""
    return getattr(channel, kind)(
        method, request_serializer=lambda body: body, response_deserializer=lambda body: body
    )


@pytest.mark.parametrize("body", MALFORMED)
async def test_a_malformed_unary_request(app: AppHandle, channel, body: bytes) -> None:
    for metadata in (app.server(), app.device()):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _raw(channel, REGISTER)(body, metadata=metadata)
        check_error(caught.value, INVALID, "MALFORMED_REQUEST")
    # Without a key the call is refused before its body is read at all.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _raw(channel, REGISTER)(body)
    check_error(caught.value, grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    assert await app.list_all() == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x0a\x02\xff\xfe", id="message-id-invalid-utf8"),
        pytest.param(b"\x0a\x05ab", id="truncated"),
    ],
)
async def test_a_malformed_request_of_a_server_stream(app: AppHandle, channel, body: bytes) -> None:
    call = _raw(channel, WATCH, "unary_stream")(body, metadata=app.server())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [response async for response in call]
    check_error(caught.value, INVALID, "MALFORMED_REQUEST")


@pytest.mark.parametrize("body", MALFORMED)
async def test_a_malformed_message_ends_an_import_stream_after_the_earlier_ones(
    app: AppHandle, channel, body: bytes
) -> None:
    good = reg.RegisterDevicesRequest(
        registrations=[reg.RegisterDeviceRequest(platform=FCM, device_token=new_token())]
    ).SerializeToString()
    # registrations (field 1) holding the malformed item.
    bad = b"\x0a" + bytes([len(body)]) + body

    async def messages():
        yield good
        yield bad

    call = _raw(channel, REGISTER_MANY, "stream_stream")(messages(), metadata=app.server())
    answered = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for response in call:
            answered.append(reg.RegisterDevicesResponse.FromString(response))
    check_error(caught.value, INVALID, "MALFORMED_REQUEST")
    assert len(answered) == 1 and answered[0].results[0].HasField("response")
    assert len(await app.list_all()) == 1


async def test_reflection_refuses_a_malformed_request_too(channel) -> None:
    call = _raw(
        channel,
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "stream_stream",
    )

    async def messages():
        yield b"\x3a\x02\xff\xfe"  # list_services (field 7) holding invalid UTF-8

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [response async for response in call(messages())]
    assert caught.value.code() is INVALID, caught.value.details()
