"""The clients in examples/ run as their READMEs say, against a real PushHub.

Each registers a device, publishes to it and watches the message until it is
PUBLISHED. The server is `python -m pushhub_server serve` in a subprocess, on
an app without credentials, so the simulator delivers and records each push.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e.conftest import REPO
from tests.e2e.server_process import Launcher, ServerProcess

pytestmark = pytest.mark.slow


@dataclass
class ServedApp:
    launcher: Launcher
    server: ServerProcess
    server_key: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served_app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServedApp]:
    workdir = tmp_path_factory.mktemp("examples")
    launcher = Launcher(f"sqlite+aiosqlite:///{workdir / 'examples.db'}", workdir, {})
    created = json.loads(launcher.cli("apps", "create", "examples", "--json"))
    try:
        yield ServedApp(launcher, await launcher.serve(), created["server_key"])
    finally:
        launcher.kill_all()


async def run_client(command: list[str], cwd: Path, app: ServedApp) -> list[str]:
    """The client's output lines; it gets the server's address and key as its README says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHHUB_")}
    env |= {"PUSHHUB_ADDRESS": app.server.address, "PUSHHUB_SERVER_KEY": app.server_key}
    done = await asyncio.to_thread(
        subprocess.run, command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\nserver:\n{app.server.output()}"
    return done.stdout.splitlines()


def assert_delivered_once(lines: list[str], app: ServedApp, body: str) -> None:
    """Registered, published, watched to PUBLISHED, and the simulator got exactly one push."""
    assert lines[0].startswith("registered "), lines
    assert lines[1].startswith("published "), lines
    assert lines[-1] == "PUBLISHED sent=1 failed=0", lines
    for line in lines[2:-1]:
        assert line.split()[0] in {"SCHEDULED", "PUBLISHING"}, lines
    message_id = lines[1].removeprefix("published ")
    inbox = app.launcher.cli("inbox", "--message", message_id, "--json").splitlines()
    assert len(inbox) == 1, inbox
    assert body in inbox[0], inbox


async def test_python_client(served_app: ServedApp) -> None:
    lines = await run_client(
        [sys.executable, "client.py"], REPO / "examples" / "python", served_app
    )
    assert_delivered_once(lines, served_app, "from Python")


async def test_typescript_client(served_app: ServedApp, ts_example: Path) -> None:
    lines = await run_client(["npm", "start", "--silent"], ts_example, served_app)
    assert_delivered_once(lines, served_app, "from TypeScript")
