"""prometheus-client's multiprocess mode (docs/observability.md): processes
sharing PROMETHEUS_MULTIPROC_DIR serve the sum of their metrics, the way a
`serve --workers N` parent serves its workers'."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pushhub.v1 import common_pb2, registration_pb2, registration_pb2_grpc
from tests.acceptance.metrics_scrape import labels, scrape
from tests.e2e.server_process import Launcher, free_port

REGISTER = labels(
    grpc_type="unary",
    grpc_service="pushhub.v1.DeviceRegistrationService",
    grpc_method="RegisterDevice",
)


@pytest.fixture
def launchers(tmp_path: Path) -> Iterator[list[tuple[Launcher, int]]]:
    """Two servers, each with its own database and metrics port, one metrics directory."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    started = []
    for name in ("first", "second"):
        port = free_port()
        settings = {
            "PROMETHEUS_MULTIPROC_DIR": str(shared),
            "PUSHHUB_METRICS_LISTEN": f"127.0.0.1:{port}",
        }
        workdir = tmp_path / name
        workdir.mkdir()
        url = f"sqlite+aiosqlite:///{workdir / 'pushhub.db'}"
        started.append((Launcher(url, workdir, settings), port))
    try:
        yield started
    finally:
        for launcher, _ in started:
            launcher.kill_all()


async def test_each_process_serves_the_sum_of_all(launchers) -> None:
    calls = {0: 2, 1: 3}
    for index, (launcher, _) in enumerate(launchers):
        key = json.loads(launcher.cli("apps", "create", "counted", "--json"))["server_key"]
        server = await launcher.serve()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = registration_pb2_grpc.DeviceRegistrationServiceStub(channel)
            for number in range(calls[index]):
                await stub.RegisterDevice(
                    registration_pb2.RegisterDeviceRequest(
                        platform=common_pb2.PLATFORM_APNS, device_token=f"{number:02d}" * 32
                    ),
                    metadata=(("authorization", f"Bearer {key}"),),
                )
    for _, metrics_port in launchers:
        exposed = await scrape(metrics_port)
        assert exposed["grpc_server_started_total"][REGISTER] == sum(calls.values())
        assert exposed["pushhub_runs_in_flight"][labels()] == 0
