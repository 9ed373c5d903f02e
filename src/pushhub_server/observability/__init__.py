"""Metrics (Prometheus) and traces (OpenTelemetry) for operators; docs/observability.md.

Imported only when they are on: a server without PUSHHUB_METRICS_LISTEN or
OTEL_EXPORTER_OTLP_ENDPOINT never loads prometheus-client or the OpenTelemetry SDK.
"""
