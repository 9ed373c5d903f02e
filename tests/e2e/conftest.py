"""Fixtures for tests that run the repository's own tools: make, npm, node."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.own_database import own_database

REPO = Path(__file__).resolve().parents[2]


def make(*args: str, timeout: float = 600) -> None:
    """Runs a Makefile target of the checkout, the way a developer or CI would."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"make {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def ts_example() -> Path:
    """examples/typescript with its npm packages (npm ci, kept in its node_modules) and built."""
    make("ts-example")
    return REPO / "examples" / "typescript"


@pytest_asyncio.fixture
async def fleet_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A new PostgreSQL database of the test's own, for several processes to share
    (docs/processes.md); skips on the SQLite pass: SQLite is one process."""
    if not os.environ.get("PUSHHUB_TEST_DATABASE_URL", "").startswith("postgresql"):
        pytest.skip("several processes share PostgreSQL; SQLite is one process")
    async with own_database(database_url, tmp_path, "pushhub_fleet") as url:
        yield url
