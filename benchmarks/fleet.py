"""Fleet benchmark: one broadcast shared by several delivery processes, on PostgreSQL.

Figures, not assertions (docs/fleet.md). Every process is a separate
`pushhub serve` on its own loopback port, all on one PostgreSQL database; the
Publish goes to the first, the others find the run's partitions on their next
scheduler poll (PUSHHUB_SCHEDULER_POLL_INTERVAL, set to --poll seconds here).
In one run it prints, side by side:

1. --count recipients (default 1,000,000) to the discarding simulator
   (PUSHHUB_SIMULATOR_RECORDS=0), with 1 and then 2 processes: notifications/s
   from Publish to PUBLISHED, each process's CPU seconds and the partitions it
   delivered (from its log), and the ratio 2/1 (target on 2 cores: >= 1.5).
2. The same broadcast through the APNs provider to benchmarks/delivery.py's
   nginx HTTP/2 TLS sink, 1 then 2 processes, and the ratio.
3. kill -9 of one of two processes in the middle of a --kill-count broadcast
   (default 200,000) to APNs, nginx logging every request's URI: the other
   process finishes it once the killed one's leases run out (--kill-lease
   seconds). Sink requests must be the recipients plus at most one chunk per
   partition the killed process held (claimed and not delivered, from its log),
   every recipient at least once.

Seeding is one INSERT ... SELECT FROM generate_series per app (a million rows in
seconds): ids in core.ids' time-ordered layout, 160-hex-digit tokens, a small
metadata map, every registration on APNs (the simulator takes any platform).

    .venv/bin/python -m benchmarks.fleet                        # 1M, 1M, 200k: minutes
    .venv/bin/python -m benchmarks.fleet --count 200000 --kill-count 50000
    .venv/bin/python -m benchmarks.fleet --skip-apns --skip-kill

PostgreSQL at postgres@127.0.0.1:5432; the benchmark drops and recreates its own
database (--pg-database, default pushhub_fleet). nginx as in benchmarks/delivery.py.
The machine has two cores and may be shared: run one benchmark at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from benchmarks.common import create_app, free_port, fresh_postgres_url, pushhub, wait_ready
from benchmarks.delivery import cpu_seconds, ensure_nginx, other_benchmarks
from benchmarks.http2_clients import nginx_sink
from pushhub.v1 import common_pb2, publish_pb2, status_pb2
from tests.fakes.tls import TlsFiles, issue_tls_files

PUBLISH = "/pushhub.v1.PublishService/Publish"
STATUS = "/pushhub.v1.StatusService/GetMessageStatus"
WATCH = "/pushhub.v1.StatusService/WatchMessageStatus"
TARGET_RATIO = 1.5
CLAIMED = re.compile(r"claim \d+ of message (\S+): partition (\d+) claimed")
DELIVERED = re.compile(r"claim \d+ of message (\S+): partition (\d+) delivered")

# One statement seeds an app: the same row shape as store/upsert.py writes, ids
# ascending in core.ids' UUIDv7 layout (this millisecond, then the series number).
SEED = """
INSERT INTO registrations (id, app_id, platform, device_token, user_id, expires_at,
    metadata_json, templates_json, selector, token_hash, fingerprint, created_at, updated_at)
SELECT format('%s-%s-7000-8%s-%s', left($3, 8), right($3, 4), left(h, 3), right(h, 12)),
       $1, 1, token, 'user-' || n, NULL,
       '{"name":"Device ' || n || '","locale":"en"}', NULL, NULL,
       encode(sha256(convert_to(token, 'UTF8')), 'hex'), md5(token), $4, $4
FROM generate_series($5::bigint, $5::bigint + $2 - 1) AS n,
     LATERAL (SELECT lpad(to_hex(n), 15, '0') AS h,
                     repeat(lpad(to_hex(n), 16, '0'), 10) AS token) AS made
"""


# ------------------------------------------------------------------ seeding


async def seed(url: str, app_id: str, count: int, first: int) -> float:
    """Inserts `count` APNs registrations numbered from `first`; returns seconds."""
    import asyncpg

    started = time.perf_counter()
    now_us = time.time_ns() // 1000
    stamp = f"{now_us // 1000:012x}"
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(SEED, app_id, count, stamp, now_us, first)
        await conn.execute("VACUUM ANALYZE registrations")
    finally:
        await conn.close()
    return time.perf_counter() - started


def set_apns(url: str, app_id: str, p8: Path) -> None:
    pushhub(
        *("apps", "set-apns", app_id, "--key-id", "BENCH12345", "--team-id"),
        *("TEAM123456", "--topic", "com.example.bench", "--p8", str(p8)),
        database_url=url,
    )


# ------------------------------------------------------------------ processes


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def partitions(self, pattern: re.Pattern[str], message_id: str) -> set[int]:
        text = self.log.read_text(errors="replace")
        return {int(n) for m, n in pattern.findall(text) if m == message_id}


@contextmanager
def fleet(count: int, env: dict[str, str], workdir: Path) -> Iterator[list[Server]]:
    """`count` `pushhub serve` processes on one database, each on its own port,
    each logging to its own file (INFO: a line per partition claimed and delivered)."""
    servers: list[Server] = []
    try:
        for _ in range(count):
            port = free_port()
            log = workdir / f"server-{port}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "pushhub_server",
                        "serve",
                        "--listen",
                        f"127.0.0.1:{port}",
                    ],
                    env={**os.environ, **env, "PUSHHUB_LOG_LEVEL": "INFO"},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    # A session each, as services or hosts of a fleet run: Linux's
                    # autogroup shares the CPU between sessions, so processes started
                    # in this script's session would split one session's share.
                    start_new_session=True,
                )
            servers.append(Server(process, port, log))
            asyncio.run(wait_ready(port))
        yield servers
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.process.kill()


async def publish(target: str, server_key: str) -> str:
    auth = (("authorization", f"Bearer {server_key}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        request = publish_pb2.PublishRequest(broadcast=True, message="Hello, fleet")
        raw = await channel.unary_unary(PUBLISH)(request.SerializeToString(), metadata=auth)
    return publish_pb2.PublishResponse.FromString(raw).message_id


async def watch(target: str, server_key: str, message_id: str) -> status_pb2.MessageStatus:
    """The terminal status, from WatchMessageStatus."""
    auth = (("authorization", f"Bearer {server_key}"),)
    request = status_pb2.WatchMessageStatusRequest(message_id=message_id)
    status = None
    async with grpc.aio.insecure_channel(target) as channel:
        stream = channel.unary_stream(WATCH)(request.SerializeToString(), metadata=auth)
        async for raw in stream:
            status = status_pb2.WatchMessageStatusResponse.FromString(raw).status
    assert status is not None
    return status


async def first_terminal(
    targets: list[str], server_key: str, message_id: str
) -> status_pb2.MessageStatus:
    """The terminal status, from whichever process reports it first: each one's
    Watch is woken by its own chunks at once, and sees the others' on its poll
    (two seconds), so watching one process alone would time its poll."""
    watches = [asyncio.ensure_future(watch(t, server_key, message_id)) for t in targets]
    done, pending = await asyncio.wait(watches, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return next(iter(done)).result()


async def sent_so_far(target: str, server_key: str, message_id: str) -> int:
    auth = (("authorization", f"Bearer {server_key}"),)
    request = status_pb2.GetMessageStatusRequest(message_id=message_id)
    async with grpc.aio.insecure_channel(target) as channel:
        raw = await channel.unary_unary(STATUS)(request.SerializeToString(), metadata=auth)
    return status_pb2.GetMessageStatusResponse.FromString(raw).status.sent_count


# ------------------------------------------------------------------ scenarios


async def backend_pids(url: str) -> list[int]:
    """The PostgreSQL backends serving the benchmark's database (the servers' pools)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        return [row["pid"] for row in await conn.fetch(query)]
    finally:
        await conn.close()


def backend_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each backend still there (the database's share of the work)."""
    seconds = {}
    for pid in pids:
        try:
            seconds[pid] = cpu_seconds(pid)
        except OSError:
            continue  # gone meanwhile
    return seconds


def shared_broadcast(
    processes: int, env: dict[str, str], server_key: str, workdir: Path
) -> dict[str, Any]:
    url = env["PUSHHUB_DATABASE_URL"]
    """One broadcast, published to the first of `processes` processes."""
    with fleet(processes, env, workdir) as servers:
        cpu_before = [cpu_seconds(s.process.pid) for s in servers]
        database_before = backend_cpu(asyncio.run(backend_pids(url)))
        started = time.perf_counter()
        message_id = asyncio.run(publish(servers[0].target, server_key))
        targets = [server.target for server in servers]
        status = asyncio.run(first_terminal(targets, server_key, message_id))
        elapsed = time.perf_counter() - started
        cpu = [cpu_seconds(s.process.pid) - b for s, b in zip(servers, cpu_before, strict=True)]
        # Backends that served the run; one opened meanwhile counts from zero.
        database_after = backend_cpu(asyncio.run(backend_pids(url)))
        database_cpu = sum(t - database_before.get(p, 0.0) for p, t in database_after.items())
        shares = [len(s.partitions(DELIVERED, message_id)) for s in servers]
    return {
        "processes": processes,
        "state": common_pb2.MessageState.Name(status.state),
        "sent": status.sent_count,
        "failed": status.failed_count,
        "elapsed": elapsed,
        "rate": status.targeted_count / elapsed,
        "cpu": cpu,
        "database_cpu": database_cpu,
        "partitions": shares,
    }


def describe(name: str, result: dict[str, Any]) -> str:
    cpu = " + ".join(f"{c:.1f}" for c in result["cpu"])
    return (
        f"  {name}, {result['processes']} process(es): {result['state']} sent {result['sent']:,} "
        f"failed {result['failed']:,} in {result['elapsed']:.2f} s -> {result['rate']:,.0f}/s; "
        f"CPU s per process {cpu}, PostgreSQL {result['database_cpu']:.1f}; "
        f"partitions per process {result['partitions']}"
    )


def one_then_two(
    name: str, env: dict[str, str], server_key: str, workdir: Path
) -> dict[str, float]:
    one = shared_broadcast(1, env, server_key, workdir)
    print(describe(name, one), flush=True)
    two = shared_broadcast(2, env, server_key, workdir)
    print(describe(name, two), flush=True)
    ratio = two["rate"] / one["rate"]
    mark = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(
        f"  {name}: 2 processes / 1 = {ratio:.2f}x ({mark} target >= {TARGET_RATIO}x)", flush=True
    )
    return {"one": round(one["rate"]), "two": round(two["rate"]), "ratio": round(ratio, 2)}


def kill_one_of_two(
    env: dict[str, str], server_key: str, recipients: int, chunk: int, tls: TlsFiles, workdir: Path
) -> dict[str, Any]:
    """kill -9 of the process the broadcast was published to, a quarter of the way in."""
    access_log = workdir / "sink-requests.log"
    with ExitStack() as stack:
        sink = stack.enter_context(nginx_sink(tls, access_log))
        servers = stack.enter_context(fleet(2, {**env, "PUSHHUB_APNS_ENDPOINT": sink}, workdir))
        victim, survivor = servers
        message_id = asyncio.run(publish(victim.target, server_key))
        while asyncio.run(sent_so_far(survivor.target, server_key, message_id)) < recipients // 4:
            time.sleep(0.02)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        at_kill = asyncio.run(sent_so_far(survivor.target, server_key, message_id))
        status = asyncio.run(watch(survivor.target, server_key, message_id))
        held = victim.partitions(CLAIMED, message_id) - victim.partitions(DELIVERED, message_id)
        by_survivor = survivor.partitions(DELIVERED, message_id)
    # nginx has stopped: its log is complete.
    tokens = Counter(
        line.rsplit("/", 1)[-1].strip()
        for line in access_log.read_text().splitlines()
        if "/3/device/" in line
    )
    requests = sum(tokens.values())
    extra = requests - recipients
    bound = len(held) * chunk
    ok = len(tokens) == recipients and 0 <= extra <= bound
    print(
        f"  kill -9 after {at_kill:,} of {recipients:,} recorded sent: "
        f"{common_pb2.MessageState.Name(status.state)}, sent {status.sent_count:,}; "
        f"sink requests {requests:,} for {len(tokens):,} distinct tokens "
        f"(recipients + {extra:,}); the killed process held {len(held)} partition(s) "
        f"{sorted(held)}, so at most {bound:,} extra; the survivor delivered "
        f"{len(by_survivor)} partitions; {'meets' if ok else 'MISSES'} the rule",
        flush=True,
    )
    return {
        "requests": requests,
        "distinct": len(tokens),
        "extra": extra,
        "held": len(held),
        "bound": bound,
        "ok": ok,
    }


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1_000_000, help="broadcast recipients")
    parser.add_argument("--kill-count", type=int, default=200_000, help="recipients, kill -9")
    parser.add_argument("--chunk-size", type=int, default=1000, help="PUSHHUB_CHUNK_SIZE")
    parser.add_argument("--partition-size", type=int, help="PUSHHUB_PARTITION_SIZE")
    parser.add_argument("--poll", type=float, default=0.2, help="scheduler poll seconds")
    parser.add_argument("--kill-lease", type=float, default=5.0, help="lease seconds, kill -9")
    parser.add_argument("--skip-simulator", action="store_true")
    parser.add_argument("--skip-apns", action="store_true")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--pg-database", default="pushhub_fleet")
    args = parser.parse_args()

    print(f"{os.cpu_count()} cores, PostgreSQL, chunk size {args.chunk_size}", flush=True)
    for command in other_benchmarks():
        print(f"WARNING: another benchmark is running, figures will be low: {command}")
    workdir = Path(tempfile.mkdtemp(prefix="pushhub-fleet-"))
    url = asyncio.run(fresh_postgres_url(args.pg_database))
    keys = create_app(url, "fleet")  # migrates the new database too
    seconds = asyncio.run(seed(url, keys["app_id"], args.count, 0))
    print(f"{args.count:,} registrations seeded in {seconds:.1f} s", flush=True)
    env = {
        "PUSHHUB_DATABASE_URL": url,
        "PUSHHUB_SIMULATOR_RECORDS": "0",
        "PUSHHUB_CHUNK_SIZE": str(args.chunk_size),
        "PUSHHUB_SCHEDULER_POLL_INTERVAL": str(args.poll),
    }
    if args.partition_size is not None:
        env["PUSHHUB_PARTITION_SIZE"] = str(args.partition_size)
    figures: dict[str, Any] = {}
    if not args.skip_simulator:
        print(f"simulator (discarding), {args.count:,} recipients:", flush=True)
        figures["simulator"] = one_then_two("simulator", env, keys["server_key"], workdir)

    tls = issue_tls_files(workdir / "tls", ("localhost",))
    apns_env = {**env, "PUSHHUB_APNS_CA_FILE": str(tls.ca_file)}
    if not (args.skip_apns and args.skip_kill):
        from tests.fakes.apns import new_signing_key

        ensure_nginx()
        p8 = workdir / "AuthKey_BENCH12345.p8"
        p8.write_text(new_signing_key()[0])
    if not args.skip_apns:
        set_apns(url, keys["app_id"], p8)
        print(f"APNs to the nginx sink, {args.count:,} recipients:", flush=True)
        with nginx_sink(tls) as sink:
            figures["apns"] = one_then_two(
                "APNs", {**apns_env, "PUSHHUB_APNS_ENDPOINT": sink}, keys["server_key"], workdir
            )
    if not args.skip_kill:
        killed = create_app(url, "fleet-kill")
        asyncio.run(seed(url, killed["app_id"], args.kill_count, args.count))
        set_apns(url, killed["app_id"], p8)
        print(f"kill -9 of one of two processes, APNs, {args.kill_count:,} recipients:")
        kill_env = {**apns_env, "PUSHHUB_LEASE_SECONDS": str(args.kill_lease)}
        figures["kill"] = kill_one_of_two(
            kill_env, killed["server_key"], args.kill_count, args.chunk_size, tls, workdir
        )
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
