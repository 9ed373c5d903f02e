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
        [--synchronous-commit off] [--server-cpus 0.3]

On a bare machine with 2 cores, two echo processes serve no more than one (the
load processes and the cores bound them), so `--workers 2 / --workers 1` there
cannot show whether the workers scale. --server-cpus adds a scale model: each
server process (every echo process, and every process of `pushhub serve`) in a
cgroup v1 `cpu` group of its own, capped at that share of a core, as if each
ran on a small host of its own, while PostgreSQL and the load processes have
the rest of the machine. Every round then measures each server bare and capped,
in turn; the report gives both. Two capped workers doing twice the work of one
shows that they share no lock and contend for nothing but PostgreSQL.

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
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from functools import partial
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
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
BARE, CAPPED = "bare", "capped"


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
        server = after["server"] - before["server"]
        figures["server_ms"] = server * 1000 / calls
        # Cores the servers used while the load ran (warm-up included, like calls).
        figures["server_cores"] = server / (WARM_UP_SECONDS + seconds)
        figures["postgres_ms"] = (after["postgres"] - before["postgres"]) * 1000 / calls
        figures["load_ms"] = sum(result["cpu"] for result in results) * 1000 / calls
    return figures


class CpuMeter:
    """CPU seconds used so far by a server's processes and by PostgreSQL's backends
    of its database, if any (/proc; the benchmark runs where PostgreSQL does)."""

    def __init__(self, server_pids: Callable[[], list[int]], database: str | None) -> None:
        self._server_pids = server_pids
        self._database = database

    def snapshot(self) -> dict[str, float]:
        database = self._database
        return {
            "server": sum(map(cpu_seconds, self._server_pids())),
            "postgres": sum(map(cpu_seconds, asyncio.run(backends(database)))) if database else 0,
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


class CpuCaps:
    """A cgroup v1 `cpu` group per server process, capped at a share of a core.

    Capped, a process runs in its group; bare, in the root group, as without
    this class. The groups sit under one group of this run's; remove() moves
    any process left back to the root group and deletes them all.
    """

    PERIOD_US = 100_000
    # A group competes with the machine's other tasks by its weight (1024, one
    # task's, by default). Eight tasks' weight: the cap, not the other work on
    # the machine, sets what a server process gets.
    SHARES = 8 * 1024

    def __init__(self, share: float) -> None:
        self._quota = str(round(share * self.PERIOD_US))
        self._top = CGROUP_CPU / f"pushhub_fleet_rpc_{os.getpid()}"
        self._top.mkdir()
        self._groups: dict[int, Path] = {}

    @staticmethod
    def unavailable() -> str | None:
        """Why no group can be made here, or None."""
        if not (CGROUP_CPU / "cpu.cfs_quota_us").exists():
            return f"no cgroup v1 cpu controller at {CGROUP_CPU}"
        if not os.access(CGROUP_CPU, os.W_OK):
            return f"{CGROUP_CPU} is not writable"
        return None

    def apply(self, pids: list[int], capped: bool) -> None:
        """Each of pids in its capped group, or back in the root group."""
        for pid in pids:
            group = self._group(pid) if capped else CGROUP_CPU
            with suppress(ProcessLookupError):  # exited meanwhile
                (group / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        for group in [*self._groups.values(), self._top]:
            for pid in (group / "cgroup.procs").read_text().split():
                with suppress(ProcessLookupError):
                    (CGROUP_CPU / "cgroup.procs").write_text(pid)
            group.rmdir()

    def _group(self, pid: int) -> Path:
        group = self._groups.get(pid)
        if group is None:
            group = self._groups[pid] = self._top / str(pid)
            group.mkdir()
            (group / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(self._quota)
            (group / "cpu.shares").write_text(str(self.SHARES))
        return group


@dataclass
class Target:
    """A server under load: where, which method, with which key; its processes."""

    address: str
    method: str
    key: str
    pids: Callable[[], list[int]]
    cpu: CpuMeter
    # Processes that serve calls (a supervisor does not).
    serving: int


@contextmanager
def echo_servers(count: int) -> Iterator[Target]:
    port = free_port()
    with ExitStack() as stack:
        pids = []
        for _ in range(count):  # grpc sets SO_REUSEPORT by default: they share the port
            command = [sys.executable, "-m", "benchmarks.echo_server", str(port)]
            pids.append(stack.enter_context(server_process(command, port, new_session=True)).pid)
        yield Target(
            f"127.0.0.1:{port}", ECHO_METHOD, "", lambda: pids, CpuMeter(lambda: pids, None), count
        )


@contextmanager
def pushhub_workers(workers: int, synchronous_commit: str) -> Iterator[Target]:
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
        # The supervisor of --workers 2 and its workers: each process is capped alone.
        tree = partial(process_tree, process.pid)
        yield Target(f"127.0.0.1:{port}", REGISTER, key, tree, CpuMeter(tree, database), workers)


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
    parser.add_argument(
        "--server-cpus",
        type=float,
        help="also measure each server process capped at this share of a core (cgroup v1)",
    )
    args = parser.parse_args()
    # Stopped by a signal, still stop the servers and remove the groups (ExitStack).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    modes = [BARE]
    if args.server_cpus is not None:
        if (reason := CpuCaps.unavailable()) is None:
            modes.append(CAPPED)
        else:
            print(f"no scale model: {reason}; bare figures only")
    samples: dict[str, dict[str, list[dict[str, float]]]] = {mode: {} for mode in modes}
    with ExitStack() as stack:
        # Entered first, so removed last: after the servers have stopped.
        caps = CpuCaps(args.server_cpus) if CAPPED in modes else None
        if caps is not None:
            stack.callback(caps.remove)
        # All four servers up at once, measured in turn, round after round: a change
        # in what else runs on the machine touches each of them alike.
        targets = {f"echo x{count}": stack.enter_context(echo_servers(count)) for count in (1, 2)}
        for workers in (1, 2):
            targets[f"workers {workers}"] = stack.enter_context(
                pushhub_workers(workers, args.synchronous_commit)
            )
        for _ in range(args.rounds):
            for mode in modes:
                for name, target in targets.items():
                    if caps is not None:
                        caps.apply(target.pids(), capped=mode == CAPPED)
                    figures = measure(
                        target.address,
                        target.method,
                        target.key,
                        args.seconds,
                        args.clients,
                        target.cpu,
                    )
                    samples[mode].setdefault(name, []).append(figures)
    print(
        f"{args.clients} load processes x {CONCURRENCY} calls in flight; medians of "
        f"{args.rounds} rounds of {args.seconds:.0f} s; "
        f"synchronous_commit {args.synchronous_commit}"
    )
    for mode in modes:
        if mode == CAPPED:
            print(
                f"\nScale model: each server process capped at {args.server_cpus:g} of a "
                "core (its own cgroup); PostgreSQL and the load share the rest"
            )
        else:
            print(f"\nBare: all processes share the machine's {CORES} cores")
        serving = {name: target.serving for name, target in targets.items()}
        report(samples[mode], serving, args.server_cpus if mode == CAPPED else None)


def report(
    samples: dict[str, list[dict[str, float]]], serving: dict[str, int], server_cpus: float | None
) -> None:
    figures = {name: medians(rounds) for name, rounds in samples.items()}
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
    one = figures["workers 1"]
    if server_cpus is not None:
        capped_report(figures, serving, server_cpus)
        return
    # Were the machine ours alone: one worker reaches at most 1 core / its own CPU per
    # call, and all processes together at most CORES / the total CPU per call.
    total = one["server_ms"] + one["postgres_ms"] + one["load_ms"]
    single = min(1000 / one["server_ms"], CORES * 1000 / total)
    print(
        f"{CORES} idle cores would allow: --workers 1 <= {single:.0f}/s, any number of "
        f"workers <= {CORES * 1000 / total:.0f}/s, so --workers 2 / --workers 1 <= "
        f"{CORES * 1000 / total / single:.2f}x"
    )


def capped_report(
    figures: dict[str, dict[str, float]], serving: dict[str, int], server_cpus: float
) -> None:
    """How much of their caps the servers used, and what the caps allow.

    Servers well below their caps were not what bounded the rate: PostgreSQL,
    the load processes or the machine's other work was.
    """
    print(f"Servers' CPU under load, cores (share of their caps, {server_cpus:g} per process):")
    for name, one in figures.items():
        cap = serving[name] * server_cpus
        print(f"  {name:10}: {one['server_cores']:5.2f} ({one['server_cores'] / cap:4.0%})")
    # A capped worker serves at most its share / its CPU per call.
    bounds = {
        workers: workers * server_cpus * 1000 / figures[f"workers {workers}"]["server_ms"]
        for workers in (1, 2)
    }
    print(
        f"The caps allow, at each one's CPU per call: --workers 1 <= {bounds[1]:.0f}/s, "
        f"--workers 2 <= {bounds[2]:.0f}/s ({bounds[2] / bounds[1]:.2f}x)"
    )


if __name__ == "__main__":
    main()
