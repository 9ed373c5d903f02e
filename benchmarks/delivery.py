"""Delivery benchmark: figures, not assertions.

One broadcast through the whole pipeline and the real providers, three times:

1. APNs: --apns-count registrations (default 1,000,000), the app given APNs
   credentials (a freshly generated .p8 key, ES256), delivered by ApnsProvider
   over pycurl HTTP/2 to a local nginx TLS sink shaped like APNs (docs/performance.md,
   "The nginx sink"): ``listen … ssl http2``, ``keepalive_requests 100000000``
   (nginx's default of 1,000 would close the connection with GOAWAY every 1,000
   requests), ``location /3/device/ { return 200; }``. nginx does not check the
   provider token; the APNs tests do that against tests/fakes/apns.py.
2. FCM: --fcm-count registrations (default 100,000), the app given a service
   account issued by the fake FCM (tests/fakes/fcm.py), which serves the OAuth2
   token endpoint and ``messages:send``. The fake runs in its own process (its
   own core, not the server's event loop); it is pure Python (h2) and verifies
   every request, so it, not PushHub, bounds that figure.
3. FCM to nginx: --fcm-sink-count registrations (default 1,000,000), the same
   service account (its token still comes from the fake, once), but
   ``messages:send`` answered by the nginx sink with FCM's success body
   (``location /v1/projects/``). This is the FCM provider's own throughput,
   which the fake cannot show.
4. Web Push to nginx: --webpush-count registrations (default 100,000), the app
   given generated VAPID credentials (``pushhub apps set-webpush``), endpoints
   ``https://localhost:PORT/wpush/<token>`` with ``localhost:PORT`` listed in
   PUSHHUB_WEB_PUSH_ALLOWED_HOSTS (the address guard still resolves and pins
   it), every registration with the same browser keys (each recipient still
   costs its own ECDH and AES-GCM); nginx answers 201 (``location /wpush/``).
   --webpush-threads sets the server's PUSHHUB_WEB_PUSH_ENCRYPTION_THREADS.
5. HMS to nginx: --hms-count registrations (default 1,000,000), the app given an
   OAuth client (``pushhub apps set-hms``); nginx answers the token endpoint and
   ``messages:send`` with Push Kit's success body. A broadcast is one request
   per 1,000 tokens, so the figure is recipients/s.

For each it prints:

- notifications/s from the Publish call until WatchMessageStatus reports PUBLISHED;
- the server process's peak RSS (VmHWM from /proc/PID/status);
- the server's CPU time per notification (all threads, and the event loop's own):
  on a shared 2-core machine it moves less than the rate does; rate x CPU is
  how many cores the server had, and cores / CPU the rate they would bound;
- RegisterDevice p50/p99 latency from a concurrent client registering new devices
  at --register-rate RPC/s while the fan-out runs.

Each platform gets a fresh database and a fresh server process, so each peak RSS
is that platform's own. Registrations are loaded straight into the database
before the server starts, with benchmarks/fanout.py's loader (same row shape the
store writes; 160-hex-character tokens), then switched to the one platform.

    .venv/bin/python -m benchmarks.delivery   # 1M APNs, 100k FCM (fake), 1M FCM (nginx)
    .venv/bin/python -m benchmarks.delivery --apns-count 50000 --fcm-count 10000
    .venv/bin/python -m benchmarks.delivery --database postgres   # database pushhub_delivery
    .venv/bin/python -m benchmarks.delivery --profile /tmp/apns.raw   # py-spy during APNs

nginx comes from the Debian package nginx-light; when it is missing, the script
installs it with apt-get if it runs as root, else says how. The machine has two
cores and may be shared: run one benchmark at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks.common import (
    cpu_seconds,
    create_app,
    describe_latencies,
    free_port,
    fresh_postgres_url,
    percentile,
    pushhub,
    server_process,
    sqlite_url,
)
from benchmarks.fanout import load_postgres, load_sqlite, memory_kb, one_broadcast
from benchmarks.http2_clients import nginx_sink
from pushhub_server.core.models import Platform
from pushhub_server.store.platforms import PLATFORM_CODES
from tests.fakes.tls import TlsFiles, issue_tls_files

TARGET_RATE = 20_000
# Issue 14: every Web Push recipient costs its own ECDH and AES-GCM; HMS multicasts.
TARGET_WEBPUSH_RATE = 8_000
TARGET_HMS_RATE = 50_000
TARGET_RSS_MB = 300
TARGET_P99_MS = 50
COMPARISONS = (
    ("Azure Notification Hubs", '"at least 1 million sends a minute" per hosted hub, ~16,700/s'),
    ("gorush (self-hosted)", "users report ~5,000/s"),
    ("Pushkin (Matrix)", "states 500/s per instance"),
)
PG_DATABASE = "pushhub_delivery"


# ------------------------------------------------------------------ nginx


def ensure_nginx() -> None:
    """nginx-light from apt when nginx is missing and we may install it; else a clear exit."""
    if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(
            "nginx is not installed: run `apt-get update && apt-get install -y nginx-light` "
            "(as root), then this benchmark again"
        )
    print("nginx not found: installing nginx-light with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "nginx-light"], check=True, env=env)


def other_benchmarks() -> list[str]:
    """Command lines of other benchmark processes: on 2 cores they ruin each other's figures."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), os.getppid()):
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        command = " ".join(part.decode(errors="replace") for part in argv if part)
        if any(f"benchmarks.{name}" in command for name in ("fanout", "registration", "delivery")):
            found.append(command)
    return found


# ------------------------------------------------------------------ loading


def load_registrations(
    database: str,
    url: str,
    app_id: str,
    count: int,
    platform: Platform,
    web_push: tuple[str, str, str] | None = None,
) -> str:
    """`count` registrations of `platform` only, via benchmarks/fanout.py's loader.

    That loader writes half APNs, half FCM; one UPDATE moves every row to the platform
    (their fingerprints keep the old one, which only matters to a re-registration of
    the same token, and the benchmark makes none). Tokens are hex, valid for APNs, FCM
    and HMS. ``web_push``: (endpoint prefix, p256dh, auth): each token becomes the
    prefix followed by it, with those keys (the token digests stay the hex ones').
    """
    started = time.perf_counter()
    prefix, p256dh, auth = web_push or ("", None, None)
    if database == "sqlite":
        load_sqlite(url, app_id, count)
        conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(
                "UPDATE registrations SET platform = ?, device_token = ? || device_token,"
                " web_push_p256dh = ?, web_push_auth = ?",
                (PLATFORM_CODES[platform], prefix, p256dh, auth),
            )
            conn.execute("ANALYZE")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    else:
        asyncio.run(_load_postgres(url, app_id, count, platform, (prefix, p256dh, auth)))
    elapsed = time.perf_counter() - started
    return f"{count:,} {platform.name} registrations loaded in {elapsed:.1f} s"


async def _load_postgres(
    url: str,
    app_id: str,
    count: int,
    platform: Platform,
    web_push: tuple[str, str | None, str | None],
) -> None:
    import asyncpg

    await load_postgres(url, app_id, count)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(
            "UPDATE registrations SET platform = $1, device_token = $2 || device_token,"
            " web_push_p256dh = $3, web_push_auth = $4",
            PLATFORM_CODES[platform],
            *web_push,
        )
        await conn.execute("VACUUM ANALYZE registrations")
    finally:
        await conn.close()


def fresh_database(database: str) -> str:
    if database == "sqlite":
        return sqlite_url()
    return asyncio.run(fresh_postgres_url(PG_DATABASE))


# ------------------------------------------------------------------ fake FCM process


def _fake_fcm_main(tls_dir: str, conn: Connection) -> None:
    asyncio.run(_serve_fake_fcm(tls_dir, conn))


async def _serve_fake_fcm(tls_dir: str, conn: Connection) -> None:
    from pushhub_server.core.clock import SystemClock
    from tests.fakes.fcm import FakeFcm

    directory = Path(tls_dir)
    tls = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    fake = FakeFcm(SystemClock(), tls)
    await fake.start()
    conn.send((fake.base_url, fake.service_account("pushhub-bench")))
    loop = asyncio.get_running_loop()
    while True:
        # Poll the pipe without blocking the fake's loop; a stop request gets the counts.
        if await loop.run_in_executor(None, conn.poll, 0.5):
            conn.recv()
            break
        # Accepted sends are kept in `messages` for tests; a benchmark only needs the count.
        fake.messages.clear()
    counts = {
        "send_requests": fake.send_requests,
        "token_requests": fake.token_requests,
        "connections": dict(fake.connections),
    }
    await fake.stop()
    conn.send(counts)


@contextmanager
def fake_fcm_process(tls: TlsFiles) -> Iterator[tuple[str, dict[str, str], dict[str, Any]]]:
    """Runs FakeFcm in a child process; yields (base URL, service account, final counts).

    The counts dict is filled in when the context exits.
    """
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_fake_fcm_main, args=(str(tls.ca_file.parent), child), daemon=True
    )
    process.start()
    counts: dict[str, Any] = {}
    try:
        if not parent.poll(30):
            raise SystemExit("the fake FCM did not start")
        base_url, account = parent.recv()
        yield base_url, account, counts
    finally:
        if process.is_alive():
            parent.send("stop")
            if parent.poll(30):
                counts.update(parent.recv())
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()


# ------------------------------------------------------------------ profiling


def start_profiler(pid: int, output: str, delay: float, duration: int) -> threading.Thread:
    """py-spy record (raw, native frames) for `duration` s, starting `delay` s from now."""
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    command = [py_spy, "record", "-p", str(pid), "--native", "-f", "raw"]
    command += ["-d", str(duration), "-o", output]

    def run() -> None:
        time.sleep(delay)
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# Where an event-loop sample's time went: the deepest frame matching a pattern names it.
_BUCKETS = (
    ("HTTP/2 client: providers/http2.py, libcurl, nghttp2, TLS, send()", ("providers/http2.py",)),
    ("APNs provider: requests, classification", ("providers/apns.py",)),
    ("FCM provider", ("providers/fcm.py", "google_auth.py")),
    ("payload rendering: delivery/payloads.py", ("delivery/payloads.py",)),
    ("store: audience pages, checkpoints (SQLAlchemy)", ("/store/", "sqlalchemy")),
    ("dispatcher, retry, status signal", ("delivery/",)),
    ("gRPC API: RegisterDevice, Watch, Publish", ("pushhub_server/api/", "grpc")),
)
# Leaf frames of a thread that is blocked rather than running.
_WAITING = ("epoll_wait", "pthread_cond_", "sem_wait", "sem_timedwait", "futex", "poll (")


def summarize_profile(path: str, top: int = 12) -> list[str]:
    """Event-loop thread by component, other threads busy/waiting, top self-time frames."""
    loop: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = loop_total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        waiting = any(frames[-1].startswith(w) for w in _WAITING) or "SimpleQueue_get" in stack
        total += count
        if "_run_once" not in stack:  # not the event-loop thread: aiosqlite, gRPC, ...
            threads["waiting" if waiting else "running"] += count
            continue
        loop_total += count
        if waiting:
            loop["idle: waiting in epoll"] += count
            continue
        leaves[_short(frames[-1])] += count
        bucket = "event loop, asyncio, other"
        for frame in reversed(frames):
            name = next((n for n, patterns in _BUCKETS if any(p in frame for p in patterns)), None)
            if name:
                bucket = name
                break
        loop[bucket] += count
    if not loop_total:
        return ["(no event-loop samples)"]
    lines = [f"event-loop thread, {loop_total} samples (100/s):"]
    lines += [f"  {100 * n / loop_total:5.1f}%  {name}" for name, n in loop.most_common()]
    lines.append(
        f"other threads (aiosqlite worker, gRPC): {threads['running']} samples running, "
        f"{threads['waiting']} waiting"
    )
    busy = sum(leaves.values())
    lines.append(f"event-loop self time, top {top} frames (% of its busy samples):")
    lines += [f"  {100 * n / busy:5.1f}%  {name}" for name, n in leaves.most_common(top)]
    return lines


def _short(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (file.py:123)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if where else name


# ------------------------------------------------------------------ one platform


def run_platform(
    args: argparse.Namespace,
    platform: Platform,
    count: int,
    env: dict[str, str],
    set_credentials: Any,
    profile: str | None,
    web_push: tuple[str, str, str] | None = None,
) -> list[dict[str, Any]]:
    url = fresh_database(args.database)
    keys = create_app(url)  # migrates the new database too
    loaded = load_registrations(args.database, url, keys["app_id"], count, platform, web_push)
    print(loaded, flush=True)
    set_credentials(url, keys["app_id"])

    port = free_port()
    command = [sys.executable, "-m", "pushhub_server", "serve", "--listen", f"127.0.0.1:{port}"]
    server_env = {"PUSHHUB_DATABASE_URL": url, "PUSHHUB_LOG_LEVEL": "WARNING", **env}
    if args.chunk_size:
        server_env["PUSHHUB_CHUNK_SIZE"] = str(args.chunk_size)
    results = []
    with server_process(command, port, server_env, new_session=args.own_session) as process:
        idle_rss = memory_kb(process.pid)["VmRSS"] / 1024
        for number in range(args.repeat):
            profiler = None
            if profile and not number:
                # After the publish (0.5 s in) and the first pages: the steady state.
                profiler = start_profiler(process.pid, profile, 3.0, args.profile_seconds)
            cpu_before = cpu_seconds(process.pid), cpu_seconds(process.pid, process.pid)
            result = asyncio.run(
                one_broadcast(
                    f"127.0.0.1:{port}",
                    keys["server_key"],
                    process.pid,
                    args.register_rate,
                    number * 1_000_000,
                )
            )
            if profiler is not None:
                profiler.join(timeout=args.profile_seconds + 60)
            # The whole broadcast, warm-up and RegisterDevice load included; the main
            # thread is the event loop. Less noisy than the rate on a shared machine.
            targeted = max(result["targeted"], 1)
            result["cpu_us"] = (cpu_seconds(process.pid) - cpu_before[0]) * 1e6 / targeted
            result["loop_cpu_us"] = (
                (cpu_seconds(process.pid, process.pid) - cpu_before[1]) * 1e6 / targeted
            )
            result["peak_rss_mb"] = memory_kb(process.pid)["VmHWM"] / 1024
            result["idle_rss_mb"] = idle_rss
            results.append(result)
            print(
                f"  {platform.name} broadcast {number + 1}: {result['state']} targeted "
                f"{result['targeted']:,} sent {result['sent']:,} failed {result['failed']:,} in "
                f"{result['elapsed']:.2f} s -> {result['rate']:,.0f} notifications/s; peak RSS "
                f"{result['peak_rss_mb']:.1f} MB; server CPU "
                f"{result['cpu_us']:.1f} us/notification (event loop {result['loop_cpu_us']:.1f}); "
                "RegisterDevice "
                f"{describe_latencies(result['latencies'])}, {result['register_errors']} errors",
                flush=True,
            )
    return results


def summary(results: list[dict[str, Any]]) -> dict[str, float]:
    median = statistics.median
    return {
        "rate": median(float(r["rate"]) for r in results),
        "peak_rss_mb": max(float(r["peak_rss_mb"]) for r in results),
        "idle_rss_mb": float(results[0]["idle_rss_mb"]),
        "p99_ms": median(percentile([s * 1000 for s in r["latencies"]], 0.99) for r in results),
        "p50_ms": median(percentile([s * 1000 for s in r["latencies"]], 0.50) for r in results),
        "cpu_us": median(float(r["cpu_us"]) for r in results),
        "loop_cpu_us": median(float(r["loop_cpu_us"]) for r in results),
        "sent": median(float(r["sent"]) for r in results),
        "failed": median(float(r["failed"]) for r in results),
    }


def _mark(ok: bool) -> str:
    return "meets" if ok else "MISSES"


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apns-count", type=int, default=1_000_000, help="0 skips APNs")
    parser.add_argument("--fcm-count", type=int, default=100_000, help="0 skips the fake FCM")
    parser.add_argument(
        "--fcm-sink-count", type=int, default=1_000_000, help="FCM to nginx; 0 skips it"
    )
    parser.add_argument(
        "--webpush-count", type=int, default=100_000, help="Web Push to nginx; 0 skips it"
    )
    parser.add_argument("--hms-count", type=int, default=1_000_000, help="HMS to nginx; 0 skips it")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=1, help="broadcasts per platform; medians")
    parser.add_argument("--register-rate", type=float, default=20.0, help="RegisterDevice RPC/s")
    parser.add_argument("--chunk-size", type=int, help="PUSHHUB_CHUNK_SIZE for the server")
    parser.add_argument("--apns-connections", type=int, default=1, help="PUSHHUB_APNS_CONNECTIONS")
    parser.add_argument(
        "--own-session",
        action="store_true",
        help="the server in a session of its own: where the kernel shares CPU per session"
        " (autogroup), it then gets a share as a separate service does, not part of this one's",
    )
    parser.add_argument(
        "--webpush-threads", type=int, help="PUSHHUB_WEB_PUSH_ENCRYPTION_THREADS (server default)"
    )
    parser.add_argument("--profile", help="py-spy raw output file, during the APNs fan-out")
    parser.add_argument("--profile-seconds", type=int, default=10)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="pushhub-delivery-"))
    tls = issue_tls_files(workdir / "tls", ("localhost",))
    figures: dict[str, dict[str, float]] = {}
    database = "SQLite" if args.database == "sqlite" else "PostgreSQL"
    print(f"{os.cpu_count()} cores, {database}, chunk size {args.chunk_size or 'default'}")
    for command in other_benchmarks():
        print(f"WARNING: another benchmark is running, figures will be low: {command}")

    if args.apns_count:
        from tests.fakes.apns import new_signing_key

        ensure_nginx()
        p8 = workdir / "AuthKey_BENCH12345.p8"
        p8.write_text(new_signing_key()[0])

        def set_apns(url: str, app_id: str) -> None:
            pushhub(
                *("apps", "set-apns", app_id, "--key-id", "BENCH12345", "--team-id"),
                *("TEAM123456", "--topic", "com.example.bench", "--p8", str(p8)),
                database_url=url,
            )

        with nginx_sink(tls) as sink_url:
            print(f"APNs: nginx HTTP/2 TLS sink at {sink_url}", flush=True)
            env = {
                "PUSHHUB_APNS_ENDPOINT": sink_url,
                "PUSHHUB_APNS_CA_FILE": str(tls.ca_file),
                "PUSHHUB_APNS_CONNECTIONS": str(args.apns_connections),
            }
            apns = run_platform(args, Platform.APNS, args.apns_count, env, set_apns, args.profile)
        figures["apns"] = summary(apns)

    fcm_counts: dict[str, Any] = {}
    if args.fcm_count or args.fcm_sink_count:
        with fake_fcm_process(tls) as (fcm_url, account, fcm_counts):
            account_file = workdir / "service-account.json"
            account_file.write_text(json.dumps(account))

            def set_fcm(url: str, app_id: str) -> None:
                pushhub(
                    "apps", "set-fcm", app_id, "--service-account", str(account_file),
                    database_url=url,
                )  # fmt: skip

            def run_fcm(name: str, endpoint: str, count: int) -> None:
                env = {"PUSHHUB_FCM_ENDPOINT": endpoint, "PUSHHUB_FCM_CA_FILE": str(tls.ca_file)}
                figures[name] = summary(run_platform(args, Platform.FCM, count, env, set_fcm, None))

            if args.fcm_count:
                print(f"FCM: fake FCM (own process) at {fcm_url}", flush=True)
                run_fcm("fcm", fcm_url, args.fcm_count)
            if args.fcm_sink_count:
                ensure_nginx()
                with nginx_sink(tls) as sink_url:
                    print(f"FCM: nginx HTTP/2 TLS sink at {sink_url}, tokens from the fake")
                    run_fcm("fcm_sink", sink_url, args.fcm_sink_count)
        print(f"  fake FCM counted {fcm_counts}")

    if args.webpush_count:
        ensure_nginx()
        figures["webpush"] = run_webpush(args, tls)
    if args.hms_count:
        ensure_nginx()
        figures["hms"] = run_hms(args, tls, workdir)

    shutil.rmtree(workdir, ignore_errors=True)
    report(args, figures, database)
    if args.profile and args.apns_count and Path(args.profile).exists():
        print(f"\nprofile of the server during the APNs fan-out ({args.profile}):")
        print("\n".join(summarize_profile(args.profile)))
    print(json.dumps({k: {n: round(v, 2) for n, v in f.items()} for k, f in figures.items()}))


def run_webpush(args: argparse.Namespace, tls: TlsFiles) -> dict[str, float]:
    from benchmarks.webpush_crypto import subscriptions

    [keys] = subscriptions(1)

    def set_webpush(url: str, app_id: str) -> None:
        pushhub(
            "apps", "set-webpush", app_id, "--subject", "mailto:bench@example.com",
            database_url=url,
        )  # fmt: skip

    with nginx_sink(tls) as sink_url:
        port = sink_url.rsplit(":", 1)[1]
        print(f"Web Push: nginx HTTP/2 TLS sink at {sink_url} as localhost:{port}", flush=True)
        env = {
            "PUSHHUB_WEB_PUSH_ALLOWED_HOSTS": f"localhost:{port}",
            "PUSHHUB_WEB_PUSH_CA_FILE": str(tls.ca_file),
        }
        if args.webpush_threads is not None:
            env["PUSHHUB_WEB_PUSH_ENCRYPTION_THREADS"] = str(args.webpush_threads)
        endpoints = (f"https://localhost:{port}/wpush/", keys.p256dh, keys.auth)
        results = run_platform(
            args, Platform.WEB_PUSH, args.webpush_count, env, set_webpush, None, endpoints
        )
    return summary(results)


def run_hms(args: argparse.Namespace, tls: TlsFiles, workdir: Path) -> dict[str, float]:
    secret = workdir / "hms-secret"
    secret.write_text("bench-secret")

    def set_hms(url: str, app_id: str) -> None:
        pushhub(
            "apps", "set-hms", app_id, "--client-id", "104000001",
            "--client-secret-file", str(secret), database_url=url,
        )  # fmt: skip

    with nginx_sink(tls) as sink_url:
        print(f"HMS: nginx HTTP/2 TLS sink at {sink_url} (token endpoint too)", flush=True)
        env = {
            "PUSHHUB_HMS_ENDPOINT": sink_url,
            "PUSHHUB_HMS_TOKEN_ENDPOINT": f"{sink_url}/oauth2/v3/token",
            "PUSHHUB_HMS_CA_FILE": str(tls.ca_file),
        }
        return summary(run_platform(args, Platform.HMS, args.hms_count, env, set_hms, None))


def report(args: argparse.Namespace, figures: dict[str, dict[str, float]], database: str) -> None:
    runs = f"median of {args.repeat}" if args.repeat > 1 else "one broadcast"
    print(f"\ndelivery, {database}, {runs} per platform:")
    if "apns" in figures:
        f = figures["apns"]
        print(f"  APNs, {args.apns_count:,} registrations -> local nginx HTTP/2 TLS sink:")
        _rate_line(f)
        _common_lines(f)
    if "fcm" in figures:
        f = figures["fcm"]
        print(f"  FCM, {args.fcm_count:,} registrations -> fake FCM (tests/fakes/fcm.py):")
        print(
            f"    notifications/s, Publish -> PUBLISHED : {f['rate']:9,.0f}  "
            "(bounded by the fake: pure-Python h2 that verifies every request; "
            "not a PushHub figure)"
        )
        _common_lines(f)
    if "fcm_sink" in figures:
        f = figures["fcm_sink"]
        print(f"  FCM, {args.fcm_sink_count:,} registrations -> local nginx HTTP/2 TLS sink:")
        _rate_line(f)
        _common_lines(f)
    if "webpush" in figures:
        f = figures["webpush"]
        print(f"  Web Push, {args.webpush_count:,} registrations -> local nginx HTTP/2 TLS sink:")
        _rate_line(f, TARGET_WEBPUSH_RATE)
        _common_lines(f)
    if "hms" in figures:
        f = figures["hms"]
        print(f"  HMS, {args.hms_count:,} registrations -> local nginx HTTP/2 TLS sink:")
        _rate_line(f, TARGET_HMS_RATE, "recipients/s")
        _common_lines(f)
    print("  for comparison:")
    for name, figure in COMPARISONS:
        print(f"    {name:<24} {figure}")


def _rate_line(
    f: dict[str, float], target: int = TARGET_RATE, unit: str = "notifications/s"
) -> None:
    print(
        f"    {unit + ', Publish -> PUBLISHED':38}: {f['rate']:9,.0f}  "
        f"(target >= {target:,}: {_mark(f['rate'] >= target)})"
    )


def _common_lines(f: dict[str, float]) -> None:
    print(f"    sent / failed                         : {f['sent']:9,.0f} / {f['failed']:,.0f}")
    print(
        f"    server peak RSS (VmHWM)               : {f['peak_rss_mb']:9.1f} MB "
        f"(target <= {TARGET_RSS_MB} MB: {_mark(f['peak_rss_mb'] <= TARGET_RSS_MB)}; "
        f"{f['idle_rss_mb']:.1f} MB before the publish)"
    )
    print(
        f"    server CPU per notification           : {f['cpu_us']:9.1f} us "
        f"(event-loop thread {f['loop_cpu_us']:.1f} us)"
    )
    # On a shared machine the rate says how much CPU the others left; this says so.
    cores = os.cpu_count() or 1
    print(
        f"    server cores busy (rate x CPU)        : {f['rate'] * f['cpu_us'] / 1e6:9.2f} "
        f"of {cores} (all {cores} at this CPU cost: {cores * 1e6 / f['cpu_us']:,.0f}/s, "
        "before the sink's share)"
    )
    print(
        f"    RegisterDevice p99 during fan-out     : {f['p99_ms']:9.2f} ms "
        f"(target <= {TARGET_P99_MS} ms: {_mark(f['p99_ms'] <= TARGET_P99_MS)}; "
        f"p50 {f['p50_ms']:.2f} ms)"
    )


if __name__ == "__main__":
    main()
