"""Fixtures for tests that run the repository's own tools: make, npm, node."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

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
