"""OpenTelemetry traces: RPC spans (opentelemetry-instrumentation-grpc), and
delivery's run, chunk and provider-send spans linked to the Publish.

A message stores its Publish's W3C traceparent (messages.trace_context), so
whichever process delivers it, later or after a crash, links its spans to
that Publish. A run is a trace of its own (delivery is not part of the Publish
call, which answered long before) with a link to the Publish's span; its chunks
are its children, provider sends theirs, and each carries the link too, so a
backend shows the Publish from any of them.

On only when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
is set (observability_setup decides; then every standard OTEL_* variable
applies: headers, sampler, service name, resource attributes): spans go out by
OTLP/gRPC in batches. Unset, none of this is imported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.trace import Link, SpanKind, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pushhub_server.core.messages import Message
from pushhub_server.core.models import Platform

_TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
# The link to the Publish of the run in progress, for its provider sends.
_PUBLISH_LINKS: ContextVar[tuple[Link, ...]] = ContextVar("pushhub_publish_links", default=())


class Tracing:
    """One server's tracing: its RPC interceptor, delivery spans and log trace ids."""

    def __init__(self, provider: TracerProvider, *, owned: bool = False) -> None:
        self._provider = provider
        # Ours to shut down (flushing what is batched) when the server stops.
        self._owned = owned
        self.delivery = OtelDeliveryTracing(provider.get_tracer("pushhub.delivery"))

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return aio_server_interceptor(tracer_provider=self._provider)

    @staticmethod
    def current_trace_context() -> str | None:
        """The current span's W3C traceparent (a Publish's, stored on its message)."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get(_TRACEPARENT)

    @staticmethod
    def current_trace_id() -> str | None:
        """The current trace's id as 32 hex digits, for the per-RPC log line."""
        context = trace.get_current_span().get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else None

    def close(self) -> None:
        if self._owned:
            self._provider.shutdown()  # type: ignore[attr-defined]  # the SDK's


class OtelDeliveryTracing:
    """core.ports.DeliveryTracing with OpenTelemetry spans."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    @contextmanager
    def run(self, message: Message, claim: int) -> Iterator[None]:
        links = publish_links(message.trace_context)
        token = _PUBLISH_LINKS.set(links)
        attributes = {
            "pushhub.message_id": message.message_id,
            "pushhub.app_id": message.app_id,
            "pushhub.claim": claim,
        }
        try:
            # A root: the run's trace is its own, linked to the Publish's.
            with self._tracer.start_as_current_span(
                "pushhub.run",
                context=trace.set_span_in_context(trace.INVALID_SPAN),
                links=links,
                attributes=attributes,
            ):
                yield
        finally:
            _PUBLISH_LINKS.reset(token)

    @contextmanager
    def chunk(self, message: Message, recipients: int) -> Iterator[None]:
        attributes = {"pushhub.message_id": message.message_id, "pushhub.recipients": recipients}
        with self._tracer.start_as_current_span(
            "pushhub.chunk", links=_PUBLISH_LINKS.get(), attributes=attributes
        ):
            yield

    @contextmanager
    def provider_send(self, platform: Platform, deliveries: int) -> Iterator[None]:
        attributes = {"pushhub.platform": platform.value, "pushhub.deliveries": deliveries}
        with self._tracer.start_as_current_span(
            "pushhub.provider_send",
            kind=SpanKind.CLIENT,
            links=_PUBLISH_LINKS.get(),
            attributes=attributes,
        ):
            yield


def publish_links(trace_context: str | None) -> tuple[Link, ...]:
    """A link to the span a stored traceparent names; none when there is none."""
    if not trace_context:
        return ()
    context = _PROPAGATOR.extract({_TRACEPARENT: trace_context})
    span_context = trace.get_current_span(context).get_span_context()
    return (Link(span_context),) if span_context.is_valid else ()


def otlp_tracing(environ: Mapping[str, str]) -> Tracing:
    """Spans exported by OTLP/gRPC, configured by the standard OTEL_* variables."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME wins when set; OTEL_RESOURCE_ATTRIBUTES add to it.
    name = environ.get("OTEL_SERVICE_NAME") or "pushhub"
    provider = SdkTracerProvider(resource=Resource.create({"service.name": name}))
    # The exporter reads the endpoint, headers, TLS and timeout variables itself.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider, owned=True)
