"""Delivery providers (core.ports.DeliveryProvider): one module per push service, and
the simulator that stands in for a platform without credentials."""

from .simulator import SimulatorProvider

__all__ = ["SimulatorProvider"]
