"""Crash and resume: kill -9 the server in the middle of a 20,000-recipient fan-out.

The server runs as a real subprocess (`python -m pushhub_server serve`) with
chunks of 500 recipients (40 chunks) and a 2-second dispatcher lease
(PUSHHUB_LEASE_SECONDS), so the restarted process claims the abandoned run
quickly. After the restart every recipient must have been delivered, with at
most one chunk delivered twice (issue 3, section 4; docs/architecture.md, "Fan-out").

The database follows the suite: a temporary SQLite file, or, on the PostgreSQL
pass (PUSHHUB_TEST_DATABASE_URL), a database of its own created and dropped
here, since the in-process servers of the other suites share the test database.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from pushhub.v1 import common_pb2
from tests.e2e.fanout_client import Client, delivered
from tests.e2e.server_process import Launcher
from tests.own_database import own_database

pytestmark = pytest.mark.slow

RECIPIENTS = 20_000
CHUNK = 500
LEASE_SECONDS = 2
# Kill once at least this many chunks were delivered (and the run is not finished).
KILL_AFTER_CHUNKS = 3
RESUME_TIMEOUT = 60.0


# ---------------------------------------------------------------- database ----


@pytest_asyncio.fixture(loop_scope="session")
async def crash_database(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database of this test's own, on the backend the suite runs on."""
    async with own_database(database_url, tmp_path, "pushhub_crash_test") as url:
        yield url


# ------------------------------------------------------------------ server ----


@pytest.fixture
def launcher(crash_database: str, tmp_path: Path) -> Iterator[Launcher]:
    settings = {"PUSHHUB_CHUNK_SIZE": str(CHUNK), "PUSHHUB_LEASE_SECONDS": str(LEASE_SECONDS)}
    launcher = Launcher(crash_database, tmp_path, settings)
    try:
        yield launcher
    finally:
        launcher.kill_all()


# -------------------------------------------------------------------- test ----


async def test_kill_9_mid_fanout_then_resume(crash_database: str, launcher: Launcher) -> None:
    created = json.loads(launcher.cli("apps", "create", "crash", "--json"))
    engine = create_async_engine(crash_database, poolclass=sa.NullPool)
    loop = asyncio.get_running_loop()
    try:
        first = await launcher.serve()
        async with grpc.aio.insecure_channel(first.address) as channel:
            client = Client(channel, created["server_key"])
            await client.register_all(RECIPIENTS)
            message_id = await client.publish_broadcast()

            # Part-way: a few chunks delivered, the run not finished.
            deadline = loop.time() + RESUME_TIMEOUT
            while True:
                total, _ = await delivered(engine, message_id)
                if total >= KILL_AFTER_CHUNKS * CHUNK:
                    break
                assert loop.time() < deadline, f"no progress:\n{first.output()}"
                await asyncio.sleep(0.005)
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(10)
        at_kill, _ = await delivered(engine, message_id)
        assert at_kill < RECIPIENTS, (
            f"the fan-out finished ({at_kill} deliveries) before the kill; nothing was tested"
        )

        second = await launcher.serve()
        async with grpc.aio.insecure_channel(second.address) as channel:
            client = Client(channel, created["server_key"])
            deadline = loop.time() + RESUME_TIMEOUT
            while (status := await client.status(message_id)).state != (
                common_pb2.MESSAGE_STATE_PUBLISHED
            ):
                assert status.state == common_pb2.MESSAGE_STATE_PUBLISHING, status
                assert loop.time() < deadline, f"never resumed: {status}\n{second.output()}"
                await asyncio.sleep(0.1)

        total, distinct = await delivered(engine, message_id)
        assert distinct == RECIPIENTS, f"lost {RECIPIENTS - distinct} recipients"
        assert 0 <= total - distinct <= CHUNK, f"{total - distinct} duplicates (> one chunk)"
        # Counters are written with each checkpoint, so the resent chunk counts once.
        assert (status.targeted_count, status.sent_count, status.failed_count) == (
            RECIPIENTS,
            RECIPIENTS,
            0,
        )
        assert status.run_count == 1
        async with engine.connect() as conn:
            apps = await conn.execute(
                sa.text("SELECT count(DISTINCT app_id) FROM inbox WHERE message_id = :m"),
                {"m": message_id},
            )
            assert apps.scalar_one() == 1
        print(f"killed after {at_kill} deliveries; {total - distinct} delivered twice")
    finally:
        await engine.dispose()
