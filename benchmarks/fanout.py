"""Fan-out benchmark: figures, not assertions.

One broadcast to --count registrations through the whole pipeline (scheduler,
keyset audience pages, payload rendering, per-chunk checkpoint) to the
simulator provider with recording off (PUSHHUB_SIMULATOR_RECORDS=0), so the
provider accepts and discards. It prints:

- recipients/s from the Publish call until WatchMessageStatus reports PUBLISHED;
- the server process's peak RSS (VmHWM from /proc/PID/status) and its RSS
  just before the publish;
- RegisterDevice p50/p99 latency from a concurrent client registering new
  devices at --register-rate RPC/s while the fan-out runs.

Loading: the registrations are written straight into the database before the
server starts (SQLite: sqlite3.executemany; PostgreSQL: asyncpg COPY), in the
same row shape the store writes (UUIDv7-style ids, token digest, fingerprint),
not through RegisterDevices, which would take minutes at a million rows. Half
APNs, half FCM, 160-character tokens, a small metadata map each, no channels,
tags, templates or selectors. `--load store` goes through
SqlRegistrationRepository.upsert_many in-process instead (slower, the store's
own code path).

Running it (not part of `make bench`: a million rows take several minutes to
load and send on both databases):

    .venv/bin/python -m benchmarks.fanout                      # 1,000,000 on SQLite
    .venv/bin/python -m benchmarks.fanout --count 100000 --repeat 3
    .venv/bin/python -m benchmarks.fanout --database postgres  # database pushhub_fanout
    .venv/bin/python -m benchmarks.fanout --profile /tmp/fanout.raw   # py-spy, raw format

--repeat publishes further broadcasts to the same server and registrations,
one after the other, and prints the median too.

--metrics compare measures what metrics cost (docs/observability.md): the same
broadcast with metrics off and on (PUSHHUB_METRICS_LISTEN), alternating, --repeat
times each, one server process per broadcast (never two at once on the
database), and prints both medians and their ratio:

    .venv/bin/python -m benchmarks.fanout --count 200000 --repeat 5 --metrics compare

PostgreSQL is reached at postgres@127.0.0.1:5432; the benchmark drops and
recreates its own database (--pg-database, default pushhub_fanout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from benchmarks.common import (
    cpu_seconds,
    create_app,
    describe_latencies,
    free_port,
    fresh_postgres_url,
    memory_kb,
    percentile,
    server_process,
    sqlite_url,
)
from pushhub.v1 import common_pb2, publish_pb2, registration_pb2, status_pb2
from pushhub_server.core.clock import to_micros
from pushhub_server.core.ids import new_ids
from pushhub_server.core.models import Platform, RegistrationInput
from pushhub_server.store.records import CONTENT_COLUMNS, content_values

PUBLISH = "/pushhub.v1.PublishService/Publish"
WATCH = "/pushhub.v1.StatusService/WatchMessageStatus"
REGISTER = "/pushhub.v1.DeviceRegistrationService/RegisterDevice"
LOAD_BATCH = 10_000

TARGET_RATE = 50_000
TARGET_RSS_MB = 300
TARGET_P99_MS = 50


# ------------------------------------------------------------------ loading


def _inputs(start: int, stop: int) -> list[RegistrationInput]:
    return [
        RegistrationInput(
            platform=Platform.APNS if index % 2 else Platform.FCM,
            device_token=f"{index:016x}" * 10,
            channels=(),
            tags=(),
            user_id=f"user-{index}",
            expires_at=None,
            metadata={"name": f"Device {index}", "locale": "en"},
            templates={},
            selector=None,
        )
        for index in range(start, stop)
    ]


def _rows(app_id: str, start: int, stop: int, now: int) -> list[tuple]:
    """Registration rows exactly as the store writes them (see store/upsert.py)."""
    items = _inputs(start, stop)
    return [
        (reg_id, app_id, *content_values(item), item.token_hash) + (item.fingerprint, now, now)
        for reg_id, item in zip(new_ids(len(items)), items, strict=True)
    ]


# The store's own column order (records.CONTENT_COLUMNS), so a new column needs no edit here.
_COLUMN_NAMES = (
    "id",
    "app_id",
    *CONTENT_COLUMNS,
    "token_hash",
    "fingerprint",
    "created_at",
    "updated_at",
)
_COLUMNS = ", ".join(_COLUMN_NAMES)


def load_sqlite(url: str, app_id: str, count: int) -> None:
    path = url.split("///", 1)[1]
    now = to_micros(datetime.now(UTC))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    insert = (
        f"INSERT INTO registrations ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMN_NAMES))})"
    )
    for start in range(0, count, LOAD_BATCH):
        conn.executemany(insert, _rows(app_id, start, min(start + LOAD_BATCH, count), now))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


async def load_postgres(url: str, app_id: str, count: int) -> None:
    import asyncpg

    now = to_micros(datetime.now(UTC))
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        columns = list(_COLUMN_NAMES)
        for start in range(0, count, LOAD_BATCH):
            rows = _rows(app_id, start, min(start + LOAD_BATCH, count), now)
            await conn.copy_records_to_table("registrations", records=rows, columns=columns)
        await conn.execute("VACUUM ANALYZE registrations")
    finally:
        await conn.close()


async def load_store(url: str, app_id: str, count: int) -> None:
    from pushhub_server.store.database import Database
    from pushhub_server.store.registrations import SqlRegistrationRepository

    db = Database.from_url(url)
    try:
        repository = SqlRegistrationRepository(db)
        for start in range(0, count, 1000):
            items = _inputs(start, min(start + 1000, count))
            await repository.upsert_many(app_id, items, datetime.now(UTC))
    finally:
        await db.dispose()


def load(args: argparse.Namespace, url: str, app_id: str) -> str:
    started = time.perf_counter()
    if args.load == "store":
        asyncio.run(load_store(url, app_id, args.count))
        how = "SqlRegistrationRepository.upsert_many, in-process"
    elif args.database == "sqlite":
        load_sqlite(url, app_id, args.count)
        how = "raw sqlite3 executemany into registrations"
    else:
        asyncio.run(load_postgres(url, app_id, args.count))
        how = "asyncpg COPY into registrations"
    elapsed = time.perf_counter() - started
    return f"{args.count} registrations loaded in {elapsed:.1f} s ({how})"


# ------------------------------------------------------------------ measuring


async def register_while(
    channel: grpc.aio.Channel, auth: tuple, rate: float, done: asyncio.Event, first: int
) -> tuple[list[float], int]:
    """New registrations at `rate` RPC/s, each on its own schedule, until done."""
    call = channel.unary_unary(REGISTER)
    latencies: list[float] = []
    errors = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(index: int) -> None:
        nonlocal errors
        body = registration_pb2.RegisterDeviceRequest(
            platform=common_pb2.PLATFORM_FCM,
            device_token=f"concurrent-{index:012d}-" + "x" * 140,
            metadata={"name": f"Late {index}"},
        ).SerializeToString()
        started = time.perf_counter()
        try:
            await call(body, metadata=auth, timeout=10)
        except grpc.aio.AioRpcError:
            errors += 1
            return
        latencies.append(time.perf_counter() - started)

    index = first
    interval = 1.0 / rate
    next_at = time.perf_counter()
    while not done.is_set():
        task = asyncio.ensure_future(one(index))
        pending.add(task)
        task.add_done_callback(pending.discard)
        index += 1
        next_at += interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), max(0.0, next_at - time.perf_counter()))
    if pending:
        await asyncio.gather(*pending)
    return latencies, errors


async def rss_sampler(pid: int, done: asyncio.Event, peak: list[int]) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], memory_kb(pid)["VmRSS"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.05)


async def idle_latencies(target: str, server_key: str, rate: float, seconds: float) -> list[float]:
    """RegisterDevice latencies at the same rate with no fan-out running: the reference."""
    auth = (("authorization", f"Bearer {server_key}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        warm_up = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, warm_up.set)
        await register_while(channel, auth, rate, warm_up, 2 * 10**9)  # first calls compile
        done = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, done.set)
        latencies, _errors = await register_while(channel, auth, rate, done, 10**9)
    return latencies


async def one_broadcast(
    target: str, server_key: str, pid: int, rate: float, first_index: int
) -> dict[str, Any]:
    auth = (("authorization", f"Bearer {server_key}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        done = asyncio.Event()
        peak = [0]
        sampler = asyncio.ensure_future(rss_sampler(pid, done, peak))
        registering = asyncio.ensure_future(register_while(channel, auth, rate, done, first_index))
        await asyncio.sleep(0.5)  # the registration client is warm before the clock starts
        request = publish_pb2.PublishRequest(broadcast=True, message="Hello, everyone")
        started = time.perf_counter()
        raw = await channel.unary_unary(PUBLISH)(request.SerializeToString(), metadata=auth)
        message_id = publish_pb2.PublishResponse.FromString(raw).message_id
        watch = channel.unary_stream(WATCH)(
            status_pb2.WatchMessageStatusRequest(message_id=message_id).SerializeToString(),
            metadata=auth,
        )
        status = None
        async for item in watch:
            status = status_pb2.WatchMessageStatusResponse.FromString(item).status
        elapsed = time.perf_counter() - started
        done.set()
        latencies, errors = await registering
        await sampler
    assert status is not None
    return {
        "state": common_pb2.MessageState.Name(status.state),
        "targeted": status.targeted_count,
        "sent": status.sent_count,
        "failed": status.failed_count,
        "elapsed": elapsed,
        "rate": status.targeted_count / elapsed,
        "peak_rss_sampled_mb": peak[0] / 1024,
        "latencies": latencies,
        "register_errors": errors,
    }


def start_profiler(pid: int, output: str) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy), "record", "-p", str(pid), "--native", "-f", "raw", "-o", output]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(2)  # SIGINT: py-spy writes its output and exits
    profiler.wait(timeout=60)


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--load", choices=("sql", "store"), default="sql")
    parser.add_argument("--repeat", type=int, default=1, help="broadcasts, one after another")
    parser.add_argument("--register-rate", type=float, default=20.0, help="RegisterDevice RPC/s")
    parser.add_argument("--chunk-size", type=int, help="PUSHHUB_CHUNK_SIZE for the server")
    parser.add_argument("--pg-database", default="pushhub_fanout")
    parser.add_argument("--profile", help="py-spy raw output file (the first broadcast)")
    parser.add_argument(
        "--metrics",
        choices=("off", "on", "compare"),
        default="off",
        help="PUSHHUB_METRICS_LISTEN for the server; compare: off and on side by side",
    )
    args = parser.parse_args()

    if args.database == "sqlite":
        url = sqlite_url()
    else:
        url = asyncio.run(fresh_postgres_url(args.pg_database))
    keys = create_app(url)  # migrates the new database too
    print(load(args, url, keys["app_id"]), flush=True)

    if args.metrics == "compare":
        compare_metrics(args, url, keys)
        return
    port = free_port()
    command = [sys.executable, "-m", "pushhub_server", "serve", "--listen", f"127.0.0.1:{port}"]
    env = server_env(args, url, metrics=args.metrics == "on")
    results = []
    with server_process(command, port, env) as process:
        idle_rss = memory_kb(process.pid)["VmRSS"] / 1024
        idle = asyncio.run(
            idle_latencies(f"127.0.0.1:{port}", keys["server_key"], args.register_rate, 5.0)
        )
        print(f"RegisterDevice with no fan-out running: {describe_latencies(idle)}", flush=True)
        for number in range(args.repeat):
            profiler = (
                start_profiler(process.pid, args.profile) if args.profile and not number else None
            )
            cpu_before = cpu_seconds(process.pid)
            try:
                result = asyncio.run(
                    one_broadcast(
                        f"127.0.0.1:{port}",
                        keys["server_key"],
                        process.pid,
                        args.register_rate,
                        number * 1_000_000,
                    )
                )
            finally:
                if profiler is not None:
                    stop_profiler(profiler)
            result["peak_rss_mb"] = memory_kb(process.pid)["VmHWM"] / 1024
            # CPU per notification moves less than the rate when the machine is shared.
            used = cpu_seconds(process.pid) - cpu_before
            result["cpu_us"] = used * 1e6 / max(int(result["targeted"]), 1)
            results.append(result)
            report(number + 1, result)

    print()
    database = "SQLite" if args.database == "sqlite" else "PostgreSQL"
    rates = [float(r["rate"]) for r in results]
    peaks = [float(r["peak_rss_mb"]) for r in results]
    p99s = [percentile([s * 1000 for s in r["latencies"]], 0.99) for r in results]
    cpus = [float(r["cpu_us"]) for r in results]
    median = statistics.median
    print(f"fan-out to {args.count} registrations on {database}, {len(results)} broadcast(s):")
    print(
        f"  recipients/s, Publish -> PUBLISHED : {median(rates):9.0f} (median; "
        f"target >= {TARGET_RATE:,} on SQLite)"
    )
    print(f"  server CPU per recipient           : {median(cpus):9.2f} us (median)")
    print(
        f"  server peak RSS (VmHWM)            : {max(peaks):9.1f} MB (target <= "
        f"{TARGET_RSS_MB} MB; {idle_rss:.1f} MB before the first publish)"
    )
    print(
        f"  RegisterDevice p99 during fan-out  : {median(p99s):9.2f} ms (median; "
        f"target <= {TARGET_P99_MS} ms)"
    )
    figures = {
        "rates": [round(r) for r in rates],
        "peak_rss_mb": [round(p, 1) for p in peaks],
        "p99_ms": [round(p, 2) for p in p99s],
        "cpu_us": [round(c, 2) for c in cpus],
    }
    print(json.dumps(figures))


def server_env(args: argparse.Namespace, url: str, *, metrics: bool) -> dict[str, str]:
    env = {
        "PUSHHUB_DATABASE_URL": url,
        "PUSHHUB_LOG_LEVEL": "WARNING",
        "PUSHHUB_SIMULATOR_RECORDS": "0",
    }
    if args.chunk_size:
        env["PUSHHUB_CHUNK_SIZE"] = str(args.chunk_size)
    if metrics:
        env["PUSHHUB_METRICS_LISTEN"] = f"127.0.0.1:{free_port()}"
    return env


def compare_metrics(args: argparse.Namespace, url: str, keys: dict[str, str]) -> None:
    """The same broadcast with metrics off and on, alternating, one server at a time."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    # Server CPU time per notification: a machine shared with other work slows
    # both the same, and moves this far less than it moves the rate.
    cpu_us: dict[bool, list[float]] = {False: [], True: []}
    for number in range(args.repeat):
        # Alternating which goes first, so a drifting machine favours neither.
        for metrics in (False, True) if number % 2 == 0 else (True, False):
            port = free_port()
            command = [
                sys.executable, "-m", "pushhub_server", "serve", "--listen", f"127.0.0.1:{port}"
            ]  # fmt: skip
            env = server_env(args, url, metrics=metrics)
            with server_process(command, port, env) as process:
                cpu_before = cpu_seconds(process.pid)
                result = asyncio.run(
                    one_broadcast(
                        f"127.0.0.1:{port}",
                        keys["server_key"],
                        process.pid,
                        args.register_rate,
                        (2 * number + metrics) * 1_000_000,
                    )
                )
                used = cpu_seconds(process.pid) - cpu_before
                result["peak_rss_mb"] = memory_kb(process.pid)["VmHWM"] / 1024
            result["cpu_us"] = used * 1e6 / int(result["targeted"])
            rates[metrics].append(float(result["rate"]))
            cpu_us[metrics].append(result["cpu_us"])
            print(f"metrics {'on ' if metrics else 'off'}: ", end="")
            report(number + 1, result)
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    chunk_size = args.chunk_size or 1000
    per_chunk_us = metrics_cost_per_chunk_us()
    chunk_us = chunk_size / off * 1e6
    print()
    print(f"fan-out to {args.count} registrations, {args.repeat} broadcast(s) each way:")
    print(f"  recipients/s, metrics off : {off:9.0f} (median)")
    print(f"  recipients/s, metrics on  : {on:9.0f} (median)")
    print(f"  on / off                  : {on / off:9.3f} (target >= 0.97)")
    cpu_off, cpu_on = statistics.median(cpu_us[False]), statistics.median(cpu_us[True])
    print(f"  server CPU/notification   : {cpu_off:9.2f} us off, {cpu_on:.2f} us on (medians)")
    print(f"  CPU on / off              : {cpu_on / cpu_off:9.3f} (target <= 1.03)")
    print(
        f"  metrics calls per chunk   : {per_chunk_us:9.1f} us in-process, "
        f"{per_chunk_us / chunk_us:.3%} of a {chunk_size}-recipient chunk at the off rate"
    )
    print(
        json.dumps({"off": [round(r) for r in rates[False]], "on": [round(r) for r in rates[True]]})
    )


def metrics_cost_per_chunk_us() -> float:
    """What the dispatcher's metrics calls cost per chunk, measured in-process and
    free of the noise between two server runs: a two-platform chunk's counts,
    two provider requests, and a run's start and end spread over it."""
    import timeit

    from prometheus_client import CollectorRegistry

    from pushhub_server.core.delivery_metrics import NotificationCounts
    from pushhub_server.observability.prometheus_metrics import PushHubMetrics

    metrics = PushHubMetrics(CollectorRegistry())
    counts = NotificationCounts(sent={Platform.APNS: 500, Platform.FCM: 500})

    def one_chunk() -> None:
        metrics.chunk_counted(counts)
        metrics.provider_request(Platform.APNS, 0.004)
        metrics.provider_request(Platform.FCM, 0.004)
        metrics.run_started()
        metrics.run_ended()

    rounds = 20_000
    best = min(timeit.repeat(one_chunk, number=rounds, repeat=5))
    return best / rounds * 1e6


def report(number: int, result: dict[str, Any]) -> None:
    print(
        f"broadcast {number}: {result['state']} targeted {result['targeted']} "
        f"sent {result['sent']} failed {result['failed']} in {result['elapsed']:.2f} s -> "
        f"{result['rate']:,.0f} recipients/s, server CPU {result['cpu_us']:.2f} us each; "
        f"peak RSS {result['peak_rss_mb']:.1f} MB; "
        f"RegisterDevice {describe_latencies(result['latencies'])}, "
        f"{result['register_errors']} errors",
        flush=True,
    )


if __name__ == "__main__":
    main()
