"""Delivery providers (core.ports.DeliveryProvider) and the retry policy they share."""

from .base import RetryPolicy
from .simulator import SimulatorProvider

__all__ = ["RetryPolicy", "SimulatorProvider"]
