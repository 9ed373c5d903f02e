"""Partition switch benchmark: what one process pays between a run's partitions.

Figures, not assertions (docs/fleet.md, docs/performance.md). One broadcast of
--count recipients on PostgreSQL, cut into partitions of --partition-size,
delivered in this process by the server's own scheduler and dispatcher to a
provider that accepts and discards, timing the start of every chunk's send. It
prints the median time between two sends within a partition (one chunk's cycle)
and between a partition's last send and the next partition's first (the
switch: a claim, and the first page read and rendered), and the rate.

Every chunk is full (--count a multiple of --chunk-size, every registration
live), so partition k's sends are numbers k*(size/chunk) to (k+1)*(size/chunk)-1.
It uses only what main had before the switch was reworked, so the same script
measures both (PYTHONPATH=/work/main/src:/work/main/generated/python for main):

    .venv/bin/python -m benchmarks.partition_switch --count 300000
    .venv/bin/python -m benchmarks.partition_switch --count 300000 --partition-size 20000

PostgreSQL at postgres@127.0.0.1:5432; the benchmark drops and recreates its own
database (--pg-database, default pushhub_switch).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from benchmarks.common import create_app, fresh_postgres_url
from benchmarks.fleet import seed
from pushhub_server.core.clock import SystemClock
from pushhub_server.core.ids import new_id
from pushhub_server.core.messages import (
    Audience,
    Delivery,
    DeliveryOutcome,
    DeliveryResult,
    Message,
    MessageState,
    Schedule,
)
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.ports import DeliveryProvider
from pushhub_server.delivery.dispatcher import Dispatcher
from pushhub_server.delivery.scheduler import Scheduler
from pushhub_server.delivery.status_signal import InProcessStatusSignal
from pushhub_server.store import Database, SqlAudienceReader, SqlMessageRepository

_SENT = DeliveryResult(DeliveryOutcome.SENT)


class TimedSink:
    """Accepts and discards; remembers when each send started."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        # CPU seconds of this process during the broadcast (status polls included).
        self.cpu = 0.0

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        self.starts.append(time.perf_counter())
        return [_SENT] * len(deliveries)


class TimedStore:
    """The message store, timing each call of the methods a switch makes."""

    TIMED = ("claim_due", "claim_partition", "finish_run", "record_chunk")

    def __init__(self, inner: SqlMessageRepository) -> None:
        self._inner = inner
        self.seconds: dict[str, list[float]] = {name: [] for name in self.TIMED}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if name not in self.TIMED:
            return method

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                self.seconds[name].append(time.perf_counter() - started)

        return timed


async def broadcast(
    url: str, app_id: str, args: argparse.Namespace
) -> tuple[float, TimedSink, TimedStore]:
    """Publishes to everyone and waits for PUBLISHED; returns the seconds it took."""
    db = Database.from_url(url)
    clock = SystemClock()
    messages: Any = TimedStore(SqlMessageRepository(db, args.partition_size))
    sink = TimedSink()

    async def provider_for(app_id: str) -> DeliveryProvider:
        return sink

    # As the server builds it; main before 2026-12-07 had no partition_size here.
    sized = "partition_size" in inspect.signature(Dispatcher).parameters
    dispatcher = Dispatcher(
        messages,
        SqlAudienceReader(db),
        provider_for,
        clock,
        InProcessStatusSignal(),
        chunk_size=args.chunk_size,
        lease=timedelta(seconds=60),
        **({"partition_size": args.partition_size} if sized else {}),
    )
    scheduler = Scheduler(messages, dispatcher, clock, poll_interval=0.2)
    now = clock.now()
    message = Message(
        new_id(),
        app_id,
        NotificationContent(message="Hello, partitions"),
        Audience(broadcast=True),
        Schedule(now),
        now,
    )
    await messages.create(message)
    started, cpu = time.perf_counter(), time.process_time()
    scheduler.start()
    try:
        while True:
            status = await messages.status(app_id, message.message_id)
            if status is not None and status.state is MessageState.PUBLISHED:
                break
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        sink.cpu = time.process_time() - cpu
    finally:
        await scheduler.stop()
        await db.dispose()
    return elapsed, sink, messages


def report(
    elapsed: float, sink: TimedSink, store: TimedStore, args: argparse.Namespace
) -> dict[str, float]:
    per_partition = args.partition_size // args.chunk_size
    gaps = [later - earlier for earlier, later in zip(sink.starts, sink.starts[1:], strict=False)]
    # gaps[i] runs from send i to send i+1: a switch when send i+1 starts a partition.
    switches = [gap for i, gap in enumerate(gaps) if (i + 1) % per_partition == 0]
    within = [gap for i, gap in enumerate(gaps) if (i + 1) % per_partition != 0]
    chunk_ms = statistics.median(within) * 1000
    switch_ms = statistics.median(switches) * 1000 if switches else 0.0
    print(
        f"  {args.count:,} recipients, partitions of {args.partition_size:,}, chunks of "
        f"{args.chunk_size:,}: {len(sink.starts)} sends in {elapsed:.2f} s -> "
        f"{args.count / elapsed:,.0f}/s, {sink.cpu * 1e6 / args.count:.2f} us CPU each; "
        f"between sends: {chunk_ms:.2f} ms within a partition, "
        f"{switch_ms:.2f} ms at the {len(switches)} switches (median; max "
        f"{max(switches, default=0) * 1000:.1f} ms)",
        flush=True,
    )
    calls = ", ".join(
        f"{name} {statistics.median(seconds) * 1000:.2f} ms x{len(seconds)}"
        for name, seconds in store.seconds.items()
        if seconds
    )
    print(f"    store calls (median): {calls}", flush=True)
    return {
        "cpu_us": sink.cpu * 1e6 / args.count,
        "rate": args.count / elapsed,
        "chunk_ms": chunk_ms,
        "switch_ms": switch_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300_000, help="broadcast recipients")
    parser.add_argument("--partition-size", type=int, default=50_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="broadcasts, one after another")
    parser.add_argument("--pg-database", default="pushhub_switch")
    args = parser.parse_args()

    url = asyncio.run(fresh_postgres_url(args.pg_database))
    keys = create_app(url, "switch")  # migrates the new database too
    asyncio.run(seed(url, keys["app_id"], args.count, 0))
    results = [
        report(*asyncio.run(broadcast(url, keys["app_id"], args)), args) for _ in range(args.repeat)
    ]
    median = statistics.median
    print(
        f"median of {len(results)}: {median(r['rate'] for r in results):,.0f}/s, "
        f"{median(r['cpu_us'] for r in results):.2f} us CPU per recipient, "
        f"{median(r['chunk_ms'] for r in results):.2f} ms per chunk, "
        f"{median(r['switch_ms'] for r in results):.2f} ms per switch",
        flush=True,
    )


if __name__ == "__main__":
    main()
