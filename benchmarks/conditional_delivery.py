"""Selectors and the event loop during a fan-out: figures, not assertions.

Each scenario is one broadcast to its own app's registrations, delivered by the
real Dispatcher, store (SQLite file, or --database-url) and simulator provider
(recording off), in this process. Registrations are written with the store's
upsert_many. Each scenario runs twice:

- timed, alone: its wall time, the process's CPU time per recipient, and that
  CPU over the plain scenario's (the same audience without selectors,
  templates or metadata), which for the selector scenarios is what a selector
  costs per recipient (CPU, not wall time: the machine may be shared);
- watched: a task yields to the loop over and over and records how long each
  yield took to come back, i.e. how long something else held the event loop:
  in this thread's CPU time (the work done meanwhile, whatever the machine's
  load) and in wall time (what an RPC waits, other processes' turns included).

It first prints what parsing and evaluating one selector never seen before
costs: a publish pays that once per distinct selector text.

Scenarios:

- plain: no selectors;
- same-like: every registration holds the issue's selector, negated so that
  everyone is still sent to: ``NOT kind LIKE '%_%_%_%_%_%_%_%_%_%_%_%_%_%_%x'``,
  the message a 40-character ``kind`` header that does not end in x (before: a
  backtracking regex per recipient, for hours);
- distinct-like: every registration holds its own 1,024-character selector,
  NOT of a LIKE of '_'-heavy segments against a 1,024-character header (no
  two alike, so nothing remembered helps: an attacker registering many devices);
- distinct-dense: its own 1,024-character selector of ~110 comparisons each
  (the most predicates and tokens a selector can hold);
- templates: a distinct 4 KiB template per registration (each one prepared);
- metadata: 64 metadata values of 1 KiB per registration, ``{{name}}`` in the
  message (each registration's metadata decoded).

    .venv/bin/python -m benchmarks.conditional_delivery
    .venv/bin/python -m benchmarks.conditional_delivery --count 2000 --scenarios plain,same-like

Against an older checkout (whose LIKE backtracks), a milder selector finishes:
``--like-pairs 8 --header-length 24`` (each pair multiplies the old cost).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.common import create_app, sqlite_url
from pushhub_server.core.clock import SystemClock
from pushhub_server.core.ids import new_id
from pushhub_server.core.messages import Audience, Message, Schedule
from pushhub_server.core.models import Platform, RegistrationInput, Template
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.selector import matches, parse_selector
from pushhub_server.delivery.dispatcher import Dispatcher
from pushhub_server.delivery.providers import SimulatorProvider
from pushhub_server.delivery.status_signal import InProcessStatusSignal
from pushhub_server.store import Database, SqlInbox
from pushhub_server.store.audience import SqlAudienceReader
from pushhub_server.store.messages import SqlMessageRepository
from pushhub_server.store.registrations import SqlRegistrationRepository

BATCH = 1000
TARGET_SELECTOR_MICROS = 5.0


@dataclass(frozen=True)
class Scenario:
    name: str
    # Registration number -> (selector, metadata, templates).
    registration: Callable[[int], tuple[str | None, dict[str, str], dict[str, Template]]]
    content: NotificationContent


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    kind = "a" * args.header_length
    plain = NotificationContent(message="hello", headers={"kind": kind})
    like = "NOT kind LIKE '" + "%_" * args.like_pairs + "%x'"
    long_header = NotificationContent(message="hello", headers={"kind": "a" * 1024, "n": "5"})
    metadata = {f"k{j}": f"{j:04d}" + "m" * 1020 for j in range(64)}
    return [
        Scenario("plain", lambda i: (None, {}, {}), plain),
        Scenario("same-like", lambda i: (like, {}, {}), plain),
        Scenario("distinct-like", lambda i: (distinct_like(i), {}, {}), long_header),
        Scenario("distinct-dense", lambda i: (distinct_dense(i), {}, {}), long_header),
        Scenario(
            "templates",
            lambda i: (None, {}, {"t": Template(template(i))}),
            NotificationContent(template_name="t", template_properties={"x": "1"}),
        ),
        Scenario(
            "metadata",
            lambda i: (None, metadata, {}),
            NotificationContent(message="hi {{k1}} and {{k63}}"),
        ),
    ]


def distinct_like(i: int) -> str:
    """1,024 characters: a '_'-heavy segment searched in vain through the whole header,
    then a last segment that makes each text one of its own."""
    tail = f"%{i:06d}'"
    head = "NOT kind LIKE '%"
    return head + "a_" * ((1024 - len(head) - len(tail) - 1) // 2) + "b" + tail


def distinct_dense(i: int) -> str:
    text = f"kind = '{i:06d}'"
    while len(text) + len(" OR n > 1") <= 1024:
        text += " OR n > 1"
    return text


def template(i: int) -> str:
    """A 4 KiB APNs/FCM template of its own."""
    filler = "x" * (4096 - 80)
    return f'{{"aps":{{"alert":"$(x) {i}"}},"data":{{"pad":"{filler}"}}}}'


async def load(db: Database, app_id: str, count: int, scenario: Scenario) -> None:
    store = SqlRegistrationRepository(db)
    now = datetime.now(UTC)
    for start in range(0, count, BATCH):
        items = []
        for i in range(start, min(start + BATCH, count)):
            selector, metadata, templates = scenario.registration(i)
            items.append(
                RegistrationInput(
                    platform=Platform.APNS if i % 2 else Platform.FCM,
                    device_token=f"{i:064x}",
                    channels=("default",),
                    tags=(),
                    user_id=None,
                    expires_at=None,
                    metadata=metadata,
                    templates=templates,
                    selector=selector,
                )
            )
        await store.upsert_many(app_id, items, now)


class LoopWatch:
    """Yields to the loop over and over; between two of its turns, others held the loop.

    Each hold is measured twice: wall time (what a waiting RPC sees, but it also
    counts the time the OS gave the CPU to other processes, which on a shared
    machine can dominate) and this thread's CPU time (the work done on the loop
    meanwhile, whatever the machine's load).
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _watch(self) -> None:
        wall, cpu = time.perf_counter, time.thread_time
        while not self._stop.is_set():
            wall_started, cpu_started = wall(), cpu()
            await asyncio.sleep(0)
            self.wall.append(wall() - wall_started)
            self.cpu.append(cpu() - cpu_started)


async def deliver(db: Database, app_id: str, content: NotificationContent, watch: bool) -> dict:
    clock = SystemClock()
    messages = SqlMessageRepository(db)
    simulator = SimulatorProvider(SqlInbox(db), clock, record=False)

    async def provider_for(_: str) -> SimulatorProvider:
        return simulator

    dispatcher = Dispatcher(
        messages, SqlAudienceReader(db), provider_for, clock, InProcessStatusSignal()
    )
    now = clock.now()
    message_id = new_id()
    await messages.create(
        Message(message_id, app_id, content, Audience(broadcast=True), Schedule(now), now)
    )
    [run] = (await messages.claim_due(now + timedelta(seconds=1), dispatcher.lease, 1)).runs
    watcher = LoopWatch()
    if watch:
        watcher.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    await dispatcher.run(run)
    elapsed, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if watch:
        await watcher.stop()
    status = await messages.status(app_id, message_id)
    assert status is not None
    wall, cpu = sorted(watcher.wall) or [0.0], sorted(watcher.cpu) or [0.0]
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu_seconds,
        "state": status.state.name,
        "targeted": status.targeted,
        "sent": status.sent,
        "longest_hold_ms": wall[-1] * 1e3,
        "p99_hold_ms": wall[int(len(wall) * 0.99)] * 1e3,
        "longest_cpu_hold_ms": cpu[-1] * 1e3,
        "p99_cpu_hold_ms": cpu[int(len(cpu) * 0.99)] * 1e3,
    }


def selector_figures(args: argparse.Namespace) -> None:
    """CPU to parse and evaluate one selector never seen before: what a publish pays
    once per distinct selector text (the dispatcher remembers the verdict)."""
    like_pairs, header = args.like_pairs, "a" * args.header_length
    cases = [
        (
            "the issue's selector",
            lambda i: f"k{i} IS NULL AND NOT kind LIKE '" + "%_" * like_pairs + "%x'",
            {"kind": header},
        ),
        ("a 1,024-character LIKE", distinct_like, {"kind": "a" * 1024}),
        ("a 1,024-character OR chain", distinct_dense, {"kind": "a" * 1024, "n": "5"}),
    ]
    for label, make, headers in cases:
        texts = [make(i) for i in range(200)]
        started = time.process_time()
        for text in texts:
            matches(parse_selector(text), headers)
        micros = (time.process_time() - started) / len(texts) * 1e6
        print(f"selector alone: {label}: {micros:,.0f} us CPU to parse and evaluate", flush=True)


async def measure(url: str, args: argparse.Namespace) -> None:
    chosen = args.scenarios.split(",") if args.scenarios else None
    # The garbage collector as `pushhub serve` tunes it (server._serve).
    gc.freeze()
    gc.set_threshold(14_000, 10, 10)
    db = Database.from_url(url)
    plain_micros: float | None = None
    try:
        for scenario in scenarios(args):
            if chosen and scenario.name not in chosen:
                continue
            count = args.heavy_count if scenario.name in ("templates", "metadata") else args.count
            app_id = create_app(url, f"bench-{scenario.name}")["app_id"]
            await load(db, app_id, count, scenario)
            timed = await deliver(db, app_id, scenario.content, watch=False)
            watched = await deliver(db, app_id, scenario.content, watch=True)
            per_recipient = timed["cpu_seconds"] / count * 1e6
            if scenario.name == "plain":
                plain_micros = per_recipient
            extra = ""
            if plain_micros is not None and scenario.name != "plain":
                over = per_recipient - plain_micros
                mark = ""
                if scenario.name == "same-like":
                    mark = " ok" if over < TARGET_SELECTOR_MICROS else " OVER TARGET"
                extra = f" ({over:.1f} over plain{mark})"
            print(
                f"{scenario.name:14} {count:6d} recipients: {timed['seconds']:6.2f} s,"
                f" CPU {per_recipient:7.1f} us/recipient{extra};"
                f" {timed['state']} {timed['sent']}/{timed['targeted']} sent;"
                f" loop held at most {watched['longest_cpu_hold_ms']:.2f} ms CPU"
                f" (p99 {watched['p99_cpu_hold_ms']:.2f}),"
                f" {watched['longest_hold_ms']:.2f} ms wall (p99 {watched['p99_hold_ms']:.2f})",
                flush=True,
            )
    finally:
        await db.dispose()
    print(f"target: a pathological selector under {TARGET_SELECTOR_MICROS} us per recipient")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--heavy-count", type=int, default=2_000, help="templates, metadata")
    parser.add_argument("--like-pairs", type=int, default=14, help="'%%_' pairs of same-like")
    parser.add_argument("--header-length", type=int, default=40, help="kind header of same-like")
    parser.add_argument("--scenarios", default="", help="comma-separated names (default: all)")
    parser.add_argument("--database-url", default=None, help="a migrated database (else SQLite)")
    args = parser.parse_args()
    url = args.database_url or sqlite_url()
    selector_figures(args)
    asyncio.run(measure(url, args))


if __name__ == "__main__":
    main()
