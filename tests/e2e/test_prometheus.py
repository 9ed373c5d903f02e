"""A real Prometheus server (Debian's `prometheus`, installed by
scripts/ensure-prometheus.sh) scrapes a running PushHub, and its HTTP query API
counts the notifications a publish sent (issue 13 §3)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from pushhub_server.core.clock import ManualClock
from tests import dashboard
from tests.acceptance.harness import (
    APNS,
    FCM,
    PUBLISHED,
    AppHandle,
    Stubs,
    create_app,
    settle,
    start_test_server,
)
from tests.e2e.server_process import free_port
from tests.own_database import own_database

# Every wait below is bounded: Prometheus starts in about a second and scrapes
# every SCRAPE_SECONDS.
SCRAPE_MS = 500
WAIT_SECONDS = 30.0
DEVICES = {APNS: 7, FCM: 5}


def _prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail(
            "prometheus is not installed: run scripts/ensure-prometheus.sh (make test does)"
        )
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def metered(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[object]:
    async with own_database(
        database_url, tmp_path_factory.mktemp("prometheus-db"), "test_prometheus"
    ) as url:
        running = await start_test_server(url, ManualClock(), metrics_listen="127.0.0.1:0")
        try:
            yield running
        finally:
            await running.stop(1.0)


@pytest.fixture(scope="module")
def prometheus(metered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus scraping the server's /metrics; yields its base URL."""
    directory = tmp_path_factory.mktemp("prometheus")
    config = directory / "prometheus.yml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "global": {"scrape_interval": f"{SCRAPE_MS}ms"},
                "scrape_configs": [
                    {
                        "job_name": "pushhub",
                        "static_configs": [{"targets": [f"127.0.0.1:{metered.metrics_port}"]}],
                    }
                ],
            }
        )
    )
    port = free_port()
    log = (directory / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            _prometheus(),
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(process, f"http://127.0.0.1:{port}", directory / "prometheus.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(process: subprocess.Popen, base_url: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"prometheus not ready after {WAIT_SECONDS} s:\n{log.read_text()[-2000:]}")


@pytest_asyncio.fixture(loop_scope="session")
async def metered_app(metered) -> AsyncIterator[AppHandle]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metered.port}") as channel:
        yield await create_app(Stubs.on(channel), ManualClock())


async def test_prometheus_counts_what_the_publish_sent(
    metered, metered_app: AppHandle, prometheus: str
) -> None:
    for platform, count in DEVICES.items():
        for _ in range(count):
            await metered_app.register(platform=platform)
    published = await metered_app.publish(message="scraped", broadcast=True)
    status = await settle(metered, metered_app, published.message_id)
    assert status.state == PUBLISHED
    assert status.sent_count == sum(DEVICES.values())

    sent = await _settled_value(
        prometheus, 'sum by (platform) (pushhub_notifications_total{outcome="sent"})'
    )
    assert sent == {"apns": DEVICES[APNS], "fcm": DEVICES[FCM]}
    published_total = await _settled_value(prometheus, "sum(pushhub_messages_total)")
    assert published_total == {"": 1}


async def test_prometheus_evaluates_every_dashboard_query(prometheus: str) -> None:
    """deploy/grafana/pushhub.json's PromQL is valid for a real Prometheus."""
    for query in dashboard.expressions(dashboard.load()):
        concrete = query.replace(dashboard.RATE_INTERVAL, "1m")
        await asyncio.to_thread(_query, prometheus, concrete)  # raises unless "success"


async def _settled_value(base_url: str, query: str) -> dict[str, float]:
    """The query's value by platform label, once two scrapes agree (or the wait ends)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    last: dict[str, float] | None = None
    while True:
        try:
            value = await asyncio.to_thread(_query, base_url, query)
        except OSError:
            value = None  # Prometheus is still starting
        if value and value == last:
            return value
        last = value
        if loop.time() > deadline:
            raise AssertionError(f"Prometheus never answered {query!r} twice alike: {last}")
        await asyncio.sleep(SCRAPE_MS / 1000 * 2)


def _query(base_url: str, query: str) -> dict[str, float]:
    url = f"{base_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:  # 400: the query does not parse
        raise AssertionError(f"{query!r}: {error.read().decode()}") from None
    assert answer["status"] == "success", answer
    return {
        item["metric"].get("platform", ""): float(item["value"][1])
        for item in answer["data"]["result"]
    }
