"""Publish-to-first-delivery latency across processes, on PostgreSQL (docs/fleet.md).

An api-role `pushhub serve` answers the Publish; a delivery-role one, a
separate process sharing only the database, delivers it to the simulator,
which records each delivery's time in the inbox. Per Publish (one recipient):
the time from just before the Publish call to the inbox row's delivered_at
(both clocks are this host's). Without the change feed the delivery process
learns of the Publish on its next scheduler poll (--poll, 5 s by default, the
service's default), so the latency is spread over that interval; with it, the
Publish's NOTIFY wakes the delivery process at once.

    .venv/bin/python -m benchmarks.fleet_latency                 # 20 publishes
    PYTHONPATH=/work/main/src:/work/main/generated/python \\
        .venv/bin/python -m benchmarks.fleet_latency               # the same, on main

Publishes go one after the other, each 0-1 s (random) after the previous one
was delivered. The delivery process's poll restarts after each claim, so
without the feed each Publish waits most of a poll (4-5 s at 5 s); a Publish
at a random moment would wait half of one on average. Prints each latency,
then min / median / max.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

import asyncpg
import grpc

from benchmarks.common import create_app, free_port, fresh_postgres_url, pushhub_server
from pushhub.v1 import common_pb2, publish_pb2, registration_pb2

PUBLISH = "/pushhub.v1.PublishService/Publish"
REGISTER = "/pushhub.v1.DeviceRegistrationService/RegisterDevice"
DELIVERED = "SELECT delivered_at FROM inbox WHERE message_id = $1 ORDER BY id LIMIT 1"
# A Publish not delivered within this is reported as lost (never seen yet).
GIVE_UP_SECONDS = 30.0


async def register_one(target: str, server_key: str) -> None:
    auth = (("authorization", f"Bearer {server_key}"),)
    request = registration_pb2.RegisterDeviceRequest(
        platform=common_pb2.PLATFORM_APNS, device_token="ab" * 32
    )
    async with grpc.aio.insecure_channel(target) as channel:
        await channel.unary_unary(REGISTER)(request.SerializeToString(), metadata=auth)


async def latencies(target: str, server_key: str, url: str, count: int) -> list[float]:
    auth = (("authorization", f"Bearer {server_key}"),)
    request = publish_pb2.PublishRequest(broadcast=True, message="latency").SerializeToString()
    found: list[float] = []
    database = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            publish = channel.unary_unary(PUBLISH)
            for _ in range(count):
                await asyncio.sleep(random.uniform(0, 1))
                started = time.time()
                raw = await publish(request, metadata=auth)
                message_id = publish_pb2.PublishResponse.FromString(raw).message_id
                delivered_at = await first_delivery(database, message_id)
                found.append(delivered_at - started)
                print(f"  {found[-1] * 1000:8.1f} ms", flush=True)
    finally:
        await database.close()
    return found


async def first_delivery(database: asyncpg.Connection, message_id: str) -> float:
    """The inbox's delivered_at (epoch seconds) of the message's first delivery."""
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        micros = await database.fetchval(DELIVERED, message_id)
        if micros is not None:
            return micros / 1_000_000
        await asyncio.sleep(0.005)
    raise SystemExit(f"message {message_id} not delivered within {GIVE_UP_SECONDS} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20, help="publishes")
    parser.add_argument("--poll", type=float, default=5.0, help="scheduler poll seconds")
    parser.add_argument("--pg-database", default="pushhub_fleet_latency")
    args = parser.parse_args()

    url = asyncio.run(fresh_postgres_url(args.pg_database))
    api_port, delivery_port = free_port(), free_port()
    settings = {"PUSHHUB_SCHEDULER_POLL_INTERVAL": str(args.poll)}
    with pushhub_server(url, api_port, {**settings, "PUSHHUB_ROLE": "api"}):
        keys = create_app(url)
        target = f"127.0.0.1:{api_port}"
        asyncio.run(register_one(target, keys["server_key"]))
        with pushhub_server(url, delivery_port, {**settings, "PUSHHUB_ROLE": "delivery"}):
            found = asyncio.run(latencies(target, keys["server_key"], url, args.count))
    milliseconds = sorted(seconds * 1000 for seconds in found)
    print(
        f"publish on the api process to first delivery on the delivery process"
        f" ({args.count} publishes, scheduler poll {args.poll} s): min {milliseconds[0]:.1f} ms,"
        f" median {statistics.median(milliseconds):.1f} ms, max {milliseconds[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
