"""One structured (JSON) log line per RPC: method, status code and duration."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from .observed_behavior import code_name, observed, rewrapped
from .wrapped_handlers import WrappedHandlers

_log = logging.getLogger("pushhub.rpc")


class LoggingInterceptor(grpc.aio.ServerInterceptor):
    """Outside the others: calls they refuse are logged too. With `trace_id`
    (tracing on), each line carries the id of the RPC's trace."""

    def __init__(self, trace_id: Callable[[], str | None] | None = None) -> None:
        log_rpc = _log_rpc if trace_id is None else functools.partial(_log_traced_rpc, trace_id)
        self._wrapped = WrappedHandlers(functools.partial(_wrap, log_rpc))

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


def _wrap(
    log: Callable[..., None], method: str, handler: grpc.RpcMethodHandler
) -> grpc.RpcMethodHandler:
    log_rpc = functools.partial(log, method)
    return rewrapped(handler, lambda behavior: observed(behavior, log_rpc))


def _log_rpc(
    method: str, context: grpc.aio.ServicerContext, error: BaseException | None, started: float
) -> None:
    # Checked first: at WARNING and above an RPC costs no formatting at all.
    if not _log.isEnabledFor(logging.INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    # The same JSON object json.dumps wrote, formatted only when a handler emits
    # it: the method is JSON-quoted once per method, and code names are plain.
    _log.info(_LINE, _quoted(method), code_name(context, error), duration_ms)


def _log_traced_rpc(
    trace_id: Callable[[], str | None],
    method: str,
    context: grpc.aio.ServicerContext,
    error: BaseException | None,
    started: float,
) -> None:
    if not _log.isEnabledFor(logging.INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    code = code_name(context, error)
    # 32 hex digits or null: no quoting needed beyond the literal quotes.
    traced = trace_id()
    trace = "null" if traced is None else f'"{traced}"'
    _log.info(_TRACED_LINE, _quoted(method), code, duration_ms, trace)


_LINE = '{"method": %s, "code": "%s", "duration_ms": %s}'
_TRACED_LINE = '{"method": %s, "code": "%s", "duration_ms": %s, "trace_id": %s}'


@functools.cache
def _quoted(method: str) -> str:
    return json.dumps(method)
