"""HMS provider benchmark: figures, not assertions.

HmsProvider alone (no server, no database) against the local nginx HTTP/2 TLS sink
of benchmarks/http2_clients.py, which answers Push Kit's token endpoint once and
every ``messages:send`` with its success body (``{"code":"80000000",…}``); nginx
checks neither token nor body (tests/fakes/hms.py does that, in the tests).

Three shapes, each printing recipients/s, requests/s and the process's CPU time per
recipient (every thread: the event loop, which groups and builds request bodies,
and libcurl's, which does HTTP/2 and TLS), plus the event-loop thread's own:

1. broadcast, sends of 1,000: one payload for everyone, sent a dispatcher chunk
   (1,000 deliveries) at a time, so each send is one multicast request;
2. broadcast, sends of 100,000: the same payload, 100 requests in flight at once;
3. per-recipient bodies (``{{name}}``), sends of 1,000: no two payloads alike, so
   one request per recipient: what multicast saves.

    .venv/bin/python -m benchmarks.hms_provider
    .venv/bin/python -m benchmarks.hms_provider --recipients 2000000 --repeat 5

nginx comes from the Debian package nginx-light (see benchmarks/delivery.py). The
machine has two cores and may be shared: run one benchmark at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.delivery import ensure_nginx, other_benchmarks
from benchmarks.http2_clients import nginx_sink
from pushhub_server.core.messages import Delivery, DeliveryOutcome, DeliveryResult
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.delivery.payloads.hms import HmsPayloads
from pushhub_server.delivery.providers.hms import MAX_TOKENS, HmsProvider
from tests.fakes.tls import issue_tls_files

TARGET_RATE = 50_000
CLIENT_ID = "104000001"
CONTENT = NotificationContent(
    title="Flash sale",
    body="Everything is 20% off until midnight",
    data={"campaign": "spring-24"},
    ttl=None,
    priority="high",
)
PLATFORM = Platform.HMS


@dataclass
class Figures:
    recipients: int
    requests: int
    seconds: float
    cpu: float
    loop_cpu: float
    outcomes: Counter[DeliveryOutcome]

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu * 1e6 / self.recipients

    @property
    def loop_cpu_us(self) -> float:
        return self.loop_cpu * 1e6 / self.recipients


def token(n: int) -> str:
    """A token shaped like Push Kit's (about 130 characters)."""
    return f"IQAAAACy0{n:012d}" + "A" * 109


def deliveries(first: int, count: int, payload: bytes | None = None) -> list[Delivery]:
    """`count` deliveries from token number `first`; each its own `{{name}}` payload
    unless `payload` is given."""
    named = HmsPayloads(NotificationContent(title="Hi", message="Hello {{name}}, 20% off"))
    return [
        Delivery(
            "m",
            "a",
            f"r{n}",
            PLATFORM,
            token(n),
            payload if payload is not None else named.render({"name": f"user {n}"}),
        )
        for n in range(first, first + count)
    ]


async def measure(
    provider: HmsProvider, batches: Sequence[list[Delivery]], sends: int, requests_per_send: int
) -> Figures:
    """`sends` provider.send calls, cycling through `batches`, one after another."""
    kept: list[list[DeliveryResult]] = []
    cpu, loop_cpu, started = time.process_time(), time.thread_time(), time.perf_counter()
    for number in range(sends):
        kept.append(await provider.send(batches[number % len(batches)]))
    seconds = time.perf_counter() - started
    cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
    # Counted after the timing, so the figures are the provider's alone.
    outcomes = Counter(result.outcome for results in kept for result in results)
    recipients = sum(len(results) for results in kept)
    return Figures(recipients, requests_per_send * sends, seconds, cpu, loop_cpu, outcomes)


async def run(url: str, ca_file: str, args: argparse.Namespace) -> dict[str, list[Figures]]:
    payload = HmsPayloads(CONTENT).render()
    chunks = [deliveries(n * 1000, 1000, payload) for n in range(10)]
    big = [deliveries(0, 100_000, payload)]
    named = [deliveries(n * 1000, 1000) for n in range(5)]
    shapes = {
        "broadcast, sends of 1,000": (chunks, args.recipients // 1000, 1),
        "broadcast, sends of 100,000": (big, max(args.recipients // 100_000, 1), 100),
        "per-recipient bodies, sends of 1,000": (named, args.unique // 1000, 1000),
    }
    provider = HmsProvider(
        CLIENT_ID, "bench-secret", endpoint=url, token_endpoint=f"{url}/oauth2/v3/token",
        ca_file=ca_file,
    )  # fmt: skip
    figures: dict[str, list[Figures]] = {name: [] for name in shapes}
    try:
        await provider.send(chunks[0][:10])  # token, connection: outside the timing
        for number in range(args.repeat):
            for name, (batches, sends, requests_per_send) in shapes.items():
                f = await measure(provider, batches, sends, requests_per_send)
                figures[name].append(f)
                print(
                    f"  run {number + 1}, {name}: {f.recipients:,} recipients in "
                    f"{f.seconds:.2f} s -> {f.rate:,.0f} recipients/s, "
                    f"{f.requests / f.seconds:,.0f} requests/s; CPU {f.cpu_us:.2f} us/recipient "
                    f"(event loop {f.loop_cpu_us:.2f}); outcomes "
                    f"{ {o.name: n for o, n in f.outcomes.items()} }",
                    flush=True,
                )
    finally:
        await provider.close()
    return figures


def report(figures: dict[str, list[Figures]], repeat: int) -> None:
    median = statistics.median
    runs = f"median of {repeat} runs" if repeat > 1 else "one run"
    print(f"\nHmsProvider -> local nginx HTTP/2 TLS sink, {runs}:")
    for name, runs_of in figures.items():
        rate = median(f.rate for f in runs_of)
        mark = ""
        if name.startswith("broadcast"):
            mark = f"  (target >= {TARGET_RATE:,}: {'meets' if rate >= TARGET_RATE else 'MISSES'})"
        print(f"  {name}:")
        print(f"    recipients/s       : {rate:12,.0f}{mark}")
        print(f"    requests/s         : {median(f.requests / f.seconds for f in runs_of):12,.0f}")
        print(
            f"    CPU per recipient  : {median(f.cpu_us for f in runs_of):12.2f} us "
            f"(event-loop thread {median(f.loop_cpu_us for f in runs_of):.2f} us)"
        )
    print(f"  (a multicast request carries up to {MAX_TOKENS:,} tokens)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=1_000_000, help="per broadcast shape")
    parser.add_argument("--unique", type=int, default=20_000, help="per-recipient shape")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for command in other_benchmarks():
        print(f"WARNING: another benchmark is running, figures will be low: {command}")
    ensure_nginx()
    workdir = Path(tempfile.mkdtemp(prefix="pushhub-hms-bench-"))
    try:
        tls = issue_tls_files(workdir / "tls", ("localhost",))
        with nginx_sink(tls) as url:
            print(f"nginx HTTP/2 TLS sink at {url}", flush=True)
            figures = asyncio.run(run(url, str(tls.ca_file), args))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(figures, args.repeat)


if __name__ == "__main__":
    main()
