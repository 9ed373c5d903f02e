"""COPY or prepared INSERT ... unnest() for a few rows on PostgreSQL: figures, not
assertions (they chose store.sql.COPY_MIN_ROWS).

Each transaction writes n rows into subscriptions and n into registration_tags,
through store.sql.BulkInsert with COPY and without, alternating, on one pooled
connection. Printed per transaction: the CPU of that connection's PostgreSQL
backend (/proc; run where PostgreSQL runs), of this process, and the wall time.

    .venv/bin/python -m benchmarks.pg_small_writes [--rows 1 3 10 30 100 1000] [--seconds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from itertools import count

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchmarks.common import cpu_seconds, fresh_postgres_url
from pushhub_server.store.schema import metadata, registration_tags, subscriptions
from pushhub_server.store.sql import BulkInsert

DATABASE = "pushhub_bench_small_writes"
ROUNDS = 3
# BulkInsert's copy_from: COPY for every size, or never.
METHODS = {"COPY": 1, "INSERT unnest": sys.maxsize}
_ids = count()


def writers(copy_from: int) -> tuple[BulkInsert, BulkInsert]:
    return (
        BulkInsert(
            subscriptions, "id", "registration_id", "channel_id", "position", copy_from=copy_from
        ),
        BulkInsert(
            registration_tags, "registration_id", "tag", "app_id", "position", copy_from=copy_from
        ),
    )


async def transactions(
    engine: AsyncEngine, writes: tuple[BulkInsert, BulkInsert], rows: int, seconds: float
) -> dict[str, float]:
    """As many transactions as fit in seconds: the CPU and wall milliseconds of each."""
    async with engine.connect() as conn:
        backend = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
        await conn.commit()
        done = 0
        start = (time.perf_counter(), time.process_time(), cpu_seconds(backend))
        while time.perf_counter() - start[0] < seconds:
            async with conn.begin():
                base = next(_ids) * 10_000
                ids = [f"r{base + n:020d}" for n in range(rows)]
                await writes[0].run(conn, [(i, i, "c" * 20, n) for n, i in enumerate(ids)])
                await writes[1].run(conn, [(i, "lang:en", "a" * 20, n) for n, i in enumerate(ids)])
            done += 1
        wall = time.perf_counter() - start[0]
        client = time.process_time() - start[1]
        server = cpu_seconds(backend) - start[2]
    return {
        "backend": server * 1000 / done,
        "client": client * 1000 / done,
        "wall": wall * 1000 / done,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 3, 10, 30, 100, 1000])
    parser.add_argument("--seconds", type=float, default=2.0, help="per method, size and round")
    args = parser.parse_args()
    url = await fresh_postgres_url(DATABASE)
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.exec_driver_sql(f'ALTER DATABASE "{DATABASE}" SET synchronous_commit = off')
    await engine.dispose()  # the setting applies to new connections
    print("ms per transaction (n rows into each of 2 tables), medians of 3 alternating rounds:")
    print(f"{'rows':>5} {'method':14} {'backend CPU':>11} {'client CPU':>10} {'wall':>7}")
    for rows in args.rows:
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in METHODS}
        for _ in range(ROUNDS):
            for name, copy_from in METHODS.items():
                figures = await transactions(engine, writers(copy_from), rows, args.seconds)
                samples[name].append(figures)
        for name, rounds in samples.items():
            med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
            print(
                f"{rows:5} {name:14} {med['backend']:11.3f} {med['client']:10.3f} "
                f"{med['wall']:7.3f}"
            )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
