"""Every PushHub metric, under the names docs/observability.md promises.

The gRPC ones follow go-grpc-prometheus (grpc_server_*); the others are
pushhub_*. PushHubMetrics implements core.ports.DeliveryMetrics for the
dispatcher, scheduler and providers, and hands the RPC interceptor one
MethodMetrics per method, its labels resolved once.

Multiprocess mode (PROMETHEUS_MULTIPROC_DIR set before prometheus_client is
first imported): values live in files of that directory, one set per process,
and the registry serving /metrics sums them (metrics_endpoint.served_registry).
The metrics are then registered nowhere that is served, so nothing is counted
twice; the gauge sums live processes only.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pushhub_server.core.delivery_metrics import NotificationCounts
from pushhub_server.core.messages import MessageState
from pushhub_server.core.models import Platform

# Due-to-claim lag: a run is normally claimed within the scheduler's wake-up
# (milliseconds); seconds to minutes mean the fleet is behind.
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
_RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class MethodMetrics:
    """One RPC method's children of the grpc_server_* metrics."""

    def __init__(self, metrics: PushHubMetrics, grpc_type: str, full_method: str) -> None:
        service, _, method = full_method.lstrip("/").rpartition("/")
        labels = (grpc_type, service, method)
        self._handled = metrics.rpc_handled
        self._labels = labels
        self._started = metrics.rpc_started.labels(*labels)
        self._seconds = metrics.rpc_seconds.labels(*labels)
        # Codes met so far; a method answers few distinct ones.
        self._by_code: dict[str, Counter] = {}

    def started(self) -> None:
        self._started.inc()

    def handled(self, code: str, seconds: float) -> None:
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = self._handled.labels(*self._labels, code)
        counter.inc()
        self._seconds.observe(seconds)


class PushHubMetrics:
    """The metrics of one server process, registered in `registry` (None: in
    multiprocess mode, where the directory's files are what is served)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.rpc_started = Counter(
            "grpc_server_started_total",
            "RPCs started on the server.",
            _RPC_LABELS,
            registry=registry,
        )
        self.rpc_handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, whatever their status code.",
            (*_RPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.rpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start to its status, in seconds.",
            _RPC_LABELS,
            registry=registry,
        )
        self._notifications = Counter(
            "pushhub_notifications_total",
            "Notifications sent, failed (reason: a bounded kind) or re-sent by a retry.",
            ("platform", "outcome", "reason"),
            registry=registry,
        )
        self._provider_seconds = Histogram(
            "pushhub_provider_request_seconds",
            "One send of a chunk's share (or its retry) to a platform's provider, in seconds.",
            ("platform",),
            registry=registry,
        )
        self._messages = Counter(
            "pushhub_messages_total",
            "Messages that reached a terminal state.",
            ("state",),
            registry=registry,
        )
        self._scheduler_lag = Histogram(
            "pushhub_scheduler_lag_seconds",
            "From a run's due time to its claim, in seconds.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self._runs_in_flight = Gauge(
            "pushhub_runs_in_flight",
            "Runs being delivered now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        # Labelled children by their labels: a bounded set (platforms x outcomes x kinds).
        self._notification_children: dict[tuple[Platform, str, str], Counter] = {}
        self._provider_by_platform: dict[Platform, Histogram] = {}

    def method(self, grpc_type: str, full_method: str) -> MethodMetrics:
        return MethodMetrics(self, grpc_type, full_method)

    # core.ports.DeliveryMetrics

    def chunk_counted(self, counts: NotificationCounts) -> None:
        for platform, sent in counts.sent.items():
            if sent:
                self._notification(platform, "sent", "").inc(sent)
        for (platform, kind), failed in counts.failed.items():
            if failed:
                self._notification(platform, "failed", kind.value).inc(failed)
        for platform, retried in counts.retried.items():
            self._notification(platform, "retried", "").inc(retried)

    def provider_request(self, platform: Platform, seconds: float) -> None:
        histogram = self._provider_by_platform.get(platform)
        if histogram is None:
            histogram = self._provider_seconds.labels(_name(platform))
            self._provider_by_platform[platform] = histogram
        histogram.observe(seconds)

    def _notification(self, platform: Platform, outcome: str, reason: str) -> Counter:
        """The labelled child, looked up once: labels() takes a lock and joins strings."""
        key = (platform, outcome, reason)
        child = self._notification_children.get(key)
        if child is None:
            child = self._notifications.labels(_name(platform), outcome, reason)
            self._notification_children[key] = child
        return child

    def message_ended(self, state: MessageState) -> None:
        self._messages.labels(state.name.lower()).inc()

    def run_claimed(self, lag_seconds: float) -> None:
        self._scheduler_lag.observe(max(lag_seconds, 0.0))

    def run_started(self) -> None:
        self._runs_in_flight.inc()

    def run_ended(self) -> None:
        self._runs_in_flight.dec()


def _name(platform: Platform) -> str:
    return platform.value
