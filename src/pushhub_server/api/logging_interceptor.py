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
    log_rpc = functools.partial(_log_rpc, method)
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


_LINE = '{"method": %s, "code": "%s", "duration_ms": %s}'


@functools.cache
def _quoted(method: str) -> str:
    return json.dumps(method)
