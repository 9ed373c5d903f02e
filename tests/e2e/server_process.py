"""PushHub as a real subprocess: `python -m pushhub_server ...` on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


class Launcher:
    """Starts `python -m pushhub_server ...` with the test's environment.

    The caller's PUSHHUB_* variables are dropped: the database and `settings`
    (PUSHHUB_* names) are all the configuration the server gets.
    """

    def __init__(self, database_url: str, workdir: Path, settings: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PUSHHUB_")},
            "PUSHHUB_DATABASE_URL": database_url,
            "PUSHHUB_SECRET_KEY": "e2e-test-secret",
            **settings,
        }
        self.started: list[subprocess.Popen] = []

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "pushhub_server", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    async def serve(self) -> ServerProcess:
        port = free_port()
        log = self.workdir / f"server-{len(self.started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "pushhub_server", "serve", "--listen", f"127.0.0.1:{port}"],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started.append(process)
        server = ServerProcess(process, port, log)
        await wait_until_serving(server)
        return server

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(10)


async def wait_until_serving(server: ServerProcess) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            assert server.process.poll() is None, f"server exited:\n{server.output()}"
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            assert loop.time() < deadline, f"server never served:\n{server.output()}"
            await asyncio.sleep(0.1)
