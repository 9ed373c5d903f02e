"""`pushhub serve --workers N --metrics-listen ...`: one /metrics for every worker
(issue 13 §3, docs/observability.md "Several processes").

The supervisor serves the sum of its workers' metrics (prometheus-client's
multiprocess mode); the workers bind no metrics port. A killed worker's counts
stay in the sum and its replacement's add to them. Without
PROMETHEUS_MULTIPROC_DIR the supervisor uses a temporary directory of its own
and removes it on exit (or the next start does, after a SIGKILL); an operator's
directory is used and kept.

PostgreSQL only, like every --workers test (fleet_url skips on SQLite).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from pushhub.v1 import (
    common_pb2,
    publish_pb2,
    publish_pb2_grpc,
    registration_pb2,
    registration_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
)
from tests.acceptance.harness import new_token
from tests.acceptance.metrics_scrape import labels, scrape
from tests.e2e.server_process import free_port
from tests.e2e.test_serve_process import PROCESS_TIMEOUT, Serve, server_key
from tests.e2e.test_workers import (
    WORKERS,
    alive,
    children,
    established_on,
    eventually,
    gone,
    kill_with_workers,
    serve,
    workers_of,
)

pytestmark = pytest.mark.slow

# New connections per round: all on one of 2 workers has odds of 2^-19.
CONNECTIONS = 20
REGISTER = labels(
    grpc_type="unary",
    grpc_service="pushhub.v1.DeviceRegistrationService",
    grpc_method="RegisterDevice",
    grpc_code="OK",
)
SENT = labels(platform="apns", outcome="sent", reason="")


@pytest.fixture
def started() -> Iterator[list[Serve]]:
    servers: list[Serve] = []
    yield servers
    kill_with_workers(servers)


class Calls:
    """The RPCs this test made, to compare with what /metrics counted."""

    def __init__(self) -> None:
        self.made = 0


def serve_with_metrics(started: list[Serve], tmp_path: Path, fleet_url: str) -> tuple[Serve, int]:
    """`serve --workers WORKERS --metrics-listen` on a free port: the server and that port."""
    metrics_port = free_port()
    server = serve(
        started,
        tmp_path,
        fleet_url,
        "--workers",
        str(WORKERS),
        "--metrics-listen",
        f"127.0.0.1:{metrics_port}",
    )
    return server, metrics_port


async def register_on_new_connections(
    server: Serve, metadata: tuple, calls: Calls, workers: list[int]
) -> list[int]:
    """One RegisterDevice on each of CONNECTIONS new connections; how many of
    them each worker held."""
    channels = [
        grpc.aio.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]
    try:
        for channel in channels:
            await registration_pb2_grpc.DeviceRegistrationServiceStub(channel).RegisterDevice(
                registration_pb2.RegisterDeviceRequest(
                    platform=common_pb2.PLATFORM_APNS, device_token=new_token()
                ),
                metadata=metadata,
            )
            calls.made += 1
        return [established_on(server.port, worker) for worker in workers]
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


async def publish_and_settle(channel: grpc.aio.Channel, metadata: tuple, calls: Calls) -> int:
    """A broadcast to every registered device (the simulator: no credentials);
    its sent count once PUBLISHED."""
    published = await publish_pb2_grpc.PublishServiceStub(channel).Publish(
        publish_pb2.PublishRequest(broadcast=True, message="counted once"), metadata=metadata
    )
    calls.made += 1
    status = status_pb2_grpc.StatusServiceStub(channel)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROCESS_TIMEOUT
    while True:
        answer = await status.GetMessageStatus(
            status_pb2.GetMessageStatusRequest(message_id=published.message_id),
            metadata=metadata,
        )
        calls.made += 1
        if answer.status.state == common_pb2.MESSAGE_STATE_PUBLISHED:
            assert answer.status.failed_count == 0, answer.status
            return answer.status.sent_count
        assert loop.time() < deadline, f"never delivered: {answer.status}"
        await asyncio.sleep(0.1)


def handled(exposed: dict) -> float:
    """Every RPC completed, whatever its method and code."""
    return sum(exposed["grpc_server_handled_total"].values())


async def test_the_supervisor_serves_the_sum_of_its_workers_metrics(
    started: list[Serve],
    tmp_path: Path,
    fleet_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    temporary = tmp_path / "tmp"  # where the supervisor makes its metrics directory
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    server, metrics_port = serve_with_metrics(started, tmp_path, fleet_url)
    first, second = await workers_of(server)  # none failed to bind the metrics port
    calls = Calls()

    async with grpc.aio.insecure_channel(server.address) as channel:
        metadata = await server_key(channel)
        calls.made += 1
        held = await register_on_new_connections(server, metadata, calls, [first, second])
        assert all(held), held  # both workers answered
        sent = await publish_and_settle(channel, metadata, calls)
        assert sent == CONNECTIONS

        exposed = await scrape(metrics_port)
        assert handled(exposed) == calls.made
        assert exposed["grpc_server_handled_total"][REGISTER] == CONNECTIONS
        assert exposed["pushhub_notifications_total"][SENT] == sent
        assert exposed["pushhub_messages_total"][labels(state="published")] == 1
        assert exposed["pushhub_runs_in_flight"][labels()] == 0

    # A worker killed: its counts stay, the endpoint answers, its replacement adds.
    os.kill(first, signal.SIGKILL)
    await server.logged("serves again")
    replacement = next(pid for pid in children(server.process.pid) if pid != second)
    assert alive(second)
    after_kill = await scrape(metrics_port)
    assert handled(after_kill) == calls.made
    assert after_kill["pushhub_notifications_total"][SENT] == sent

    async with grpc.aio.insecure_channel(server.address) as channel:
        held = await register_on_new_connections(server, metadata, calls, [replacement, second])
        assert held[0] > 0, held  # the replacement answered some of them
        sent += await publish_and_settle(channel, metadata, calls)
    assert sent == CONNECTIONS + 2 * CONNECTIONS  # the second broadcast reached all 40
    exposed = await scrape(metrics_port)
    assert handled(exposed) == calls.made
    assert exposed["grpc_server_handled_total"][REGISTER] == 2 * CONNECTIONS
    assert exposed["pushhub_notifications_total"][SENT] == sent
    assert exposed["pushhub_messages_total"][labels(state="published")] == 2
    assert exposed["pushhub_runs_in_flight"][labels()] == 0

    server.process.send_signal(signal.SIGTERM)
    assert await server.exit_code() == 0
    assert list(metrics_directories(temporary).iterdir()) == []  # its directory is gone


def metrics_directories(temporary: Path) -> Path:
    """Where supervisors keep their metrics directories (docs/observability.md)."""
    return temporary / f"pushhub-metrics-{os.getuid()}"


def directory_of(server: Serve, temporary: Path) -> Path:
    [directory] = metrics_directories(temporary).glob(f"{server.process.pid}-*")
    return directory


async def test_the_next_start_removes_what_a_killed_supervisor_left(
    started: list[Serve],
    tmp_path: Path,
    fleet_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A supervisor killed by SIGKILL cannot remove its metrics directory: the next
    start does, and removes nothing a running supervisor (or anyone else) uses."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    killed, _ = serve_with_metrics(started, tmp_path, fleet_url)
    running, running_port = serve_with_metrics(started, tmp_path, fleet_url)
    killed_workers = await workers_of(killed)
    await workers_of(running)
    left, kept = directory_of(killed, temporary), directory_of(running, temporary)
    parent = metrics_directories(temporary)
    reused = parent / f"{os.getpid()}-1"  # a live pid that started at another time
    reused.mkdir()
    foreign = parent / "notes"  # not a name supervisors give
    foreign.mkdir()

    killed.process.kill()
    assert await killed.exit_code() == -signal.SIGKILL
    await gone(killed_workers, killed)
    assert left.is_dir()  # nobody could remove it yet

    following, _ = serve_with_metrics(started, tmp_path, fleet_url)
    await workers_of(following)
    assert not left.exists() and not reused.exists()
    assert kept.is_dir() and foreign.is_dir() and directory_of(following, temporary).is_dir()
    await scrape(running_port)  # its endpoint still serves what its worker records

    for server in (running, following):
        server.process.send_signal(signal.SIGTERM)
        assert await server.exit_code() == 0
    assert list(parent.iterdir()) == [foreign]


async def test_a_killed_workers_run_leaves_the_runs_in_flight(
    started: list[Serve],
    tmp_path: Path,
    fleet_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pushhub_runs_in_flight sums live workers only: a worker killed mid-run
    cannot take its share back itself, the supervisor drops it."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    server, metrics_port = serve_with_metrics(started, tmp_path, fleet_url)
    workers = await workers_of(server)
    engine = create_async_engine(fleet_url, poolclass=sa.NullPool)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel, engine.connect() as lock:
            metadata = await server_key(channel)
            await registration_pb2_grpc.DeviceRegistrationServiceStub(channel).RegisterDevice(
                registration_pb2.RegisterDeviceRequest(
                    platform=common_pb2.PLATFORM_APNS, device_token=new_token()
                ),
                metadata=metadata,
            )
            # The run starts, then waits to record its delivery in the simulator's inbox.
            await lock.execute(sa.text("LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE"))
            await publish_pb2_grpc.PublishServiceStub(channel).Publish(
                publish_pb2.PublishRequest(broadcast=True, message="held"), metadata=metadata
            )
            await in_flight(metrics_port, 1, server)
            # Kill the workers in turn until the run's holder is gone (its lease keeps
            # the run from the others meanwhile).
            for killed, worker in enumerate(workers, start=1):
                os.kill(worker, signal.SIGKILL)
                await eventually(lambda n=killed: restarts(server) == n, server)
                if (await scrape(metrics_port))["pushhub_runs_in_flight"][labels()] == 0:
                    break
            else:
                pytest.fail("pushhub_runs_in_flight kept a killed worker's run")
            await lock.rollback()
    finally:
        await engine.dispose()


def restarts(server: Serve) -> int:
    return server.output().count("serves again")


async def in_flight(metrics_port: int, runs: int, server: Serve) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROCESS_TIMEOUT
    while (await scrape(metrics_port)).get("pushhub_runs_in_flight", {}).get(labels()) != runs:
        assert loop.time() < deadline, server.output()
        await asyncio.sleep(0.1)


async def test_an_operators_multiprocess_directory_is_used_and_kept(
    started: list[Serve],
    tmp_path: Path,
    fleet_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    server, metrics_port = serve_with_metrics(started, tmp_path, fleet_url)
    await workers_of(server)
    async with grpc.aio.insecure_channel(server.address) as channel:
        await server_key(channel)
    exposed = await scrape(metrics_port)
    assert handled(exposed) == 1
    server.process.send_signal(signal.SIGTERM)
    assert await server.exit_code() == 0
    assert any(directory.iterdir())  # the operator's files, left for the operator


async def test_a_multiprocess_directory_that_is_not_one_stops_the_start(
    started: list[Serve],
    tmp_path: Path,
    fleet_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(missing))
    server = serve(
        started,
        tmp_path,
        fleet_url,
        "--workers",
        str(WORKERS),
        "--metrics-listen",
        f"127.0.0.1:{free_port()}",
    )
    assert await server.exit_code() == 1
    said = f"error: PROMETHEUS_MULTIPROC_DIR {str(missing)!r} is not a directory\n"
    assert server.output() == said
