"""WebPushProvider alone against the local nginx HTTP/2 TLS sink: figures, not assertions.

The sink is benchmarks/http2_clients.py's nginx (``location /wpush/`` answers
201, as a push service accepts a message). Endpoints are
``https://localhost:PORT/wpush/<n>``, with ``localhost:PORT`` listed as
PUSHHUB_WEB_PUSH_ALLOWED_HOSTS would list it, so the real address guard
resolves and pins it. Recipients encrypt to --subscriptions distinct browser
keys in turn. As the dispatcher does, batches of 1,000 go out two at a time.

For each of --rounds rounds (median printed), three measurements of --count
notifications each:

1. HTTP only: the same requests, encrypted beforehand, posted through an
   Http2Client (what the provider's transport costs on its own);
2. encryption only: payloads.webpush.encrypt on N threads;
3. the provider end to end with N encryption threads: notifications/s, and CPU
   µs per notification for the whole process (every thread) and for the event
   loop's thread alone;

2 and 3 for each N of --encryption-threads (default 1 and 2).

nginx runs in its own process; its CPU is not counted. The machine has two
cores and may be shared: run one benchmark at a time, and read the load
average printed first.

    .venv/bin/python -m benchmarks.webpush_provider [--count 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.http2_clients import nginx_sink
from benchmarks.webpush_crypto import PAYLOAD, subscriptions
from pushhub_server.core.clock import SystemClock
from pushhub_server.core.messages import Delivery, DeliveryOutcome
from pushhub_server.core.models import Platform
from pushhub_server.core.web_push import subscription_keys, web_push_credentials
from pushhub_server.core.web_push_endpoints import EndpointPolicy
from pushhub_server.delivery.payloads.webpush import encrypt, webpush_headers
from pushhub_server.delivery.providers.http2 import Http2Client, Http2Request
from pushhub_server.delivery.providers.vapid import VapidTokens
from pushhub_server.delivery.providers.webpush import WebPushProvider
from tests.fakes.tls import issue_tls_files

BATCH = 1000
PARALLEL_BATCHES = 2


async def in_batches(
    items: Sequence[object], send: Callable[[Sequence[object]], Awaitable[None]]
) -> None:
    """PARALLEL_BATCHES workers, each sending BATCH-sized slices in turn."""
    starts = list(range(0, len(items), BATCH))[::-1]

    async def worker() -> None:
        while starts:
            start = starts.pop()
            await send(items[start : start + BATCH])

    await asyncio.gather(*(worker() for _ in range(PARALLEL_BATCHES)))


async def timed(run: Callable[[], Awaitable[None]], count: int) -> tuple[float, float, float]:
    """(notifications/s, process CPU µs each, event-loop thread CPU µs each)."""
    wall, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    await run()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    loop_cpu = time.thread_time() - loop_cpu
    return count / wall, cpu / count * 1e6, loop_cpu / count * 1e6


async def one_round(
    base: str,
    policy: EndpointPolicy,
    ca_file: str,
    deliveries: list[Delivery],
    thread_counts: list[int],
) -> dict[str, tuple[float, float, float]]:
    figures = {}
    count = len(deliveries)
    credentials = web_push_credentials("", "mailto:bench@example.com")

    # 1. HTTP only: bodies encrypted beforehand, one header list, pinned like the provider.
    client = Http2Client(max_connections=1, ca_file=ca_file)
    tokens = VapidTokens(credentials, SystemClock())
    headers = [
        "Content-Encoding: aes128gcm",
        "Content-Type: application/octet-stream",
        "Accept:",
        "Expect:",
        tokens.header(base.split("/wpush/")[0]),
        "TTL: 2419200",
    ]
    port = base.split(":")[2].split("/")[0]
    pin = [f"localhost:{port}:127.0.0.1"]
    requests = [
        Http2Request(
            d.device_token, headers, encrypt(d.payload, subscription_keys(d.web_push_keys)), pin
        )  # type: ignore[arg-type]
        for d in deliveries
    ]

    async def post(batch: Sequence[object]) -> None:
        responses = await client.post_many(batch)  # type: ignore[arg-type]
        assert all(r.status == 201 for r in responses), responses[0]

    await client.post_many(requests[:BATCH])  # connect before timing
    figures["HTTP only (Http2Client, pre-encrypted)"] = await timed(
        lambda: in_batches(requests, post), count
    )
    await client.close()

    for threads in thread_counts:
        # 2. Encryption only, on the provider's number of threads.
        async def encrypt_all(threads: int = threads) -> None:
            await asyncio.gather(
                *(asyncio.to_thread(_encrypt_part, deliveries[i::threads]) for i in range(threads))
            )

        figures[f"encryption only ({threads} thread(s))"] = await timed(encrypt_all, count)

        # 3. The provider end to end.
        provider = WebPushProvider(
            credentials,
            SystemClock(),
            policy=policy,
            ca_file=ca_file,
            encryption_threads=threads,
        )
        await provider.send(deliveries[:BATCH])

        async def send(batch: Sequence[object], provider: WebPushProvider = provider) -> None:
            results = await provider.send(batch)  # type: ignore[arg-type]
            assert all(r.outcome is DeliveryOutcome.SENT for r in results), results[0]

        figures[f"WebPushProvider, {threads} encryption thread(s)"] = await timed(
            lambda: in_batches(deliveries, send), count
        )
        await provider.close()
    return figures


def _encrypt_part(deliveries: Sequence[Delivery]) -> None:
    for delivery in deliveries:
        encrypt(delivery.payload, subscription_keys(delivery.web_push_keys))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--encryption-threads", default="1,2", help="comma-separated counts to measure"
    )
    args = parser.parse_args()
    threads = [int(count) for count in args.encryption_threads.split(",")]
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    tls = issue_tls_files(Path(tempfile.mkdtemp(prefix="pushhub-webpush-bench-")))
    keys = subscriptions(args.subscriptions)
    payload = json.dumps(PAYLOAD, separators=(",", ":")).encode()
    headers = webpush_headers(None, "high", "spring-sale")
    with nginx_sink(tls) as sink_url:
        port = sink_url.rsplit(":", 1)[1]
        base = f"https://localhost:{port}/wpush/"
        policy = EndpointPolicy.from_env(f"localhost:{port}")
        deliveries = [
            Delivery(
                "msg",
                "app",
                f"reg-{n}",
                Platform.WEB_PUSH,
                f"{base}{n}",
                payload,
                headers,
                keys[n % len(keys)],
            )
            for n in range(args.count)
        ]
        print(
            f"nginx HTTP/2 TLS sink at {sink_url}; {args.count:,} notifications per "
            f"measurement, {args.subscriptions:,} distinct subscriptions, "
            f"median of {args.rounds} rounds",
            flush=True,
        )
        rounds = []
        for number in range(args.rounds):
            rounds.append(
                asyncio.run(one_round(base, policy, str(tls.ca_file), deliveries, threads))
            )
            print(f"  round {number + 1} done ({datetime.now(UTC):%H:%M:%S})", flush=True)
    print(f"{'':42s} {'notif/s':>9s} {'CPU µs/notif':>13s} {'loop CPU µs':>12s}")
    for name in rounds[0]:
        rate, cpu, loop_cpu = (statistics.median(r[name][i] for r in rounds) for i in range(3))
        print(f"{name:42s} {rate:9,.0f} {cpu:13.1f} {loop_cpu:12.1f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end; threads {threading.active_count()}")


if __name__ == "__main__":
    main()
