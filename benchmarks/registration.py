"""Registration benchmark: figures, not assertions.

1. Unary RegisterDevice against a bare grpc.aio echo server, same client, same
   run: throughput, p50/p99 latency and the ratio.
2. RegisterDevices streaming 200,000 registrations (2 channels, 3 tags each) on
   SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/registration.py [--unary-seconds 10] [--stream-count 200000]

--metrics compare runs only unary RegisterDevice, with metrics off and on
(PUSHHUB_METRICS_LISTEN), alternating, --repeat times each, and prints both
medians and their ratio (docs/observability.md):

    .venv/bin/python -m benchmarks.registration --metrics compare --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable

import grpc

from benchmarks.common import (
    cpu_seconds,
    create_app,
    describe_latencies,
    free_port,
    fresh_postgres_url,
    pushhub_server,
    server_process,
    sqlite_url,
)
from benchmarks.echo_server import METHOD as ECHO_METHOD
from pushhub.v1 import common_pb2, registration_pb2

REGISTER = "/pushhub.v1.DeviceRegistrationService/RegisterDevice"
REGISTER_MANY = "/pushhub.v1.DeviceRegistrationService/RegisterDevices"
CONCURRENCY = 16
CHUNK = 1000


def registration(index: int) -> registration_pb2.RegisterDeviceRequest:
    return registration_pb2.RegisterDeviceRequest(
        platform=common_pb2.PLATFORM_APNS if index % 2 else common_pb2.PLATFORM_FCM,
        device_token=f"{index:016x}" * 10,
        channels=[f"news-{index % 50}", "sports"],
        tags=[f"lang:{index % 7}", f"tier-{index % 3}", "beta"],
    )


async def unary_run(
    target: str, method: str, payload: Callable[[int], bytes], metadata: tuple, seconds: float
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(10**9))
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(method)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                body = payload(next(counter))
                started = time.perf_counter()
                await call(body, metadata=metadata)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def unary_benchmark(seconds: float) -> None:
    payload = lambda index: registration(index).SerializeToString()  # noqa: E731
    echo_port = free_port()
    echo = [sys.executable, "-m", "benchmarks.echo_server", str(echo_port)]
    with server_process(echo, echo_port):
        echo_rate, echo_lat = asyncio.run(
            unary_run(f"127.0.0.1:{echo_port}", ECHO_METHOD, payload, (), seconds)
        )
    url = sqlite_url()
    keys = create_app(url)
    port = free_port()
    auth = (("authorization", f"Bearer {keys['server_key']}"),)
    with pushhub_server(url, port):
        rate, lat = asyncio.run(unary_run(f"127.0.0.1:{port}", REGISTER, payload, auth, seconds))
    print(f"unary echo baseline : {echo_rate:8.0f} RPC/s, {describe_latencies(echo_lat)}")
    print(f"unary RegisterDevice: {rate:8.0f} RPC/s, {describe_latencies(lat)} (SQLite)")
    print(f"unary ratio         : {rate / echo_rate:8.0%} of the echo baseline (target >= 50%)")


def unary_metrics_comparison(seconds: float, repeat: int) -> None:
    """Unary RegisterDevice with metrics off and on, alternating, one server at a time."""
    payload = lambda index: registration(index).SerializeToString()  # noqa: E731
    url = sqlite_url()
    keys = create_app(url)
    auth = (("authorization", f"Bearer {keys['server_key']}"),)
    rates: dict[bool, list[float]] = {False: [], True: []}
    # Server CPU time per call: steadier than the rate on a machine shared with other work.
    cpu_us: dict[bool, list[float]] = {False: [], True: []}
    for number in range(repeat):
        for metrics in (False, True) if number % 2 == 0 else (True, False):
            port = free_port()
            settings = {"PUSHHUB_METRICS_LISTEN": f"127.0.0.1:{free_port()}"} if metrics else {}
            with pushhub_server(url, port, settings) as process:
                before = cpu_seconds(process.pid)
                rate, lat = asyncio.run(
                    unary_run(f"127.0.0.1:{port}", REGISTER, payload, auth, seconds)
                )
                cpu_us[metrics].append((cpu_seconds(process.pid) - before) * 1e6 / len(lat))
            rates[metrics].append(rate)
            label = "on " if metrics else "off"
            print(
                f"metrics {label}: {rate:8.0f} RPC/s, {describe_latencies(lat)}, "
                f"{cpu_us[metrics][-1]:.0f} us server CPU per call",
                flush=True,
            )
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    cpu_off, cpu_on = statistics.median(cpu_us[False]), statistics.median(cpu_us[True])
    print(f"unary RegisterDevice, metrics off: {off:8.0f} RPC/s, {cpu_off:.0f} us CPU/call")
    print(f"unary RegisterDevice, metrics on : {on:8.0f} RPC/s, {cpu_on:.0f} us CPU/call")
    ratios = f"{on / off:8.3f} rate, {cpu_on / cpu_off:.3f} CPU"
    print(f"on / off (medians of {repeat})       : {ratios}")


async def stream_run(target: str, server_key: str, count: int) -> tuple[float, int]:
    requests = [
        registration_pb2.RegisterDevicesRequest(
            registrations=[registration(i) for i in range(start, min(start + CHUNK, count))]
        ).SerializeToString()
        for start in range(0, count, CHUNK)
    ]
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.stream_stream(REGISTER_MANY)(
            iter(requests), metadata=(("authorization", f"Bearer {server_key}"),)
        )
        started = time.perf_counter()
        async for raw in call:
            response = registration_pb2.RegisterDevicesResponse.FromString(raw)
            errors += sum(1 for result in response.results if result.HasField("error"))
        elapsed = time.perf_counter() - started
    return count / elapsed, errors


def stream_benchmark(name: str, url: str, count: int) -> None:
    keys = create_app(url)
    port = free_port()
    with pushhub_server(url, port):
        rate, errors = asyncio.run(stream_run(f"127.0.0.1:{port}", keys["server_key"], count))
    print(
        f"RegisterDevices {name:10}: {rate:8.0f} registrations/s ({count} items, {errors} errors)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--unary-seconds", type=float, default=10.0)
    parser.add_argument("--stream-count", type=int, default=200_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--metrics", choices=("off", "compare"), default="off")
    parser.add_argument("--repeat", type=int, default=5, help="runs each way with --metrics")
    args = parser.parse_args()
    if args.metrics == "compare":
        unary_metrics_comparison(args.unary_seconds, args.repeat)
        return
    unary_benchmark(args.unary_seconds)
    stream_benchmark("SQLite", sqlite_url(), args.stream_count)
    if not args.skip_postgres:
        stream_benchmark("PostgreSQL", asyncio.run(fresh_postgres_url()), args.stream_count)


if __name__ == "__main__":
    main()
