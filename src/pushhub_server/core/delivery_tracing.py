"""Spans around delivery's steps, and the no-op default (tracing off).

The port is core.ports.DeliveryTracing; observability/tracing.py implements it
with OpenTelemetry, linking each span to the Publish's trace context stored on
the message. Off, each step costs one call returning a shared null context.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from .messages import Message
from .models import Platform

_NOTHING: AbstractContextManager[None] = nullcontext()


class NoDeliveryTracing:
    def run(self, message: Message, claim: int) -> AbstractContextManager[None]:
        return _NOTHING

    def chunk(self, message: Message, recipients: int) -> AbstractContextManager[None]:
        return _NOTHING

    def provider_send(self, platform: Platform, deliveries: int) -> AbstractContextManager[None]:
        return _NOTHING


NO_DELIVERY_TRACING = NoDeliveryTracing()
