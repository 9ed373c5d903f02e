"""Requests decoded by the handler, so a malformed one answers INVALID_ARGUMENT.

gRPC decodes each request with the method's deserializer before any handler
runs, and a DecodeError there (a string field holding invalid UTF-8, truncated
or corrupt wire data) reaches the client as UNKNOWN, with the exception's class
in the message. This interceptor gives gRPC no deserializer, so the handler
receives the bytes, and decodes them itself: a message that does not decode is
refused with INVALID_ARGUMENT ``MALFORMED_REQUEST``, before any other work.
For a request stream, the message that does not decode ends the stream; the
messages before it have been answered.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from ..core.errors import ErrorCode, PushHubError
from .errors import abort

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
Deserializer = Callable[[bytes], Any]

_MALFORMED = PushHubError(
    ErrorCode.INVALID_ARGUMENT,
    "MALFORMED_REQUEST",
    "the request is not a valid protobuf message of this method's request type"
    " (string fields must hold valid UTF-8)",
)


class DecodingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        # A method's handler never changes: wrap it once, not on every call.
        self._wrapped: dict[str, grpc.RpcMethodHandler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method not in self._wrapped:
            handler = await continuation(handler_call_details)
            # None: an unknown method, which gRPC answers UNIMPLEMENTED itself.
            self._wrapped[method] = None if handler is None else _wrap(handler)
        return self._wrapped[method]  # type: ignore[return-value]


def _wrap(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    decode = handler.request_deserializer
    if decode is None:
        return handler
    serialize = handler.response_serializer
    if handler.unary_unary:
        behavior = _decoding_request(handler.unary_unary, decode)
        return grpc.unary_unary_rpc_method_handler(behavior, response_serializer=serialize)
    if handler.unary_stream:
        behavior = _decoding_request(handler.unary_stream, decode)
        return grpc.unary_stream_rpc_method_handler(behavior, response_serializer=serialize)
    if handler.stream_unary:
        behavior = _decoding_stream(handler.stream_unary, decode)
        return grpc.stream_unary_rpc_method_handler(behavior, response_serializer=serialize)
    behavior = _decoding_stream(handler.stream_stream, decode)
    return grpc.stream_stream_rpc_method_handler(behavior, response_serializer=serialize)


def _decoding_request(behavior: Behavior, decode: Deserializer) -> Behavior:
    """A unary-request behavior taking bytes; keeps its shape (grpc.aio treats async
    generators and coroutines differently for streamed responses)."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            request = await _decoded(raw, decode, context)
            async for response in behavior(request, context):
                yield response

        return stream

    async def unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        return await behavior(await _decoded(raw, decode, context), context)

    return unary


async def _decoded(raw: bytes, decode: Deserializer, context: grpc.aio.ServicerContext) -> Any:
    try:
        return decode(raw)
    except DecodeError:
        await abort(context, _MALFORMED)


def _decoding_stream(behavior: Behavior, decode: Deserializer) -> Behavior:
    """A stream-request behavior taking bytes: each message is decoded as the handler
    reads it, and one that does not decode raises there (map_errors answers it)."""

    async def decoded(raw_messages: AsyncIterable[bytes]) -> AsyncIterator[Any]:
        async for raw in raw_messages:
            try:
                message = decode(raw)
            except DecodeError:
                raise _MALFORMED from None
            yield message

    # Handlers without map_errors (reflection's) let the refusal through: answered here.
    if inspect.isasyncgenfunction(behavior):

        async def stream(
            raw_messages: AsyncIterable[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            try:
                async for response in behavior(decoded(raw_messages), context):
                    yield response
            except PushHubError as error:
                await abort(context, error)

        return stream

    async def unary(raw_messages: AsyncIterable[bytes], context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(decoded(raw_messages), context)
        except PushHubError as error:
            await abort(context, error)

    return unary
