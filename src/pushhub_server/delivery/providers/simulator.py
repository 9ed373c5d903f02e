"""The simulator: delivers without Apple, Google, Huawei or a push service, recording
what it "sent".

An app without a platform's credentials delivers to that platform through it. Each delivery it
accepts is recorded through the Inbox port (message, registration, platform,
rendered payload, time), which ``pushhub inbox`` lists. Constructed with
``record=False`` it accepts and discards, as the fan-out benchmark needs.

Failure injection, by device-token prefix (for tests and demos). FCM and HMS
tokens take a word; APNs tokens are hex digits only, so each failure also has a
hex prefix that reads like it; a Web Push token is its endpoint URL, whose last
path segment takes the word (``https://fcm.googleapis.com/fcm/send/invalid-1``).
``Injection``, below, is the one table:

========================  ===================================================
``invalid-…``             answered as an unregistered token (INVALID_TOKEN,
``deaddead…`` (APNs)      reason ``Unregistered``, as APNs 410 / FCM
                          UNREGISTERED): the registration is invalidated and
                          left out from then on.
``flaky-…``               the first attempt for a (message, token) fails with a
``fa11ab1e…`` (APNs)      retryable error (RETRY, reason ``ServiceUnavailable``,
                          a short Retry-After); the retry succeeds. A later run
                          of the same repeating message fails once again.
``rejected-…``            the payload is refused (REJECTED, reason
``bad0da7a…`` (APNs)      ``PayloadRejected``) and counted under that reason.
========================  ===================================================

Any other token is delivered. Eight hex digits make a random APNs token start
with one of them once in about 1.4 billion.

A ``validate_only`` send (a dry run) answers as a send would, injected failures
included, and records nothing: nothing was delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pushhub_server.core.clock import Clock
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.core.ports import Inbox


@dataclass(frozen=True)
class Injection:
    """The two token prefixes of one injected failure."""

    fcm: str
    apns: str

    @property
    def prefixes(self) -> tuple[str, str]:
        return (self.fcm, self.apns)

    def token(self, platform: Platform, rest: str) -> str:
        """A token that triggers this failure: the platform's prefix, then rest."""
        if platform is Platform.APNS:
            return self.apns + rest
        if platform is Platform.WEB_PUSH:
            return f"{SIMULATED_ENDPOINT}{self.fcm}{rest}"
        return self.fcm + rest


# Where a simulated Web Push endpoint's subscription id starts (FCM's Web Push path).
SIMULATED_ENDPOINT = "https://fcm.googleapis.com/fcm/send/"


# "dead dead", "fallible", "bad data".
INVALID = Injection("invalid-", "deaddead")
FLAKY = Injection("flaky-", "fa11ab1e")
REJECTED = Injection("rejected-", "bad0da7a")
_PREFIXES = (*INVALID.prefixes, *FLAKY.prefixes, *REJECTED.prefixes)

_SENT = DeliveryResult(DeliveryOutcome.SENT)
_UNREGISTERED = DeliveryResult(DeliveryOutcome.INVALID_TOKEN, "Unregistered")
_REJECTED = DeliveryResult(DeliveryOutcome.REJECTED, "PayloadRejected")


class SimulatorProvider:
    """Implements core.ports.DeliveryProvider for every platform."""

    def __init__(
        self,
        inbox: Inbox,
        clock: Clock,
        *,
        record: bool = True,
        retry_after: float = 0.05,
        flaky_memory: int = 100_000,
    ) -> None:
        self._inbox = inbox
        self._clock = clock
        self._record = record
        self._unavailable = DeliveryResult(DeliveryOutcome.RETRY, "ServiceUnavailable", retry_after)
        # (message_id, token) pairs whose first attempt failed, oldest first. Bounded:
        # a pair forgotten before its retry just fails once more, which is harmless.
        self._failed_once: dict[tuple[str, str], None] = {}
        self._flaky_memory = flaky_memory

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        # One prefix test per delivery, inline (a call per delivery showed in the
        # fan-out's profile); only injected failures and Web Push endpoints, whose
        # key is their last path segment, look further.
        result = self._result
        results = [
            result(delivery)
            if delivery.device_token.startswith(_PREFIXES) or delivery.platform is _WEB_PUSH
            else _SENT
            for delivery in deliveries
        ]
        if self._record and not validate_only:
            sent = [d for d, r in zip(deliveries, results, strict=True) if r is _SENT]
            if sent:
                await self._inbox.record(sent, self._clock.now())
        return results

    def _result(self, delivery: Delivery) -> DeliveryResult:
        token = _injection_key(delivery)
        if token.startswith(INVALID.prefixes):
            return _UNREGISTERED
        if token.startswith(REJECTED.prefixes):
            return _REJECTED
        if token.startswith(FLAKY.prefixes) and self._first_attempt(delivery.message_id, token):
            return self._unavailable
        return _SENT

    def _first_attempt(self, message_id: str, token: str) -> bool:
        """True once per (message, token): remembers it until the retry comes."""
        key = (message_id, token)
        if key in self._failed_once:
            del self._failed_once[key]
            return False
        if len(self._failed_once) >= self._flaky_memory:
            del self._failed_once[next(iter(self._failed_once))]
        self._failed_once[key] = None
        return True


def _injection_key(delivery: Delivery) -> str:
    """What the prefixes are matched against: the token, or a Web Push endpoint's
    last path segment (its subscription id)."""
    token = delivery.device_token
    if delivery.platform is _WEB_PUSH:
        return token.rpartition("/")[2]
    return token


_WEB_PUSH = Platform.WEB_PUSH
