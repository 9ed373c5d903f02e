"""Unary RegisterDevice on PostgreSQL with `serve --workers 1` and `--workers 2`
(issue 13 §4): figures, not assertions.

The same run measures, in turn and round after round, with the same load:

- the bare grpc.aio echo server (benchmarks/echo_server.py), one process, then
  two processes sharing the port (grpc's default SO_REUSEPORT): the ceiling of
  any gRPC service on this machine, at one and at two processes;
- `pushhub serve --workers 1` and `--workers 2`, each on a new database.

The load comes from --clients processes of their own (not the servers'), each
with --channels connections, so that the kernel spreads connections over the
workers, and CONCURRENCY calls in flight per process. Every run warms up for a
second before it is measured.

    .venv/bin/python -m benchmarks.fleet_rpc [--seconds 5] [--rounds 3] [--clients 2]
        [--synchronous-commit off]

Each RegisterDevice commits once; with synchronous_commit on, that commit waits
for a WAL flush, and the disk's flush rate can bound the figure before any CPU
does (pg_test_fsync tells it). `off` measures what the workers' CPU gives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc

from benchmarks.common import (
    POSTGRES_ADMIN_URL,
    create_app,
    free_port,
    fresh_postgres_url,
    percentile,
    server_process,
)
from benchmarks.echo_server import METHOD as ECHO_METHOD
from benchmarks.registration import REGISTER, registration

DATABASE = "pushhub_bench_fleet_rpc"
CONCURRENCY = 16
CORES = os.cpu_count() or 1
CHANNELS = 4
WARM_UP_SECONDS = 1.0
# Device tokens of each load process start here times its number: no two collide.
TOKEN_SPACE = 100_000_000


# ------------------------------------------------------------- load process ----


async def load(
    target: str, method: str, key: str, seconds: float, channels: int, offset: int
) -> dict[str, float]:
    """Calls method for WARM_UP_SECONDS, then for seconds: calls and latencies of the latter."""
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    # A subchannel pool per channel: each its own connection, not one shared.
    opened = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(channels)
    ]
    calls = [channel.unary_unary(method) for channel in opened]
    counter = iter(range(offset, offset + TOKEN_SPACE))
    latencies: list[float] = []
    start = time.perf_counter() + WARM_UP_SECONDS
    end = start + seconds

    async def worker(call: grpc.aio.UnaryUnaryMultiCallable) -> None:
        while (now := time.perf_counter()) < end:
            await call(registration(next(counter)).SerializeToString(), metadata=metadata)
            if now >= start:
                latencies.append(time.perf_counter() - now)

    await asyncio.gather(*(worker(calls[n % channels]) for n in range(CONCURRENCY)))
    await asyncio.gather(*(channel.close() for channel in opened))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "calls": len(latencies),
        "all_calls": next(counter) - offset,  # with the warm-up's
        "cpu": usage.ru_utime + usage.ru_stime,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def load_main(argv: list[str]) -> None:
    target, method, key, seconds, channels, offset = argv
    figures = asyncio.run(load(target, method, key, float(seconds), int(channels), int(offset)))
    print(json.dumps(figures))


# ------------------------------------------------------------------ driver ----


def measure(
    target: str, method: str, key: str, seconds: float, clients: int, cpu: CpuMeter | None = None
) -> dict[str, float]:
    """All load processes at once; their calls per second summed, worst p50/p99; with
    cpu, the CPU milliseconds per call of the servers, PostgreSQL and the load."""
    command = [sys.executable, "-m", "benchmarks.fleet_rpc", "--load", target, method, key]
    before = cpu.snapshot() if cpu else {}
    processes = [
        subprocess.Popen(
            [*command, str(seconds), str(CHANNELS), str(n * TOKEN_SPACE)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for n in range(clients)
    ]
    results = [json.loads(process.communicate()[0]) for process in processes]
    figures = {
        "rate": sum(result["calls"] for result in results) / seconds,
        "p50_ms": max(result["p50_ms"] for result in results),
        "p99_ms": max(result["p99_ms"] for result in results),
    }
    if cpu:
        calls = sum(result["all_calls"] for result in results)
        after = cpu.snapshot()
        figures["server_ms"] = (after["server"] - before["server"]) * 1000 / calls
        figures["postgres_ms"] = (after["postgres"] - before["postgres"]) * 1000 / calls
        figures["load_ms"] = sum(result["cpu"] for result in results) * 1000 / calls
    return figures


class CpuMeter:
    """CPU seconds used so far by a server process tree and by PostgreSQL's backends
    of one database (/proc; the benchmark runs where PostgreSQL does)."""

    def __init__(self, server_pid: int, database: str) -> None:
        self._server = server_pid
        self._database = database

    def snapshot(self) -> dict[str, float]:
        return {
            "server": sum(map(cpu_seconds, process_tree(self._server))),
            "postgres": sum(map(cpu_seconds, asyncio.run(backends(self._database)))),
        }


def process_tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [pid, *(grandchild for child in children for grandchild in process_tree(int(child)))]


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def set_synchronous_commit(database: str, value: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = {value}')
    finally:
        await conn.close()


async def backends(database: str) -> list[int]:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


@contextmanager
def echo_servers(count: int) -> Iterator[str]:
    port = free_port()
    with ExitStack() as stack:
        for _ in range(count):  # grpc sets SO_REUSEPORT by default: they share the port
            command = [sys.executable, "-m", "benchmarks.echo_server", str(port)]
            stack.enter_context(server_process(command, port, new_session=True))
        yield f"127.0.0.1:{port}"


@contextmanager
def pushhub_workers(workers: int, synchronous_commit: str) -> Iterator[tuple[str, str, CpuMeter]]:
    """`serve --workers N` on a new database of its own: its address, a server key, its meter."""
    database = f"{DATABASE}_{workers}"
    database_url = asyncio.run(fresh_postgres_url(database))
    asyncio.run(set_synchronous_commit(database, synchronous_commit))
    key = create_app(database_url)["server_key"]
    port = free_port()
    command = [sys.executable, "-m", "pushhub_server", "serve", "--listen", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers)]
    env = {"PUSHHUB_DATABASE_URL": database_url, "PUSHHUB_LOG_LEVEL": "WARNING"}
    with server_process(command, port, env, stop_timeout=60, new_session=True) as process:
        yield f"127.0.0.1:{port}", key, CpuMeter(process.pid, database)


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {field: statistics.median(sample[field] for sample in samples) for field in samples[0]}


def line(name: str, figures: dict[str, float]) -> str:
    return (
        f"{name:28}: {figures['rate']:8.0f} RPC/s, "
        f"p50 {figures['p50_ms']:6.2f} ms, p99 {figures['p99_ms']:6.2f} ms"
    )


def main() -> None:
    if sys.argv[1:2] == ["--load"]:
        load_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="each server once per round")
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument(
        "--synchronous-commit",
        choices=["on", "off"],
        default="on",
        help="of the benchmark's databases: off takes the WAL flush out of each commit",
    )
    args = parser.parse_args()
    samples: dict[str, list[dict[str, float]]] = {}
    with ExitStack() as stack:
        # All four servers up at once, measured in turn, round after round: a change
        # in what else runs on the machine touches each of them alike.
        targets = {
            f"echo x{count}": (stack.enter_context(echo_servers(count)), ECHO_METHOD, "", None)
            for count in (1, 2)
        }
        for workers in (1, 2):
            target, key, cpu = stack.enter_context(
                pushhub_workers(workers, args.synchronous_commit)
            )
            targets[f"workers {workers}"] = (target, REGISTER, key, cpu)
        for _ in range(args.rounds):
            for name, (target, method, key, cpu) in targets.items():
                figures = measure(target, method, key, args.seconds, args.clients, cpu)
                samples.setdefault(name, []).append(figures)
    report(args, samples)


def report(args: argparse.Namespace, samples: dict[str, list[dict[str, float]]]) -> None:
    figures = {name: medians(rounds) for name, rounds in samples.items()}
    print(
        f"{args.clients} load processes x {CONCURRENCY} calls in flight; medians of "
        f"{args.rounds} rounds of {args.seconds:.0f} s; "
        f"synchronous_commit {args.synchronous_commit}"
    )
    print(line("echo baseline, 1 process", figures["echo x1"]))
    print(line("echo baseline, 2 processes", figures["echo x2"]))
    print(line("RegisterDevice --workers 1", figures["workers 1"]))
    print(line("RegisterDevice --workers 2", figures["workers 2"]))
    ratio = lambda a, b: figures[a]["rate"] / figures[b]["rate"]  # noqa: E731
    each = lambda a, b: " ".join(  # noqa: E731
        f"{x['rate'] / y['rate']:.2f}" for x, y in zip(samples[a], samples[b], strict=True)
    )
    print(
        f"echo 2 processes / 1      : {ratio('echo x2', 'echo x1'):5.2f}x "
        f"(rounds: {each('echo x2', 'echo x1')})"
    )
    print(
        f"--workers 2 / --workers 1 : {ratio('workers 2', 'workers 1'):5.2f}x "
        f"(rounds: {each('workers 2', 'workers 1')}; target >= 1.6x)"
    )
    print(f"--workers 1 / echo x1     : {ratio('workers 1', 'echo x1'):5.0%}")
    print(f"--workers 2 / echo x2     : {ratio('workers 2', 'echo x2'):5.0%}")
    print("CPU ms per RegisterDevice (servers / PostgreSQL backends / load processes):")
    for workers in (1, 2):
        one = figures[f"workers {workers}"]
        print(
            f"  --workers {workers}: {one['server_ms']:5.2f} / {one['postgres_ms']:5.2f} / "
            f"{one['load_ms']:5.2f}"
        )
    # Were the machine ours alone: one worker reaches at most 1 core / its own CPU per
    # call, and all processes together at most CORES / the total CPU per call.
    one = figures["workers 1"]
    total = one["server_ms"] + one["postgres_ms"] + one["load_ms"]
    single = min(1000 / one["server_ms"], CORES * 1000 / total)
    print(
        f"{CORES} idle cores would allow: --workers 1 <= {single:.0f}/s, any number of "
        f"workers <= {CORES * 1000 / total:.0f}/s, so --workers 2 / --workers 1 <= "
        f"{CORES * 1000 / total / single:.2f}x"
    )


if __name__ == "__main__":
    main()
