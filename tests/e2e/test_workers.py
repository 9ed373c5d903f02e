"""`pushhub serve --workers N` as an operator runs it (issue 13 §2, docs/processes.md).

- N workers share the port: the kernel hands connections to each of them.
- The port is still PushHub's alone: a foreign listener makes the supervisor
  fail at once, and while it runs, another `pushhub serve` (with workers or
  not) and a plain bind are refused.
- SIGTERM drains the workers and the supervisor exits 0; a killed worker is
  reported and restarted; workers die with a killed supervisor.
- On SQLite, --workers 2 is refused in one line (test_serve_process.py).

Workers need PostgreSQL: these run on the PostgreSQL pass, each on a database
of its own (fleet_url, tests/e2e/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.test_serve_process import GRACE, PROCESS_TIMEOUT, Serve, import_in_flight

pytestmark = pytest.mark.slow

WORKERS = 2


@pytest.fixture
def started() -> Iterator[list[Serve]]:
    servers: list[Serve] = []
    yield servers
    kill_with_workers(servers)


def kill_with_workers(servers: list[Serve]) -> None:
    for server in servers:
        for pid in [server.process.pid, *children(server.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.process.wait(10)


def serve(started: list[Serve], workdir: Path, url: str, *args: str) -> Serve:
    server = Serve(workdir, "--database-url", url, *args)  # the last --database-url wins
    started.append(server)
    return server


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


async def workers_of(server: Serve, count: int = WORKERS) -> list[int]:
    """The worker pids once all `count` serve (the supervisor logs it then)."""
    await server.logged(f"{count} workers on {server.address}")
    return children(server.process.pid)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: its parent has not reaped it yet.
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"


async def eventually(condition: Callable[[], bool], server: Serve) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROCESS_TIMEOUT
    while not condition():
        assert loop.time() < deadline, server.output()
        await asyncio.sleep(0.05)


async def gone(pids: list[int], server: Serve) -> None:
    await eventually(lambda: not any(alive(pid) for pid in pids), server)


def established_on(port: int, pid: int) -> int:
    """Connections to `port` whose server end the process holds (/proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


async def check_health(address: str) -> None:
    # A channel of its own, not shared with the test's other channels: a new connection.
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def in_use(address: str) -> str:
    return (
        f"error: cannot listen on {address}: the address is already in use "
        "(another pushhub serve?)\n"
    )


# ------------------------------------------------------------------ sharing ----


async def test_the_workers_share_the_port(
    started: list[Serve], tmp_path: Path, fleet_url: str
) -> None:
    server = serve(started, tmp_path, fleet_url, "--workers", str(WORKERS))
    workers = await workers_of(server)
    assert len(workers) == WORKERS
    channels = [
        grpc.aio.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(20)
    ]
    try:
        for channel in channels:  # 20 connections: all on one worker has odds of 2^-19
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        held = [established_on(server.port, worker) for worker in workers]
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
    assert sum(held) == 20 and all(held), held


# -------------------------------------------------------------- port safety ----


async def test_a_taken_port_fails_the_supervisor_at_once(
    started: list[Serve], tmp_path: Path, fleet_url: str
) -> None:
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        address = f"127.0.0.1:{foreign.getsockname()[1]}"
        server = serve(started, tmp_path, fleet_url, "--workers", "2", "--listen", address)
        assert await server.exit_code() == 1
    assert server.output() == in_use(address)


async def test_the_port_stays_pushhubs_while_the_workers_run(
    started: list[Serve], tmp_path: Path, fleet_url: str
) -> None:
    server = serve(started, tmp_path, fleet_url, "--workers", str(WORKERS))
    workers = await workers_of(server)
    single = serve(started, tmp_path, fleet_url, "--listen", server.address)
    fleet = serve(started, tmp_path, fleet_url, "--workers", "2", "--listen", server.address)
    assert await single.exit_code() == await fleet.exit_code() == 1
    assert single.output() == fleet.output() == in_use(server.address)
    with socket.socket() as foreign:  # what most servers do: SO_REUSEADDR, no SO_REUSEPORT
        foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError) as refused:
            foreign.bind(("127.0.0.1", server.port))
        assert refused.value.errno == errno.EADDRINUSE
    assert children(server.process.pid) == workers
    await check_health(server.address)


# ------------------------------------------------------------- life cycles ----


async def test_sigterm_drains_every_worker_and_the_supervisor_exits_0(
    started: list[Serve], tmp_path: Path, fleet_url: str
) -> None:
    server = serve(started, tmp_path, fleet_url, "--workers", str(WORKERS))
    workers = await workers_of(server)
    server.process.send_signal(signal.SIGTERM)
    assert await server.exit_code() == 0
    await gone(workers, server)
    output = server.output()
    assert f"stopping {WORKERS} workers" in output
    assert output.count("stopping: in-flight RPCs get") == WORKERS  # each drained


async def test_a_second_sigint_ends_the_drain_at_once(
    started: list[Serve], tmp_path: Path, fleet_url: str
) -> None:
    server = serve(started, tmp_path, fleet_url, "--workers", str(WORKERS))
    workers = await workers_of(server)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stream = await import_in_flight(channel)  # on one of the workers
        server.process.send_signal(signal.SIGINT)
        await server.logged(f"stopping {WORKERS} workers")
        await server.logged(f"stopping: in-flight RPCs get {GRACE:.1f} s")
        assert server.process.poll() is None  # one worker drains: the stream is still open
        server.process.send_signal(signal.SIGINT)
        assert await server.exit_code() == 128 + signal.SIGINT
        stream.cancel()
    await gone(workers, server)
    assert "SIGINT again: exiting now, without waiting for in-flight RPCs" in server.output()


async def test_a_killed_worker_is_reported_and_restarted(
    started: list[Serve], tmp_path: Path, fleet_url: str
) -> None:
    server = serve(started, tmp_path, fleet_url, "--workers", str(WORKERS))
    first, second = await workers_of(server)
    os.kill(first, signal.SIGKILL)
    await server.logged(f"(pid {first}) was killed by SIGKILL")
    await server.logged("restarting worker")
    await server.logged("serves again")
    replacement = next(pid for pid in children(server.process.pid) if pid != second)
    assert replacement != first and alive(second)
    await check_health(server.address)


async def test_workers_die_with_a_killed_supervisor(
    started: list[Serve], tmp_path: Path, fleet_url: str
) -> None:
    server = serve(started, tmp_path, fleet_url, "--workers", str(WORKERS))
    workers = await workers_of(server)
    server.process.kill()
    await gone(workers, server)
