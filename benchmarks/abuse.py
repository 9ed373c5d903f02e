"""Abuse benchmark: figures, not assertions (issue 11).

Replays the attacks of issue 11 at full size against a real `pushhub serve` on
loopback, a fresh server on a fresh SQLite database for each scenario, and
prints, for each, the server's resident memory (VmRSS sampled every 50 ms, and
VmHWM) and the latency of a grpc.health.v1 Check sent every 50 ms on a
connection of its own (p50, p99, max), beside the targets:

- the server stays under 600 MB;
- health checks answer within 1 s (max);
- anonymous requests add under 50 MB;
- a selector costs under 5 µs per recipient.

Scenarios (`--only NAME ...` runs some; all by default):

- streams-100: 100 concurrent RegisterDevices streams of 2 x 500 items (server key);
- streams-200: 200 concurrent streams of 2 x 1,000 items;
- anonymous-8mb: 24 concurrent 8 MB RegisterDevice calls with an invalid key;
- valid-15mb: 40 concurrent 15 MB RegisterDevice calls with the server key;
- selector-plain, selector-3, selector-14: 10,000 registrations on one channel,
  each with a selector (`kind = 'b'`; `kind LIKE '%_%_%_%x'`; the issue's
  `kind LIKE '%_%_%_%_%_%_%_%_%_%_%_%_%_%_%x'`), then one publish with a
  40-character `kind` header: time from Publish to a terminal state, and µs per
  recipient. A publish that has not finished within --selector-budget seconds is
  reported as such, and its server killed.

Whatever limits the server sets are counted, not fatal: every call's status
code is tallied (RESOURCE_EXHAUSTED with or without a google.rpc.RetryInfo), and
the client accepts messages up to 64 MiB either way. Streams use grpc's blocking
client in threads: grpc.aio reports a stream the server ended early as a
client-side INTERNAL (grpc/grpc#36066), which would hide the server's answer.

    .venv/bin/python -m benchmarks.abuse
    .venv/bin/python -m benchmarks.abuse --only selector-14 --selector-budget 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.common import (
    create_app,
    free_port,
    memory_kb,
    percentile,
    server_process,
    sqlite_url,
)
from pushhub.v1 import common_pb2, publish_pb2, registration_pb2
from pushhub.v1 import status_pb2 as pushhub_status

REGISTER = "/pushhub.v1.DeviceRegistrationService/RegisterDevice"
REGISTER_MANY = "/pushhub.v1.DeviceRegistrationService/RegisterDevices"
PUBLISH = "/pushhub.v1.PublishService/Publish"
GET_STATUS = "/pushhub.v1.StatusService/GetMessageStatus"

TARGET_RSS_MB = 600
TARGET_HEALTH_MAX_S = 1.0
TARGET_ANONYMOUS_ADDED_MB = 50
TARGET_SELECTOR_US = 5.0

SAMPLE_EVERY = 0.05
HEALTH_TIMEOUT = 30.0
MiB = 1024 * 1024
CLIENT_OPTIONS = [
    ("grpc.max_send_message_length", 64 * MiB),
    ("grpc.max_receive_message_length", 64 * MiB),
    # Each client its own connection, as separate importers or phones would have.
    ("grpc.use_local_subchannel_pool", 1),
]
RECIPIENTS = 10_000
PLAIN = "selector-plain"
TERMINAL = (
    common_pb2.MESSAGE_STATE_PUBLISHED,
    common_pb2.MESSAGE_STATE_FAILED,
    common_pb2.MESSAGE_STATE_CANCELLED,
)
DETAILS_KEY = "grpc-status-details-bin"


# ------------------------------------------------------------------ values


def apns_token(index: int) -> str:
    """64 lowercase hex characters, unique per index."""
    return f"{index:064x}"


def fcm_token(index: int) -> str:
    """FCM's character set ([A-Za-z0-9_:-]), 152 characters like a real token."""
    return f"bench{index:012d}:APA91b" + "Ab_-" * 33


def registration(index: int, **extra: object) -> registration_pb2.RegisterDeviceRequest:
    apns = index % 2 == 0
    return registration_pb2.RegisterDeviceRequest(
        platform=common_pb2.PLATFORM_APNS if apns else common_pb2.PLATFORM_FCM,
        device_token=apns_token(index) if apns else fcm_token(index),
        **extra,
    )


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


# ------------------------------------------------------------------ monitors


def memory_mb(pid: int) -> dict[str, float]:
    return {name: kb / 1024 for name, kb in memory_kb(pid).items()}


@dataclass
class Figures:
    """What the monitors saw during one scenario."""

    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    hwm_mb: float = 0.0
    health_s: list[float] = field(default_factory=list)
    health_failed: Counter[str] = field(default_factory=Counter)
    # A check still waiting when the scenario ended: its wait so far (a lower bound).
    health_pending_s: float = 0.0
    # The RSS at which the server was killed to protect the machine, if it was.
    killed_at_mb: float | None = None

    @property
    def health_max_s(self) -> float:
        return max([*self.health_s, self.health_pending_s], default=0.0)


class Monitor:
    """Samples the server's RSS and probes its health every SAMPLE_EVERY seconds."""

    def __init__(self, pid: int, target: str, rss_limit_mb: float) -> None:
        self._pid = pid
        self._target = target
        self._rss_limit_mb = rss_limit_mb
        self.figures = Figures()
        self._done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._probe_started: float | None = None

    async def __aenter__(self) -> Monitor:
        self.figures.rss_before_mb = memory_mb(self._pid)["VmRSS"]
        self._tasks = [
            asyncio.ensure_future(self._sample_rss()),
            asyncio.ensure_future(self._probe_health()),
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._done.set()
        if self._probe_started is not None:
            self.figures.health_pending_s = time.perf_counter() - self._probe_started
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(FileNotFoundError, KeyError):
            self.figures.hwm_mb = memory_mb(self._pid)["VmHWM"]

    async def _sample_rss(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(FileNotFoundError, KeyError):
                rss = memory_mb(self._pid)["VmRSS"]
                self.figures.rss_peak_mb = max(self.figures.rss_peak_mb, rss)
                if rss > self._rss_limit_mb and self.figures.killed_at_mb is None:
                    # The machine is shared: a server this large is stopped, not waited for.
                    self.figures.killed_at_mb = rss
                    self.figures.hwm_mb = memory_mb(self._pid)["VmHWM"]
                    os.kill(self._pid, signal.SIGKILL)
            await asyncio.sleep(SAMPLE_EVERY)

    async def _probe_health(self) -> None:
        async with grpc.aio.insecure_channel(self._target, options=CLIENT_OPTIONS) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not self._done.is_set():
                self._probe_started = started = time.perf_counter()
                try:
                    answer = await stub.Check(
                        health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT
                    )
                    if answer.status != health_pb2.HealthCheckResponse.SERVING:
                        self.figures.health_failed["not SERVING"] += 1
                except grpc.aio.AioRpcError as error:
                    self.figures.health_failed[error.code().name] += 1
                self.figures.health_s.append(time.perf_counter() - started)
                self._probe_started = None
                await asyncio.sleep(SAMPLE_EVERY)


# ------------------------------------------------------------------ outcomes


@dataclass
class Outcome:
    """What the scenario's own calls got."""

    lines: list[str] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    # µs per recipient (selector scenarios that finished).
    us_per_recipient: float | None = None
    unfinished: bool = False


def code_name(error: grpc.RpcError) -> str:
    """The status code, marked when a RESOURCE_EXHAUSTED carries a google.rpc.RetryInfo."""
    call: grpc.Call = error  # type: ignore[assignment]
    name = call.code().name
    if call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        name += " with RetryInfo" if has_retry_info(call) else " without RetryInfo"
    return name


def has_retry_info(call: grpc.Call) -> bool:
    for key, value in call.trailing_metadata() or ():
        if key == DETAILS_KEY:
            details = status_pb2.Status.FromString(value).details
            return any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in details)
    return False


def tally(codes: Counter[str]) -> str:
    return ", ".join(f"{count} {name}" for name, count in codes.most_common()) or "none"


# ------------------------------------------------------------------ scenarios


@dataclass(frozen=True)
class Server:
    target: str
    pid: int
    keys: dict[str, str]


Scenario = Callable[[Server, argparse.Namespace], Awaitable[Outcome]]


def stream_messages(stream: int, messages: int, items: int) -> list[bytes]:
    """A stream's messages, serialized up front: the client should cost little."""
    serialized = []
    for message in range(messages):
        first = (stream * messages + message) * items
        batch = registration_pb2.RegisterDevicesRequest(
            registrations=[
                registration(
                    index,
                    channels=["news", f"channel-{index % 50}"],
                    tags=[f"lang:{index % 7}", "beta"],
                )
                for index in range(first, first + items)
            ]
        )
        serialized.append(batch.SerializeToString())
    return serialized


def run_stream(
    target: str, key: str, messages: list[bytes], deadline: float
) -> tuple[str, list[bytes]]:
    """One import stream on its own connection (blocking client): its code and raw answers."""
    answers: list[bytes] = []
    with grpc.insecure_channel(target, options=CLIENT_OPTIONS) as channel:
        call = channel.stream_stream(REGISTER_MANY)(
            iter(messages), metadata=bearer(key), timeout=deadline
        )
        try:
            answers.extend(call)
        except grpc.RpcError as error:
            return code_name(error), answers
    return "OK", answers


async def import_streams(server: Server, streams: int, items: int, deadline: float) -> Outcome:
    payloads = [stream_messages(number, 2, items) for number in range(streams)]
    loop = asyncio.get_running_loop()
    key = server.keys["server_key"]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=streams) as pool:
        results = await asyncio.gather(
            *(
                loop.run_in_executor(pool, run_stream, server.target, key, messages, deadline)
                for messages in payloads
            )
        )
    elapsed = time.perf_counter() - started
    outcome = Outcome()
    registered = item_errors = 0
    for code, answers in results:
        outcome.codes[code] += 1
        for raw in answers:
            for result in registration_pb2.RegisterDevicesResponse.FromString(raw).results:
                if result.HasField("error"):
                    item_errors += 1
                else:
                    registered += 1
    outcome.lines += [
        f"streams: {tally(outcome.codes)} (deadline {deadline:.0f} s each)",
        f"items: {registered:,} registered, {item_errors:,} refused of "
        f"{streams * 2 * items:,} in {elapsed:.1f} s ({registered / elapsed:,.0f}/s)",
    ]
    return outcome


async def big_unary(server: Server, calls: int, megabytes: int, key: str) -> Outcome:
    """`calls` concurrent RegisterDevice requests of `megabytes` MB each (one metadata value)."""
    body = registration(1, metadata={"blob": "x" * (megabytes * MiB)}).SerializeToString()
    outcome = Outcome()
    async with grpc.aio.insecure_channel(server.target, options=CLIENT_OPTIONS) as channel:
        register = channel.unary_unary(REGISTER)

        async def one() -> str:
            try:
                await register(body, metadata=bearer(key), timeout=120)
            except grpc.aio.AioRpcError as error:
                return code_name(error)
            return "OK"

        started = time.perf_counter()
        for code in await asyncio.gather(*(one() for _ in range(calls))):
            outcome.codes[code] += 1
        elapsed = time.perf_counter() - started
    outcome.lines.append(
        f"{calls} x {len(body) / MiB:.1f} MiB RegisterDevice: {tally(outcome.codes)} "
        f"in {elapsed:.1f} s"
    )
    return outcome


async def register_audience(server: Server, selector: str) -> Outcome:
    """Set-up, not measured: RECIPIENTS registrations on one channel with `selector`."""
    key = server.keys["server_key"]
    messages = [
        registration_pb2.RegisterDevicesRequest(
            registrations=[
                registration(index, channels=["selector"], selector=selector)
                for index in range(first, min(first + 1000, RECIPIENTS))
            ]
        ).SerializeToString()
        for first in range(0, RECIPIENTS, 1000)
    ]
    code, answers = await asyncio.to_thread(run_stream, server.target, key, messages, 300.0)
    refused = sum(
        1
        for raw in answers
        for result in registration_pb2.RegisterDevicesResponse.FromString(raw).results
        if result.HasField("error")
    )
    outcome = Outcome()
    outcome.lines.append(f"set-up: {RECIPIENTS:,} registrations ({code}, {refused} refused)")
    outcome.unfinished = code != "OK" or refused > 0
    return outcome


async def publish_and_wait(server: Server, budget: float, outcome: Outcome) -> None:
    """One publish with a 40-character kind header to the selector audience; the time
    from Publish to a terminal state, or "did not finish" after `budget` seconds."""
    key = server.keys["server_key"]
    request = publish_pb2.PublishRequest(
        channel="selector", message="Hello", headers={"kind": "a" * 40}
    )
    async with grpc.aio.insecure_channel(server.target, options=CLIENT_OPTIONS) as channel:
        started = time.perf_counter()
        try:
            raw = await channel.unary_unary(PUBLISH)(
                request.SerializeToString(), metadata=bearer(key), timeout=budget
            )
        except grpc.aio.AioRpcError as error:
            outcome.lines.append(f"publish: {code_name(error)} {error.details()!r}")
            outcome.unfinished = True
            return
        message_id = publish_pb2.PublishResponse.FromString(raw).message_id
        status = await wait_terminal(channel, key, message_id, started + budget)
    elapsed = time.perf_counter() - started
    if status is None or status.state not in TERMINAL:
        seen = (
            f"last status {common_pb2.MessageState.Name(status.state)}, "
            f"{status.sent_count + status.failed_count} of {status.targeted_count} done"
            if status
            else "no status answered"
        )
        outcome.lines.append(f"publish: did not finish within {budget:.0f} s ({seen})")
        outcome.unfinished = True
        return
    outcome.us_per_recipient = elapsed / RECIPIENTS * 1e6
    outcome.lines.append(
        f"publish -> {common_pb2.MessageState.Name(status.state)} in {elapsed:.2f} s: "
        f"{outcome.us_per_recipient:,.1f} µs per recipient (targeted {status.targeted_count}, "
        f"sent {status.sent_count}, failed {status.failed_count})"
    )


async def wait_terminal(
    channel: grpc.aio.Channel, key: str, message_id: str, until: float
) -> pushhub_status.MessageStatus | None:
    """Polls GetMessageStatus every 100 ms until the message is terminal or time is up."""
    request = pushhub_status.GetMessageStatusRequest(message_id=message_id).SerializeToString()
    status = None
    while time.perf_counter() < until:
        timeout = max(0.1, min(5.0, until - time.perf_counter()))
        try:
            raw = await channel.unary_unary(GET_STATUS)(
                request, metadata=bearer(key), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            continue
        status = pushhub_status.GetMessageStatusResponse.FromString(raw).status
        if status.state in TERMINAL:
            return status
        await asyncio.sleep(0.1)
    return status


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    run: Scenario
    anonymous: bool = False
    # Selector scenarios: the registrations' selector (set up before the monitors start).
    selector: str | None = None


def scenarios() -> list[Spec]:
    def streams(count: int, items: int) -> Scenario:
        return lambda server, args: import_streams(server, count, items, args.stream_deadline)

    def unary(calls: int, mb: int, valid: bool) -> Scenario:
        def run(server: Server, args: argparse.Namespace) -> Awaitable[Outcome]:
            key = server.keys["server_key"] if valid else "phs_" + "0" * 43
            return big_unary(server, calls, mb, key)

        return run

    async def publish(server: Server, args: argparse.Namespace) -> Outcome:
        outcome = Outcome()
        await publish_and_wait(server, args.selector_budget, outcome)
        return outcome

    pathological = "kind LIKE '" + "%_" * 14 + "%x'"
    title = f"{RECIPIENTS:,} recipients with the selector %s, a 40-character kind header"
    return [
        Spec(
            "streams-100",
            "100 concurrent RegisterDevices streams, 2 x 500 items (server key)",
            streams(100, 500),
        ),
        Spec(
            "streams-200",
            "200 concurrent RegisterDevices streams, 2 x 1,000 items (server key)",
            streams(200, 1000),
        ),
        Spec(
            "anonymous-8mb",
            "24 concurrent 8 MB RegisterDevice calls, invalid key",
            unary(24, 8, valid=False),
            anonymous=True,
        ),
        Spec(
            "valid-15mb",
            "40 concurrent 15 MB RegisterDevice calls, server key",
            unary(40, 15, valid=True),
        ),
        Spec(PLAIN, title % "kind = 'b'", publish, selector="kind = 'b'"),
        Spec(
            "selector-3",
            title % "kind LIKE '%_%_%_%x'",
            publish,
            selector="kind LIKE '%_%_%_%x'",
        ),
        Spec(
            "selector-14", title % pathological + " (the issue's)", publish, selector=pathological
        ),
    ]


# ------------------------------------------------------------------ running


@dataclass
class Row:
    spec: Spec
    outcome: Outcome
    figures: Figures


@contextlib.contextmanager
def fresh_server() -> Iterator[Server]:
    """`pushhub serve` on a new SQLite database, with one app."""
    url = sqlite_url()
    keys = create_app(url)
    port = free_port()
    command = [sys.executable, "-m", "pushhub_server", "serve", "--listen", f"127.0.0.1:{port}"]
    env = {
        "PUSHHUB_DATABASE_URL": url,
        "PUSHHUB_LOG_LEVEL": "WARNING",
        "PUSHHUB_SIMULATOR_RECORDS": "0",
    }
    # A server stuck in a regex never handles SIGTERM: it is killed after 5 s.
    with server_process(command, port, env, stop_timeout=5.0) as process:
        yield Server(f"127.0.0.1:{port}", process.pid, keys)


async def measure(spec: Spec, server: Server, args: argparse.Namespace) -> Row:
    setup = Outcome()
    if spec.selector is not None:
        setup = await register_audience(server, spec.selector)
        if setup.unfinished:
            return Row(spec, setup, Figures())
    async with Monitor(server.pid, server.target, args.rss_limit_mb) as monitor:
        outcome = await spec.run(server, args)
    outcome.lines[:0] = setup.lines
    return Row(spec, outcome, monitor.figures)


def run_scenario(spec: Spec, args: argparse.Namespace) -> Row:
    print(f"\n== {spec.name}: {spec.title}", flush=True)
    print(f"   load average before: {load()}", flush=True)
    with fresh_server() as server:
        row = asyncio.run(measure(spec, server, args))
    report(row)
    return row


def load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg()) + " (1 / 5 / 15 min)"


def report(row: Row) -> None:
    figures = row.figures
    for line in row.outcome.lines:
        print(f"   {line}")
    if not figures.health_s and not figures.health_pending_s:
        print("   (not measured: the set-up failed)")
        return
    added = figures.rss_peak_mb - figures.rss_before_mb
    if figures.killed_at_mb is not None:
        print(f"   SERVER KILLED at {figures.killed_at_mb:.0f} MB RSS (--rss-limit-mb)")
    print(
        f"   server RSS: {figures.rss_before_mb:.0f} MB before, peak {figures.rss_peak_mb:.0f} MB "
        f"(+{added:.0f} MB), VmHWM {figures.hwm_mb:.0f} MB"
        f"   [target: under {TARGET_RSS_MB} MB"
        + (
            f"; anonymous calls add under {TARGET_ANONYMOUS_ADDED_MB} MB]"
            if row.spec.anonymous
            else "]"
        )
    )
    print(
        f"   health: {describe_health(figures)}   [target: max under {TARGET_HEALTH_MAX_S:.0f} s]"
    )
    if row.spec.selector is not None:
        print(f"   [target: under {TARGET_SELECTOR_US:.0f} µs per recipient]")
    print(f"   load average after: {load()}", flush=True)


def describe_health(figures: Figures) -> str:
    samples = figures.health_s
    text = "no check answered"
    if samples:
        text = (
            f"p50 {statistics.median(samples) * 1000:.1f} ms, "
            f"p99 {percentile(samples, 0.99) * 1000:.1f} ms, max {figures.health_max_s:.2f} s "
            f"({len(samples)} checks"
        )
        text += f", failed: {tally(figures.health_failed)})" if figures.health_failed else ")"
    if figures.health_pending_s:
        text += f"; one check still waiting after {figures.health_pending_s:.1f} s at the end"
    return text


def summary(rows: list[Row]) -> None:
    """One line per scenario. A selector's own cost is its time per recipient above
    selector-plain's (audience paging and the publish itself cost the same in both);
    without selector-plain in the run, the whole time per recipient counts."""
    print(
        "\nsummary (targets: RSS < 600 MB, health max < 1 s, anonymous +< 50 MB, "
        "selector < 5 µs per recipient)"
    )
    print(
        f"{'scenario':16} {'peak RSS':>9} {'added':>7} {'health p50':>11} {'p99':>9} "
        f"{'max':>9} {'µs/recip.':>10} {'selector':>9}  result"
    )
    plain = next((r.outcome.us_per_recipient for r in rows if r.spec.name == PLAIN), None)
    for row in rows:
        figures, outcome = row.figures, row.outcome
        samples = figures.health_s or [0.0]
        per = cost = "—"
        if outcome.us_per_recipient is not None:
            per = f"{outcome.us_per_recipient:,.1f}"
            cost = "baseline" if row.spec.name == PLAIN else f"{selector_cost(row, plain):,.1f}"
        elif row.spec.selector is not None:
            per = cost = "unfinished"
        added = figures.rss_peak_mb - figures.rss_before_mb
        print(
            f"{row.spec.name:16} {figures.rss_peak_mb:7.0f}MB {added:+6.0f}M "
            f"{statistics.median(samples) * 1000:9.1f}ms {percentile(samples, 0.99) * 1000:7.0f}ms "
            f"{figures.health_max_s:8.2f}s {per:>10} {cost:>9}  {verdict(row, plain)}"
        )


def selector_cost(row: Row, plain: float | None) -> float:
    total = row.outcome.us_per_recipient or 0.0
    return total - plain if plain is not None and row.spec.name != PLAIN else total


def verdict(row: Row, plain: float | None) -> str:
    figures, outcome = row.figures, row.outcome
    missed = []
    if max(figures.rss_peak_mb, figures.hwm_mb) >= TARGET_RSS_MB:
        missed.append("RSS")
    if figures.health_max_s >= TARGET_HEALTH_MAX_S:
        missed.append("health")
    added = figures.rss_peak_mb - figures.rss_before_mb
    if row.spec.anonymous and added >= TARGET_ANONYMOUS_ADDED_MB:
        missed.append("anonymous memory")
    if row.spec.selector is not None and (
        outcome.unfinished or selector_cost(row, plain) >= TARGET_SELECTOR_US
    ):
        missed.append("selector")
    return "meets the targets" if not missed else "misses: " + ", ".join(missed)


def main() -> None:
    specs = scenarios()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=[spec.name for spec in specs])
    parser.add_argument("--stream-deadline", type=float, default=60.0)
    parser.add_argument("--selector-budget", type=float, default=30.0)
    parser.add_argument(
        "--rss-limit-mb",
        type=float,
        default=6000.0,
        help="kill a server whose RSS passes this (the machine is shared)",
    )
    args = parser.parse_args()
    print(f"abuse benchmark on {os.cpu_count()} cores; load average {load()}")
    print("(figures from a shared machine: other work may be running beside them)")
    rows = [run_scenario(spec, args) for spec in specs if not args.only or spec.name in args.only]
    summary(rows)


if __name__ == "__main__":
    main()
