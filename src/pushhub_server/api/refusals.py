"""Answering a call before its request message is read.

grpc.aio reads the request of a unary-request handler before calling it, so a
call refused by a unary handler has already cost its whole body (up to the
largest message the server accepts). A stream-request handler is called as soon
as the headers are in, and reads nothing it does not ask for. So an interceptor
refuses a call by returning a stream-request handler, and a check that needs
what only the handler's context knows (the client's address) runs in a
stream-request handler that reads the request itself once the check passed.

Interceptors and the handler they choose run in the RPC's own task, one task per
call (grpc.aio's server), which refusal() relies on to hand the error over.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc

from ..core.errors import ErrorCode, PushHubError
from .errors import abort

Context = grpc.aio.ServicerContext
# Admits a call or raises a PushHubError; what it returns is called once the call ends.
Admit = Callable[[Context], Callable[[], None]]

_REFUSED: ContextVar[Exception] = ContextVar("pushhub_refused")


async def _refuse(requests: object, context: Context) -> None:
    await abort(context, _REFUSED.get())


# One handler object for every refusal, so the logging interceptor wraps it once per method.
_REFUSAL = grpc.stream_unary_rpc_method_handler(_refuse)


def refusal(error: Exception) -> grpc.RpcMethodHandler:
    """A handler that answers this call with `error` without reading its request."""
    _REFUSED.set(error)
    return _REFUSAL


def admit_before_reading(handler: grpc.RpcMethodHandler, admit: Admit) -> grpc.RpcMethodHandler:
    """The handler as a stream-request handler that runs `admit` before any request
    message is read; a unary request is then read here and handed over as usual."""
    inner = handler.unary_unary or handler.unary_stream or handler.stream_unary
    inner = inner or handler.stream_stream
    reads_one = not handler.request_streaming
    if handler.response_streaming and inspect.isasyncgenfunction(inner):
        behavior = _streaming(inner, admit, reads_one)
        make = grpc.stream_stream_rpc_method_handler
    else:  # one response, or a stream written with context.write
        behavior = _single(inner, admit, reads_one)
        make = (
            grpc.stream_stream_rpc_method_handler
            if handler.response_streaming
            else grpc.stream_unary_rpc_method_handler
        )
    return make(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _single(inner: Callable[..., Awaitable[Any]], admit: Admit, reads_one: bool) -> Any:
    async def behavior(requests: AsyncIterator[Any], context: Context) -> Any:
        try:
            release = admit(context)
        except PushHubError as error:
            await abort(context, error)
        try:
            request = await _only_request(requests, context) if reads_one else requests
            return await inner(request, context)
        finally:
            release()

    return behavior


def _streaming(inner: Callable[..., AsyncIterator[Any]], admit: Admit, reads_one: bool) -> Any:
    async def behavior(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        try:
            release = admit(context)
        except PushHubError as error:
            await abort(context, error)
        try:
            request = await _only_request(requests, context) if reads_one else requests
            async for response in inner(request, context):
                yield response
        finally:
            release()

    return behavior


_NO_REQUEST = PushHubError(
    ErrorCode.INVALID_ARGUMENT, "REQUEST_REQUIRED", "this method takes one request message"
)


async def _only_request(requests: AsyncIterator[Any], context: Context) -> Any:
    async for request in requests:
        return request
    await abort(context, _NO_REQUEST)
