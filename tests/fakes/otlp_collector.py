"""A fake OpenTelemetry collector: the OTLP/gRPC TraceService, keeping every
span it is sent. It speaks the real protocol (opentelemetry-proto's service),
so the server's own OTLP exporter is what the tests exercise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2


@dataclass
class ExportedSpan:
    service: str
    span: trace_pb2.Span


@dataclass
class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    spans: list[ExportedSpan] = field(default_factory=list)
    port: int = 0

    async def Export(  # noqa: N802 - the generated service's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            service = attributes.get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(ExportedSpan(service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def named(self, name: str) -> list[ExportedSpan]:
        return [exported for exported in self.spans if exported.span.name == name]


@asynccontextmanager
async def running_collector() -> AsyncIterator[Collector]:
    """A collector on a free loopback port, plaintext (OTLP's insecure mode)."""
    collector = Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    collector.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield collector
    finally:
        await server.stop(None)
