"""Per-method request size limits, checked before a message is parsed.

grpc has one receive limit per server: it is set to the largest limit of any
method (grpc refuses anything bigger itself, before reading it, with its own
RESOURCE_EXHAUSTED). Each method's own, smaller limit (message_sizes.py) is
checked here on the raw bytes, before parsing: a bigger request could not be
valid, so it is answered INVALID_ARGUMENT with reason MESSAGE_TOO_LARGE. For a
stream, the message over the limit ends the stream in its turn, after the
answers to the messages before it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from ..core.errors import ErrorCode, PushHubError
from .errors import abort
from .refusals import Context
from .wrapped_handlers import WrappedHandlers

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class _TooLarge:
    """What the deserializer hands over instead of a message over the limit."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class MessageSizeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, limits: Mapping[str, int], default: int) -> None:
        """limits: full method name → bytes; default: any other unary-request method's
        (health, reflection's streams are left to grpc's own limit)."""
        self._limits = dict(limits)
        self._default = default
        self._checked = WrappedHandlers(self._check)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self._checked.of(handler_call_details.method, handler)

    def _check(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        limit = self._limits.get(method)
        if handler.request_streaming and limit is None:
            return handler
        limit = limit or self._default
        error = _too_large_error(method, limit)
        deserializer = _deserializer(handler.request_deserializer, limit)
        if handler.request_streaming:
            # PushHub's request streams answer a PushHubError from the stream in order.
            inner = handler.stream_unary or handler.stream_stream
            behavior = _stream_requests(inner, error)
        else:
            inner = handler.unary_unary or handler.unary_stream
            behavior = _one_request(inner, error)
        make = _MAKERS[(handler.request_streaming, handler.response_streaming)]
        return make(
            behavior,
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )


_MAKERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _deserializer(inner: Callable[[bytes], Any] | None, limit: int) -> Callable[[bytes], Any]:
    def deserialize(raw: bytes) -> Any:
        if len(raw) > limit:
            return _TooLarge(len(raw))
        return inner(raw) if inner is not None else raw

    return deserialize


def _too_large_error(method: str, limit: int) -> Callable[[_TooLarge], PushHubError]:
    name = method.rpartition("/")[2]

    def error(request: _TooLarge) -> PushHubError:
        return PushHubError(
            ErrorCode.INVALID_ARGUMENT,
            "MESSAGE_TOO_LARGE",
            f"a {name} request message holds at most {limit} bytes; this one has {request.size}",
            {"limit": str(limit), "size": str(request.size)},
        )

    return error


def _one_request(inner: Callable[..., Any], error: Callable[[_TooLarge], PushHubError]) -> Any:
    if inspect.isasyncgenfunction(inner):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            if request.__class__ is _TooLarge:
                await abort(context, error(request))
            async for response in inner(request, context):
                yield response

        return stream

    async def unary(request: Any, context: Context) -> Any:
        if request.__class__ is _TooLarge:
            await abort(context, error(request))
        return await inner(request, context)

    return unary


def _stream_requests(inner: Callable[..., Any], error: Callable[[_TooLarge], PushHubError]) -> Any:
    async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            if request.__class__ is _TooLarge:
                raise error(request)
            yield request

    if inspect.isasyncgenfunction(inner):

        async def stream(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            async for response in inner(checked(requests), context):
                yield response

        return stream

    async def unary(requests: AsyncIterator[Any], context: Context) -> Any:
        return await inner(checked(requests), context)

    return unary
