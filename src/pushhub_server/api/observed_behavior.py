"""Wrapping a method's behavior to observe each call's end: the per-RPC log line
and the RPC metrics both see every call, refused ones included, the same way."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pool

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
# Called once per call when it ends: its context, what it raised, perf_counter at its start.
OnEnd = Callable[[grpc.aio.ServicerContext, BaseException | None, float], None]


def rewrapped(
    handler: grpc.RpcMethodHandler, wrap: Callable[[Behavior], Behavior]
) -> grpc.RpcMethodHandler:
    """`handler` with wrap(behavior) for its behavior, its kind and codecs kept."""
    if handler.unary_unary:
        make, behavior = grpc.unary_unary_rpc_method_handler, handler.unary_unary
    elif handler.unary_stream:
        make, behavior = grpc.unary_stream_rpc_method_handler, handler.unary_stream
    elif handler.stream_unary:
        make, behavior = grpc.stream_unary_rpc_method_handler, handler.stream_unary
    else:
        make, behavior = grpc.stream_stream_rpc_method_handler, handler.stream_stream
    return make(
        wrap(behavior),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def rpc_type(method: str, handler: grpc.RpcMethodHandler) -> str:
    """The go-grpc-prometheus grpc_type of a method, from its definition: a
    refusal's handler reads a unary request as a stream (api/refusals.py), yet
    the call is still unary. The handler decides for a method not in the pool."""
    try:
        definition = descriptor_pool.Default().FindMethodByName(
            method.lstrip("/").replace("/", ".")
        )
        requests, responses = definition.client_streaming, definition.server_streaming
    except KeyError:
        requests, responses = handler.request_streaming, handler.response_streaming
    if requests:
        return "bidi_stream" if responses else "client_stream"
    return "server_stream" if responses else "unary"


def observed(
    behavior: Behavior, on_end: OnEnd, on_start: Callable[[], None] | None = None
) -> Behavior:
    """Wraps a behavior, keeping its shape: grpc.aio treats async generators and
    coroutines differently for streamed responses. on_start, if any, is called
    as each call begins."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if on_start is not None:
                on_start()
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as raised:
                error = raised
                raise
            finally:
                on_end(context, error, started)

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if on_start is not None:
            on_start()
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as raised:
            error = raised
            raise
        finally:
            on_end(context, error, started)

    return unary


def code_name(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    """The status code name the call ended with."""
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    # abort() records its code on the context before raising AbortError.
    code = context.code()
    if code is not None:
        return code.name
    return "OK" if error is None else "UNKNOWN"
