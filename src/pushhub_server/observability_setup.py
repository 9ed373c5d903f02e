"""What a server process observes: metrics when PUSHHUB_METRICS_LISTEN is set,
and nothing at all (no import, no call) when it is not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import Config
from .core.delivery_metrics import NO_DELIVERY_METRICS
from .core.ports import DeliveryMetrics

if TYPE_CHECKING:
    from .api.metrics_interceptor import RpcMetrics
    from .observability.metrics_endpoint import ProcessMetrics


@dataclass
class Observability:
    process_metrics: ProcessMetrics | None = None

    @property
    def rpc_metrics(self) -> RpcMetrics | None:
        return None if self.process_metrics is None else self.process_metrics.metrics

    @property
    def delivery_metrics(self) -> DeliveryMetrics:
        if self.process_metrics is None:
            return NO_DELIVERY_METRICS
        return self.process_metrics.metrics

    @property
    def metrics_port(self) -> int | None:
        metrics = self.process_metrics
        return None if metrics is None or metrics.endpoint is None else metrics.endpoint.port

    def close(self) -> None:
        if self.process_metrics is not None:
            self.process_metrics.close()


def start_observability(config: Config, serve_metrics_endpoint: bool = True) -> Observability:
    if not config.metrics_listen:
        return Observability()
    # Imported here: prometheus_client reads PROMETHEUS_MULTIPROC_DIR when first imported.
    from .observability.metrics_endpoint import start_process_metrics

    return Observability(start_process_metrics(config.metrics_listen, serve_metrics_endpoint))
