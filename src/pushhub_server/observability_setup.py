"""What a server process observes: metrics when PUSHHUB_METRICS_LISTEN is set,
traces when OTEL_EXPORTER_OTLP_ENDPOINT is (docs/observability.md). Each is
nothing at all when off: not imported, no interceptor, no-op ports."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from .config import Config
from .core.delivery_metrics import NO_DELIVERY_METRICS
from .core.delivery_tracing import NO_DELIVERY_TRACING
from .core.ports import DeliveryMetrics, DeliveryTracing
from .listener import StartupError

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from .api.metrics_interceptor import RpcMetrics
    from .observability.metrics_endpoint import ProcessMetrics
    from .observability.tracing import Tracing


@dataclass
class Observability:
    process_metrics: ProcessMetrics | None = None
    tracing: Tracing | None = None

    @property
    def rpc_metrics(self) -> RpcMetrics | None:
        return None if self.process_metrics is None else self.process_metrics.metrics

    @property
    def delivery_metrics(self) -> DeliveryMetrics:
        if self.process_metrics is None:
            return NO_DELIVERY_METRICS
        return self.process_metrics.metrics

    @property
    def delivery_tracing(self) -> DeliveryTracing:
        return NO_DELIVERY_TRACING if self.tracing is None else self.tracing.delivery

    @property
    def metrics_port(self) -> int | None:
        metrics = self.process_metrics
        return None if metrics is None or metrics.endpoint is None else metrics.endpoint.port

    def tracing_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [] if self.tracing is None else [self.tracing.interceptor()]

    def trace_context(self) -> Callable[[], str | None]:
        """The current trace context to store on a published message."""
        return (lambda: None) if self.tracing is None else self.tracing.current_trace_context

    def trace_id(self) -> Callable[[], str | None] | None:
        """For the per-RPC log line; None with tracing off (the line has no trace_id)."""
        return None if self.tracing is None else self.tracing.current_trace_id

    def close(self) -> None:
        if self.process_metrics is not None:
            self.process_metrics.close()
        if self.tracing is not None:
            self.tracing.close()


def start_observability(
    config: Config,
    serve_metrics_endpoint: bool = True,
    tracer_provider: TracerProvider | None = None,
    environ: Mapping[str, str] | None = None,
) -> Observability:
    """tracer_provider, when given, traces whatever the environment says (tests
    read spans from an in-memory exporter)."""
    observability = Observability(tracing=_tracing(tracer_provider, environ or os.environ))
    if config.metrics_listen:
        # Imported here: prometheus_client reads PROMETHEUS_MULTIPROC_DIR when first imported.
        from .observability.metrics_endpoint import MetricsEndpointError, start_process_metrics

        try:
            observability.process_metrics = start_process_metrics(
                config.metrics_listen, serve_metrics_endpoint
            )
        except MetricsEndpointError as error:
            observability.close()
            raise StartupError(str(error)) from error
        except BaseException:
            observability.close()
            raise
    return observability


def otlp_wanted(environ: Mapping[str, str]) -> bool:
    """An OTLP endpoint is set (for all signals, or for traces), and the standard
    OTEL_SDK_DISABLED does not turn the SDK off."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return bool(endpoint) and environ.get("OTEL_SDK_DISABLED", "").lower() != "true"


def _tracing(provider: TracerProvider | None, environ: Mapping[str, str]) -> Tracing | None:
    if provider is None and not otlp_wanted(environ):
        return None
    from .observability.tracing import Tracing, otlp_tracing

    return Tracing(provider) if provider is not None else otlp_tracing(environ)
