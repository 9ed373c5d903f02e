"""Shared plumbing for the benchmark scripts: server subprocesses and statistics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sqlite_url() -> str:
    path = Path(tempfile.mkdtemp(prefix="pushhub-bench-")) / "bench.db"
    return f"sqlite+aiosqlite:///{path}"


async def fresh_postgres_url(name: str = "pushhub_bench") -> str:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def pushhub(*args: str, database_url: str) -> str:
    env = {**os.environ, "PUSHHUB_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "pushhub_server", *args]
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout


def create_app(database_url: str, name: str = "bench") -> dict[str, str]:
    return json.loads(pushhub("apps", "create", name, "--json", database_url=database_url))


@contextmanager
def server_process(
    command: list[str],
    port: int,
    env: dict[str, str] | None = None,
    stop_timeout: float = 20.0,
    new_session: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """new_session: the process in a session of its own; where the kernel shares CPU
    per session (autogroup), it then competes as an independent service does."""
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=new_session,
    )
    try:
        asyncio.run(wait_ready(port))
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def pushhub_server(
    database_url: str, port: int, settings: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`pushhub serve` on port; settings add PUSHHUB_* variables."""
    command = [sys.executable, "-m", "pushhub_server", "serve", "--listen", f"127.0.0.1:{port}"]
    env = {"PUSHHUB_DATABASE_URL": database_url, "PUSHHUB_LOG_LEVEL": "WARNING", **(settings or {})}
    with server_process(command, port, env) as process:
        yield process


async def wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        while True:
            try:
                await asyncio.wait_for(channel.channel_ready(), 1.0)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB, from /proc/PID/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, amount, _unit = line.split()
            values[name[:-1]] = int(amount)
    return values


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def describe_latencies(samples_s: list[float]) -> str:
    ms = [sample * 1000 for sample in samples_s]
    return (
        f"p50 {statistics.median(ms):.2f} ms, p99 {percentile(ms, 0.99):.2f} ms ({len(ms)} calls)"
    )


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process (or one of its threads) from /proc, in seconds."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = Path(path).read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
