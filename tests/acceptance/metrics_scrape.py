"""Reads a running server's /metrics as Prometheus would: its text format, parsed
by prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]


def labels(**pairs: str) -> Labels:
    return frozenset(pairs.items())


async def scrape(port: int) -> dict[str, dict[Labels, float]]:
    """Sample name -> its labels -> value."""
    text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            by_labels = samples.setdefault(sample.name, {})
            by_labels[frozenset(sample.labels.items())] = sample.value
    return samples


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()
