"""The /metrics endpoint: Prometheus' text format over HTTP, on its own thread.

One process: its server's registry is served. Several (`serve --workers N`):
every worker sets PROMETHEUS_MULTIPROC_DIR (the same directory) before
prometheus_client is imported and records into its files, while one parent
serves `served_registry()`, which sums them (docs/observability.md):

    endpoint = serve_metrics(config.metrics_listen, served_registry())
    ...                          # start workers with serve_metrics_endpoint=False
    mark_process_dead(pid)       # for each worker that exits
    endpoint.close()

The HTTP server is prometheus_client's own (a WSGI server on a daemon thread),
so a scrape never waits for the event loop, nor the loop for a scrape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from .prometheus_metrics import PushHubMetrics

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class MetricsEndpointError(Exception):
    """The endpoint cannot serve as asked; the message is the whole story. The
    server floor reports it as its StartupError (this package sits below it)."""


@dataclass
class MetricsEndpoint:
    """A serving /metrics endpoint; `port` is the bound one (listen may say 0)."""

    host: str
    port: int
    _server: WSGIServer = field(repr=False)
    _thread: Thread = field(repr=False)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_DIR_VARIABLE))


def served_registry(own: CollectorRegistry | None = None) -> CollectorRegistry:
    """What /metrics serves: in multiprocess mode the sum of every process's files
    in PROMETHEUS_MULTIPROC_DIR, else `own` (a fresh registry when None)."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return own if own is not None else CollectorRegistry()


def mark_process_dead(pid: int | None = None) -> None:
    """Drops a process's live gauges (pushhub_runs_in_flight) from the sum; its
    counters stay counted. A no-op outside multiprocess mode."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid() if pid is None else pid)


def serve_metrics(listen: str, registry: CollectorRegistry) -> MetricsEndpoint:
    """Serves `registry` at http://listen/metrics until close(). listen is
    HOST:PORT ([::1]:9464 for IPv6); port 0 picks a free one."""
    host, port = parse_listen(listen)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise MetricsEndpointError(
            f"cannot serve metrics on {listen}: {error.strerror or error}"
        ) from error
    return MetricsEndpoint(host, server.server_port, server, thread)


def parse_listen(listen: str) -> tuple[str, int]:
    host, separator, port = listen.rpartition(":")
    if not separator or not host or not port.isdigit() or int(port) > 65535:
        raise MetricsEndpointError(f"metrics listen address {listen!r} is not HOST:PORT")
    return host.removeprefix("[").removesuffix("]"), int(port)


@dataclass
class ProcessMetrics:
    """A server process's metrics, and its endpoint unless a parent serves them."""

    metrics: PushHubMetrics
    endpoint: MetricsEndpoint | None

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
        mark_process_dead()


def start_process_metrics(listen: str, serve_endpoint: bool = True) -> ProcessMetrics:
    """The process's metrics, served at `listen` when serve_endpoint (a worker
    under `--workers` leaves that to its parent, which sums the workers' files)."""
    own = None if multiprocess_mode() else CollectorRegistry()
    metrics = PushHubMetrics(own)
    endpoint = serve_metrics(listen, served_registry(own)) if serve_endpoint else None
    return ProcessMetrics(metrics, endpoint)
