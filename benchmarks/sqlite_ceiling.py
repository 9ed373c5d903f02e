"""SQLite's own ceiling for the bulk-registration write path: figures, not assertions.

The streaming import (benchmarks/registration.py) reaches well below the
30,000 registrations/s target through the server. This measures what the
engine itself allows, with no gRPC, asyncio or aiosqlite in the way: the
statements one BulkUpsert transaction runs for 1,000 new registrations
(2 channels and 3 tags each, as in stream_benchmark), on a database made by
`pushhub migrate`, replayed with the stdlib sqlite3 module on one connection
with the server's pragmas, autocommit mode, BEGIN IMMEDIATE ... COMMIT per batch.

Per batch, as store.upsert runs them for items without a registration_id:
the lookup of the batch's token digests (json_each IN list); no reserved-id
or subscription lookups (no item names an id, no stored row is touched); the
INSERT of the registrations; the channel lookup (the first batch also inserts
the 51 channels and looks them up again); the INSERTs of the subscriptions
and tags. Statements, pragmas and row values come from the store modules
themselves (token digest and fingerprint through RegistrationInput, columns
through records.content_values, ids through core.ids.new_ids). Channel ids
are made before timing; the server makes them in its first batch.

Variants, each on a fresh database:

- exact: rows built inside the timed loop (RegistrationInput with its two
  digests, content_values, new_ids and the row tuples: the server's Python per
  item, without protobuf, validation rules or plan_upsert);
- exact, rows prebuilt: every parameter built before timing (engine and binding);
- no token index: as prebuilt, with uq_registrations_token gone (the table is
  rebuilt without it: SQLite cannot drop a constraint's index) and no lookup;
- ordered token key: as prebuilt, with ascending token_hash values, so the
  unique index grows at its right edge like the time-ordered ids;
- exact, one commit per 5 batches: as prebuilt, 5,000 items per transaction.

Each line also gives the rates over the first and the last tenth of the
batches (the table grows), the commit share of the time (autocheckpoints run
inside COMMIT), the bytes this process wrote per registration (wchar of
/proc/self/io: WAL frames plus checkpoint copies) and the database growth
(page_count) per registration.

    .venv/bin/python -m benchmarks.sqlite_ceiling [--count 200000]
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import create_app, pushhub
from pushhub_server.core.clock import to_micros
from pushhub_server.core.ids import new_ids
from pushhub_server.core.models import Platform, RegistrationInput
from pushhub_server.store.database import _SQLITE_PRAGMAS
from pushhub_server.store.records import content_values
from pushhub_server.store.upsert import (
    _CHANNELS,
    _INSERT_CHANNEL,
    _INSERT_REGISTRATION,
    _INSERT_SUBSCRIPTION,
    _INSERT_TAG,
    ROWS_BY_TOKEN,
)

CHUNK = 1000
Row = tuple[Any, ...]


@dataclass(frozen=True)
class Variant:
    name: str
    prebuilt: bool = True
    token_lookup: bool = True
    ordered_tokens: bool = False
    batches_per_commit: int = 1


VARIANTS = (
    Variant("exact", prebuilt=False),
    Variant("exact, rows prebuilt"),
    Variant("no token index", token_lookup=False),
    Variant("ordered token key", ordered_tokens=True),
    Variant("exact, one commit per 5 batches", batches_per_commit=5),
)


@dataclass(frozen=True)
class Target:
    """A fresh database's writer connection, its app, and the ids its channels will get."""

    conn: sqlite3.Connection
    app_id: str
    channel_ids: dict[str, str]


@dataclass(frozen=True)
class Batch:
    """One transaction's parameters, in the store's row shapes; lists bound as JSON."""

    token_hashes: str
    channel_names: list[str]
    registrations: list[Row]
    subscriptions: list[Row]
    tags: list[Row]


@dataclass
class Outcome:
    seconds: float
    commit_seconds: float
    commits: int
    written_bytes: int
    grown_bytes: int
    # Elapsed seconds at the end of each batch (after its COMMIT, if it had one).
    marks: list[float]

    def tenth_rates(self) -> tuple[float, float]:
        """Registrations/s over the first and the last tenth of the batches."""
        tenth = max(1, len(self.marks) // 10)
        before_last = self.marks[-tenth - 1] if len(self.marks) > tenth else 0.0
        first = tenth * CHUNK / self.marks[tenth - 1]
        return first, tenth * CHUNK / (self.marks[-1] - before_last)


def item(index: int) -> RegistrationInput:
    """stream_benchmark's registration(index), as validation hands it to the store."""
    return RegistrationInput(
        platform=Platform.APNS if index % 2 else Platform.FCM,
        device_token=f"{index:016x}" * 10,
        channels=(f"news-{index % 50}", "sports"),
        tags=(f"lang:{index % 7}", f"tier-{index % 3}", "beta"),
        user_id=None,
        expires_at=None,
        metadata={},
        templates={},
        selector=None,
    )


def build_batch(target: Target, indexes: range, ordered: bool) -> Batch:
    items = [item(index) for index in indexes]
    keys = [f"{index:064x}" for index in indexes] if ordered else [i.token_hash for i in items]
    now = to_micros(datetime.now(UTC))
    ids = new_ids(len(items))
    registrations = [
        (rid, target.app_id, *content_values(entry), key, entry.fingerprint, now, now)
        for rid, entry, key in zip(ids, items, keys, strict=True)
    ]
    subscription_ids = iter(new_ids(sum(len(entry.channels) for entry in items)))
    subscriptions = [
        (next(subscription_ids), rid, target.channel_ids[name], position)
        for rid, entry in zip(ids, items, strict=True)
        for position, name in enumerate(entry.channels)
    ]
    tags = [
        (rid, tag, target.app_id, position)
        for rid, entry in zip(ids, items, strict=True)
        for position, tag in enumerate(entry.tags)
    ]
    names = sorted({name for entry in items for name in entry.channels})
    return Batch(json.dumps(list(set(keys))), names, registrations, subscriptions, tags)


def batches(target: Target, count: int, variant: Variant) -> Iterable[Batch]:
    """Built one by one inside the timed loop, or all of them before it."""
    built = (
        build_batch(target, range(start, min(start + CHUNK, count)), variant.ordered_tokens)
        for start in range(0, count, CHUNK)
    )
    return list(built) if variant.prebuilt else built


def write_batch(target: Target, batch: Batch, variant: Variant) -> None:
    """BulkUpsert.run's statements for a batch of new registrations."""
    conn, app_id = target.conn, target.app_id
    if variant.token_lookup:
        conn.execute(ROWS_BY_TOKEN.sqlite_sql, (app_id, batch.token_hashes)).fetchall()
    conn.executemany(_INSERT_REGISTRATION.sqlite_sql(), batch.registrations)
    names = json.dumps(batch.channel_names)
    found = dict(conn.execute(_CHANNELS.sqlite_sql, (app_id, names)).fetchall())
    missing = [name for name in batch.channel_names if name not in found]
    if missing:  # the first batch only
        now = to_micros(datetime.now(UTC))
        rows = [(target.channel_ids[name], app_id, name, now) for name in missing]
        conn.executemany(_INSERT_CHANNEL.sqlite_sql(), rows)
        conn.execute(_CHANNELS.sqlite_sql, (app_id, json.dumps(missing))).fetchall()
    conn.executemany(_INSERT_SUBSCRIPTION.sqlite_sql(), batch.subscriptions)
    conn.executemany(_INSERT_TAG.sqlite_sql(), batch.tags)


def written_bytes() -> int:
    """Bytes this process has passed to write(2) and friends so far."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def database_bytes(conn: sqlite3.Connection) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    return int(pages * conn.execute("PRAGMA page_size").fetchone()[0])


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def run_variant(target: Target, count: int, variant: Variant) -> Outcome:
    conn, work = target.conn, batches(target, count, variant)
    size_before, written_before = database_bytes(conn), written_bytes()
    commit_seconds, commits, marks = 0.0, 0, []
    gc.collect()  # not the garbage of building the rows
    started = time.perf_counter()
    for number, batch in enumerate(work, start=1):
        if (number - 1) % variant.batches_per_commit == 0:
            conn.execute("BEGIN IMMEDIATE")
        write_batch(target, batch, variant)
        if number % variant.batches_per_commit == 0:
            commit_seconds += timed(lambda: conn.execute("COMMIT"))
            commits += 1
        marks.append(time.perf_counter() - started)
    if conn.in_transaction:
        commit_seconds += timed(lambda: conn.execute("COMMIT"))
        commits += 1
    seconds = time.perf_counter() - started
    written = written_bytes() - written_before
    grown = database_bytes(conn) - size_before
    return Outcome(seconds, commit_seconds, commits, written, grown, marks)


def drop_token_index(conn: sqlite3.Connection) -> None:
    """Rebuilds the (empty) registrations table without uq_registrations_token."""
    query = "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'registrations' AND sql NOT NULL"
    schema: dict[str, list[str]] = {}
    for kind, sql in conn.execute(query):
        schema.setdefault(kind, []).append(sql)
    [table] = schema["table"]
    pattern = r",\s*CONSTRAINT uq_registrations_token UNIQUE \([^)]*\)"
    stripped, found = re.subn(pattern, "", table)
    if found != 1:
        raise RuntimeError("uq_registrations_token not found in the registrations table")
    conn.executescript(";\n".join(["DROP TABLE registrations", stripped, *schema["index"]]))


def fresh_database(directory: Path, name: str) -> Target:
    """A migrated database with one app, opened as the server's writer is."""
    path = directory / f"{name}.db"
    url = f"sqlite+aiosqlite:///{path}"
    pushhub("migrate", database_url=url)
    app_id = create_app(url)["app_id"]
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in _SQLITE_PRAGMAS:
        conn.execute(pragma)
    channels = sorted({f"news-{index}" for index in range(50)} | {"sports"})
    return Target(conn, app_id, dict(zip(channels, new_ids(len(channels)), strict=True)))


def check_rows(conn: sqlite3.Connection, count: int) -> str:
    counts = [
        conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("registrations", "subscriptions", "registration_tags")
    ]
    return "rows ok" if counts == [count, 2 * count, 3 * count] else f"ROWS {counts}"


def report(variant: Variant, count: int, outcome: Outcome, rows: str) -> None:
    first, last = outcome.tenth_rates()
    print(
        f"{variant.name:32}: {count / outcome.seconds:7.0f} registrations/s"
        f" (first tenth {first:5.0f}/s, last tenth {last:5.0f}/s;"
        f" commit {outcome.commit_seconds / outcome.seconds:4.0%} of {outcome.seconds:5.1f} s,"
        f" {outcome.commits} commits; written {outcome.written_bytes / count:6.0f} B/reg,"
        f" db +{outcome.grown_bytes / count:4.0f} B/reg; {rows})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200_000)
    args = parser.parse_args()
    print(f"SQLite {sqlite3.sqlite_version}, {args.count} registrations per variant", flush=True)
    with tempfile.TemporaryDirectory(prefix="pushhub-ceiling-") as directory:
        for number, variant in enumerate(VARIANTS, start=1):
            target = fresh_database(Path(directory), f"variant-{number}")
            if not variant.token_lookup:
                drop_token_index(target.conn)
            outcome = run_variant(target, args.count, variant)
            report(variant, args.count, outcome, check_rows(target.conn, args.count))
            target.conn.close()


if __name__ == "__main__":
    main()
