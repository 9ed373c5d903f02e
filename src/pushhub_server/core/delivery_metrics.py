"""What delivery counts for an operator's metrics, and the no-op default.

The dispatcher counts per chunk, not per notification: one `chunk_counted` call
carries a chunk's tallies, so an exporter's cost grows with chunks (a thousand
recipients each by default), not with recipients. The port is
core.ports.DeliveryMetrics; observability/prometheus_metrics.py implements it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from .messages import Delivery, MessageState
from .models import Platform


class FailureKind(enum.StrEnum):
    """The bounded set a failed notification is counted under. Providers name
    reasons of their own (any text a push service answers); those stay in the
    message's status, while metrics keep a label set that cannot grow."""

    INVALID_TOKEN = "invalid_token"
    REJECTED = "rejected"
    # Still RETRY after the last attempt, or the run was lost before a retry.
    RETRIES_EXHAUSTED = "retries_exhausted"
    # Its payload could not be rendered (template, metadata): never sent.
    UNRENDERABLE = "unrenderable"


@dataclass
class NotificationCounts:
    """One chunk's notifications: sent, failed by kind, and re-sent by retries."""

    sent: dict[Platform, int] = field(default_factory=dict)
    failed: dict[tuple[Platform, FailureKind], int] = field(default_factory=dict)
    retried: dict[Platform, int] = field(default_factory=dict)

    def count_failed(self, platform: Platform, kind: FailureKind, count: int = 1) -> None:
        key = (platform, kind)
        self.failed[key] = self.failed.get(key, 0) + count

    def count_resent(self, deliveries: Sequence[Delivery]) -> None:
        """A retry sends these again."""
        retried = self.retried
        for delivery in deliveries:
            retried[delivery.platform] = retried.get(delivery.platform, 0) + 1


class NoDeliveryMetrics:
    """Metrics off: every call does nothing."""

    def chunk_counted(self, counts: NotificationCounts) -> None:
        pass

    def provider_request(self, platform: Platform, seconds: float) -> None:
        pass

    def message_ended(self, state: MessageState) -> None:
        pass

    def run_claimed(self, lag_seconds: float) -> None:
        pass

    def run_started(self) -> None:
        pass

    def run_ended(self) -> None:
        pass


NO_DELIVERY_METRICS = NoDeliveryMetrics()
