"""Fuzz fixtures: one server process for the package, and the hypothesis settings
(budget.py says how many examples, and how large)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, Phase, seed, settings

from tests.own_database import own_database

from .budget import DEEP, EXAMPLES, FINDINGS, SEED
from .fuzz_case import Target
from .server_process import FuzzServer

Test = TypeVar("Test", bound=Callable[..., object])


def fuzz_settings(examples: int = EXAMPLES) -> Callable[[Test], Test]:
    """Hypothesis settings for a fuzz test: no per-example deadline (a hang is caught
    by the call deadline instead), no example database (a stale failing example
    would make `make test` depend on an earlier run), and budget.SEED (fixed unless
    deep: hypothesis's own derandomize would draw anew whenever the test's source
    changes)."""
    configured = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        print_blob=DEEP,
        # Each shrinking step replays real RPCs (a hang costs the whole deadline), and
        # hypothesis may shrink for five minutes: the default run reports the first
        # failing example as found (its report sketches every call); a deep run
        # shrinks, unless it is a survey (which records every failing example).
        phases=(Phase.explicit, Phase.generate, Phase.shrink)
        if DEEP and not FINDINGS
        else (Phase.explicit, Phase.generate),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )

    def decorate(test: Test) -> Test:
        return seed(SEED)(configured(test))

    return decorate


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def fuzz_database(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    directory = tmp_path_factory.mktemp("fuzz")
    async with own_database(database_url, directory, "pushhub_fuzz_test") as url:
        yield url


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def target(
    fuzz_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Target]:
    server = FuzzServer(fuzz_database, tmp_path_factory.mktemp("fuzz-log") / "server.log")
    server.start()
    running = Target(server)
    try:
        yield running
    finally:
        await running.close_channels()
        server.stop()
        print(f"\nfuzz server: {server.restarts} restarts; log {server.log_path}")
    assert not running.findings, f"{running.findings} failing examples, recorded in {FINDINGS}"
