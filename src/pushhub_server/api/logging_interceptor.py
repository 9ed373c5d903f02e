"""One structured (JSON) log line per RPC: method, status code and duration."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from .wrapped_handlers import WrappedHandlers

_log = logging.getLogger("pushhub.rpc")

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]


class LoggingInterceptor(grpc.aio.ServerInterceptor):
    """The outermost interceptor: calls refused by the others are logged too."""

    def __init__(self) -> None:
        self._wrapped = WrappedHandlers(_wrap)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED itself
            return handler
        return self._wrapped.of(method, handler)


def _wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _logged(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _logged(method, handler.unary_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _logged(method, handler.stream_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.stream_stream_rpc_method_handler(
        _logged(method, handler.stream_stream),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _logged(method: str, behavior: Behavior) -> Behavior:
    """Wraps a behavior, keeping its shape: grpc.aio treats async generators and
    coroutines differently for streamed responses."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as raised:
                error = raised
                raise
            finally:
                _log_rpc(method, context, error, started)

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as raised:
            error = raised
            raise
        finally:
            _log_rpc(method, context, error, started)

    return unary


def _log_rpc(
    method: str, context: grpc.aio.ServicerContext, error: BaseException | None, started: float
) -> None:
    # Checked first: at WARNING and above an RPC costs no formatting at all.
    if not _log.isEnabledFor(logging.INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    # The same JSON object json.dumps wrote, formatted only when a handler emits
    # it: the method is JSON-quoted once per method, and code names are plain.
    _log.info(_LINE, _quoted(method), _code_name(context, error), duration_ms)


_LINE = '{"method": %s, "code": "%s", "duration_ms": %s}'


@functools.cache
def _quoted(method: str) -> str:
    return json.dumps(method)


def _code_name(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    # abort() records its code on the context before raising AbortError.
    code = context.code()
    if code is not None:
        return code.name
    return "OK" if error is None else "UNKNOWN"
