"""What a NOTIFY adds to a small write transaction, on PostgreSQL (docs/fleet.md).

A checkpoint is a small write transaction, one per chunk of a fan-out. This
times --count such transactions (an UPDATE of one row, as the checkpoint's
first statement is) through the store's own Database, without and then with
the change feed's announce() in each, --rounds times alternating, while
--listeners connections LISTEN on the channel (the other processes of a
fleet). Prints the median microseconds per transaction of each, and the
difference: what a NOTIFY per chunk would cost the writer.

    .venv/bin/python -m benchmarks.notify_cost
    .venv/bin/python -m benchmarks.notify_cost --count 5000 --listeners 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg
import sqlalchemy as sa

from benchmarks.common import fresh_postgres_url
from pushhub_server.store import Database
from pushhub_server.store.change_feed import CHANNEL, Change, announce

_TABLE = sa.text("CREATE TABLE cursor_row (id int PRIMARY KEY, cursor bigint NOT NULL)")
_UPDATE = sa.text("UPDATE cursor_row SET cursor = cursor + 1 WHERE id = 1")


async def timed(db: Database, count: int, notify: bool) -> float:
    """Microseconds per transaction."""
    started = time.perf_counter()
    for _ in range(count):
        async with db.write() as conn:
            await conn.execute(_UPDATE)
            if notify:
                await announce(conn, Change.STATUS, "0190a5b2-7c3d-7000-8000-000000000001")
    return (time.perf_counter() - started) / count * 1e6


async def measure(url: str, count: int, rounds: int, listeners: int) -> None:
    db = Database.from_url(url)
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    heard = [0]
    connections = [await asyncpg.connect(dsn) for _ in range(listeners)]
    try:
        for connection in connections:
            await connection.add_listener(CHANNEL, lambda *_: heard.__setitem__(0, heard[0] + 1))
        async with db.write() as conn:
            await conn.execute(_TABLE)
            await conn.execute(sa.text("INSERT INTO cursor_row VALUES (1, 0)"))
        await timed(db, count // 10, notify=True)  # warm the pool and the statements
        plain, notifying = [], []
        for _ in range(rounds):
            plain.append(await timed(db, count, notify=False))
            notifying.append(await timed(db, count, notify=True))
        before, after = statistics.median(plain), statistics.median(notifying)
        print(f"without NOTIFY: {before:.0f} us/transaction (median of {rounds})")
        print(f"with NOTIFY:    {after:.0f} us/transaction, {listeners} listeners")
        print(f"difference:     {after - before:+.0f} us ({after / before:.2f}x);")
        print(f"notifications heard: {heard[0]}")
    finally:
        for connection in connections:
            await connection.close()
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000, help="transactions per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--listeners", type=int, default=2)
    parser.add_argument("--pg-database", default="pushhub_notify_cost")
    args = parser.parse_args()
    url = asyncio.run(fresh_postgres_url(args.pg_database))
    asyncio.run(measure(url, args.count, args.rounds, args.listeners))


if __name__ == "__main__":
    main()
