"""A WebhookSender that records what it would POST, for tests of the services."""

from __future__ import annotations

from collections.abc import Mapping


class RecordingWebhookSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str], dict[str, object]]] = []

    def send(self, url: str, headers: Mapping[str, str], body: Mapping[str, object]) -> None:
        self.sent.append((url, dict(headers), dict(body)))
