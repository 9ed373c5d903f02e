"""The acceptance harness's server in a process of its own, for the fuzz suite.

    python -m tests.fuzz.server_main DATABASE_URL

A hostile request may hold the server's event loop for minutes (a backtracking
selector does); in a child process it cannot freeze the test process with it,
the client's deadlines still fire, and the suite can kill it and start afresh.

APNs and FCM deliveries go to a loopback port where nothing listens: a fuzzed
credential that passes the checks must never reach Apple or Google.

The clock is a ManualClock that never moves: a message published for later, or
a repeat, never runs during a later example and blamed on it. The first line on
stdout is JSON: {"port": ..., "now": <the frozen clock, ISO 8601>}. Log lines
(WARNING and up, unhandled-error tracebacks included) go to stderr. It stops on
SIGTERM, or when its stdin closes (the test process is gone).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

from pushhub_server.core.clock import ManualClock
from tests.acceptance.harness import start_test_server

# The discard port: nothing listens on loopback, so a connection fails at once.
NOWHERE = "https://127.0.0.1:9"


async def run(database_url: str) -> None:
    clock = ManualClock()
    running = await start_test_server(
        database_url, clock, apns_endpoint=NOWHERE, fcm_endpoint=NOWHERE
    )
    print(json.dumps({"port": running.port, "now": clock.now().isoformat()}), flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    # The suite holds our stdin open: when it dies without stopping us, we stop too.
    loop.add_reader(sys.stdin.fileno(), _stop_at_end_of_input, loop, stopping)
    await stopping.wait()
    await running.stop(1.0)


def _stop_at_end_of_input(loop: asyncio.AbstractEventLoop, stopping: asyncio.Event) -> None:
    if not sys.stdin.buffer.read1():
        loop.remove_reader(sys.stdin.fileno())
        stopping.set()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(run(sys.argv[1]))


if __name__ == "__main__":
    main()
