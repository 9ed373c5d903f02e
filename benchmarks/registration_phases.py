"""Where a bulk-imported registration's CPU goes: figures, not assertions.

RegisterDevices handles each message of 1,000 registrations in phases, all in
one Python process: parse the message, convert it (api.convert.registration.draft),
validate it (core.registration_rules.validate_draft, which also computes the token
digest and the content fingerprint), store it (the store's upsert_many: plan,
SQL in the database driver's thread, results), build the response
(api.registration_service's per-item fill) and serialize it. This runs each
phase on its own, with no gRPC server and nothing overlapping, on the same
items as benchmarks/registration.py's stream, and prints microseconds per
registration. The sum is the server's CPU per registration when nothing
overlaps; 1,000,000 / sum is what one core could import per second.

The store phase writes into a fresh SQLite file (or --database-url), message
after message, so it includes the database engine's own time, which the
driver's thread spends without holding the GIL (benchmarks/sqlite_ceiling.py
measures the engine alone).

    .venv/bin/python -m benchmarks.registration_phases [--count 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from benchmarks.common import create_app, sqlite_url
from benchmarks.registration import CHUNK, registration
from pushhub.v1 import registration_pb2
from pushhub_server.api.convert import registration as convert
from pushhub_server.api.registration_service import _results
from pushhub_server.core.limits import Limits
from pushhub_server.core.models import RegistrationInput, UpsertResult
from pushhub_server.core.registration_rules import RegistrationDraft, validate_draft
from pushhub_server.core.registration_tracking import RegisterOutcome
from pushhub_server.store.database import Database
from pushhub_server.store.registrations import SqlRegistrationRepository

T = TypeVar("T")
PHASES = ("parse", "convert", "validate", "store", "respond", "serialize")


def timed(spent: list[float], call: Callable[..., T], *args: object) -> T:
    started = time.perf_counter()
    result = call(*args)
    spent.append(time.perf_counter() - started)
    return result


def convert_all(request: registration_pb2.RegisterDevicesRequest) -> list[RegistrationDraft]:
    return [convert.draft(item) for item in request.registrations]


def validate_all(drafts: list[RegistrationDraft], now: datetime) -> list[RegistrationInput]:
    limits = Limits()
    return [validate_draft(draft, limits, now) for draft in drafts]


def message(start: int, count: int) -> bytes:
    """benchmarks/registration.py's stream message of items start.. (at most CHUNK)."""
    items = [registration(i) for i in range(start, min(start + CHUNK, count))]
    return registration_pb2.RegisterDevicesRequest(registrations=items).SerializeToString()


async def measure(database_url: str, app_id: str, count: int) -> dict[str, list[float]]:
    """Seconds per message, by phase."""
    spent: dict[str, list[float]] = {phase: [] for phase in PHASES}
    db = Database.from_url(database_url)
    store = SqlRegistrationRepository(db)
    parse = registration_pb2.RegisterDevicesRequest.FromString
    try:
        for start in range(0, count, CHUNK):
            request = timed(spent["parse"], parse, message(start, count))
            drafts = timed(spent["convert"], convert_all, request)
            now = datetime.now(UTC)
            items = timed(spent["validate"], validate_all, drafts, now)
            started = time.perf_counter()
            stored = await store.upsert_many(app_id, items, now)
            spent["store"].append(time.perf_counter() - started)
            outcomes = [RegisterOutcome(r, None) for r in stored if isinstance(r, UpsertResult)]
            response = timed(spent["respond"], _results, outcomes)
            timed(spent["serialize"], response.SerializeToString)
    finally:
        await db.dispose()
    return spent


def report(spent: dict[str, list[float]]) -> None:
    """Median per message, as microseconds per registration."""
    total = 0.0
    for phase in PHASES:
        micros = statistics.median(spent[phase]) * 1e6 / CHUNK
        total += micros
        print(f"{phase:10}: {micros:6.1f} us/registration")
    print(f"{'sum':10}: {total:6.1f} us/registration = {1e6 / total:6.0f} registrations/s per core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="a migrated database (else SQLite)")
    args = parser.parse_args()
    url = args.database_url or sqlite_url()
    app_id = create_app(url)["app_id"]
    report(asyncio.run(measure(url, app_id, args.count)))


if __name__ == "__main__":
    main()
