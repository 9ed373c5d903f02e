"""A fleet: two `pushhub serve` processes on one PostgreSQL deliver one broadcast.

Each process is a real subprocess on its own loopback port, on a database of
this test's own. A run is cut into partitions of PARTITION recipients
(PUSHHUB_PARTITION_SIZE), each claimed by either process (docs/fleet.md):

- both processes deliver part of one broadcast, seen in their logs (one line
  per partition delivered), every recipient exactly once in the simulator's
  inbox, and WatchMessageStatus on the process that did not get the Publish
  follows the run to PUBLISHED with every partition's counts added up;
- kill -9 of one process mid-run: the other one claims the partition it held
  once its lease runs out and finishes the broadcast. Nothing is lost, and at
  most one chunk is delivered twice: one process runs one partition of a
  message at a time, and a partition resends at most its chunk in flight.

SQLite is one process's database: skipped there.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pushhub.v1 import common_pb2
from tests.e2e.fanout_client import Client, delivered
from tests.e2e.server_process import Launcher, ServerProcess
from tests.own_database import own_database

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("PUSHHUB_TEST_DATABASE_URL", "").startswith("postgresql"),
        reason="several processes share one database on PostgreSQL only",
    ),
]

RECIPIENTS = 20_000
CHUNK = 500
PARTITION = 2_000  # ten partitions of four chunks
LEASE_SECONDS = 2
KILL_AFTER_CHUNKS = 3
TIMEOUT = 90.0
# The dispatcher's line for each partition it delivered to the end.
PARTITION_DONE = re.compile(r"claim \d+ of message (\S+): partition (\d+) delivered")


@pytest_asyncio.fixture(loop_scope="session")
async def fleet_database(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    async with own_database(database_url, tmp_path, "pushhub_fleet_test") as url:
        yield url


@pytest.fixture
def launcher(fleet_database: str, tmp_path: Path) -> Iterator[Launcher]:
    settings = {
        "PUSHHUB_CHUNK_SIZE": str(CHUNK),
        "PUSHHUB_LEASE_SECONDS": str(LEASE_SECONDS),
        "PUSHHUB_PARTITION_SIZE": str(PARTITION),
        # The process that did not get the Publish finds the partitions this soon.
        "PUSHHUB_SCHEDULER_POLL_INTERVAL": "0.2",
        "PUSHHUB_LOG_LEVEL": "INFO",
    }
    launcher = Launcher(fleet_database, tmp_path, settings)
    try:
        yield launcher
    finally:
        launcher.kill_all()


@pytest_asyncio.fixture
async def engine(fleet_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(fleet_database, poolclass=sa.NullPool)
    yield engine
    await engine.dispose()


def partitions_delivered(server: ServerProcess, message_id: str) -> set[int]:
    """The partitions of the message this process delivered to the end, from its log."""
    text = server.log.read_text(errors="replace")
    return {int(n) for m, n in PARTITION_DONE.findall(text) if m == message_id}


async def test_two_processes_deliver_one_broadcast_side_by_side(
    launcher: Launcher, engine: AsyncEngine
) -> None:
    created = json.loads(launcher.cli("apps", "create", "fleet", "--json"))
    first, second = await launcher.serve(), await launcher.serve()
    async with (
        grpc.aio.insecure_channel(first.address) as publisher_channel,
        grpc.aio.insecure_channel(second.address) as watcher_channel,
    ):
        publisher = Client(publisher_channel, created["server_key"])
        await publisher.register_all(RECIPIENTS)
        message_id = await publisher.publish_broadcast()
        watcher = Client(watcher_channel, created["server_key"])
        statuses = await asyncio.wait_for(watcher.watch(message_id), TIMEOUT)

    final = statuses[-1]
    assert final.state == common_pb2.MESSAGE_STATE_PUBLISHED, final
    assert (final.targeted_count, final.sent_count, final.failed_count, final.run_count) == (
        RECIPIENTS,
        RECIPIENTS,
        0,
        1,
    )
    # The watch saw the counts grow, from both processes' chunks.
    assert any(0 < status.sent_count < RECIPIENTS for status in statuses)
    total, distinct = await delivered(engine, message_id)
    assert (total, distinct) == (RECIPIENTS, RECIPIENTS)
    by_first = partitions_delivered(first, message_id)
    by_second = partitions_delivered(second, message_id)
    assert by_first and by_second, f"one process did everything: {by_first} / {by_second}"
    assert not by_first & by_second
    assert by_first | by_second == set(range(RECIPIENTS // PARTITION + 1))


async def test_kill_9_of_one_process_the_other_finishes_the_broadcast(
    launcher: Launcher, engine: AsyncEngine
) -> None:
    created = json.loads(launcher.cli("apps", "create", "fleet", "--json"))
    loop = asyncio.get_running_loop()
    victim, survivor = await launcher.serve(), await launcher.serve()
    async with (
        grpc.aio.insecure_channel(victim.address) as victim_channel,
        grpc.aio.insecure_channel(survivor.address) as survivor_channel,
    ):
        # Published through the victim, which so claims partitions at once.
        await Client(victim_channel, created["server_key"]).register_all(RECIPIENTS)
        message_id = await Client(victim_channel, created["server_key"]).publish_broadcast()

        # Part-way: a few chunks delivered, the run not finished; then the victim goes.
        deadline = loop.time() + TIMEOUT
        while (await delivered(engine, message_id))[0] < KILL_AFTER_CHUNKS * CHUNK:
            assert loop.time() < deadline, f"no progress:\n{victim.output()}"
            await asyncio.sleep(0.005)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        at_kill, _ = await delivered(engine, message_id)
        assert at_kill < RECIPIENTS, f"finished ({at_kill}) before the kill; nothing was tested"

        client = Client(survivor_channel, created["server_key"])
        statuses = await asyncio.wait_for(client.watch(message_id), TIMEOUT)

    final = statuses[-1]
    assert final.state == common_pb2.MESSAGE_STATE_PUBLISHED, f"{final}\n{survivor.output()}"
    total, distinct = await delivered(engine, message_id)
    assert distinct == RECIPIENTS, f"lost {RECIPIENTS - distinct} recipients"
    assert 0 <= total - distinct <= CHUNK, f"{total - distinct} delivered twice"
    # Counters are written with each checkpoint, so a resent chunk counts once.
    assert (final.targeted_count, final.sent_count, final.run_count) == (RECIPIENTS, RECIPIENTS, 1)
    # What the victim had not finished, the survivor did.
    by_victim = partitions_delivered(victim, message_id)
    by_survivor = partitions_delivered(survivor, message_id)
    assert by_victim | by_survivor == set(range(RECIPIENTS // PARTITION + 1))
    assert len(by_victim) < RECIPIENTS // PARTITION + 1
    print(f"killed after {at_kill} deliveries; {total - distinct} delivered twice")
