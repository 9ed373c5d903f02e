"""The go-grpc-prometheus RPC metrics: grpc_server_started_total,
grpc_server_handled_total and grpc_server_handling_seconds.

Next to the logging interceptor, outside the others, so calls they refuse
(unauthenticated, over a limit, too large) are counted under their codes too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import grpc

from .observed_behavior import Behavior, code_name, observed, rewrapped, rpc_type
from .wrapped_handlers import WrappedHandlers


class MethodMetrics(Protocol):
    """One method's counters, labels resolved (observability.prometheus_metrics)."""

    def started(self) -> None: ...

    def handled(self, code: str, seconds: float) -> None: ...


class RpcMetrics(Protocol):
    def method(self, grpc_type: str, full_method: str) -> MethodMetrics: ...


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics
        self._wrapped = WrappedHandlers(self._wrap)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED itself
            return handler
        return self._wrapped.of(handler_call_details.method, handler)

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        metrics = self._metrics.method(rpc_type(method, handler), method)
        return rewrapped(handler, lambda behavior: _counted(behavior, metrics))


def _counted(behavior: Behavior, metrics: MethodMetrics) -> Behavior:
    def ended(context: grpc.aio.ServicerContext, error: BaseException | None, at: float) -> None:
        metrics.handled(code_name(context, error), time.perf_counter() - at)

    return observed(behavior, ended, metrics.started)
