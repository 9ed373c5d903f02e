"""`pushhub serve` as an operator runs it: a real process, real signals, real stderr.

- A start that cannot work (a bad database URL, an unreachable database, a
  taken port, a missing certificate) exits non-zero at once with one line
  naming the problem, never a traceback (issue 11, part 6).
- SIGTERM ends open watches at once with UNAVAILABLE, so the drain waits only
  for real work; a second SIGINT (Ctrl-C again) exits without waiting.

Each server has a SQLite file of its own: these are about the process, not a backend.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pushhub.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    publish_pb2,
    publish_pb2_grpc,
    registration_pb2,
    registration_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
)
from tests.acceptance.harness import APNS, check_error, new_token, timestamp

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "serve-process-admin"
# Far longer than any test may take: a stop that waited for it would time the test out.
GRACE = 600
# Generous bounds for a process to start or exit, never assertions about speed.
PROCESS_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Serve:
    """One `python -m pushhub_server serve` with its output in a file."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.port = free_port()
        self.log = workdir / f"serve-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHHUB_")}
        command = [sys.executable, "-m", "pushhub_server", "serve", "--listen", self.address]
        command += ["--database-url", f"sqlite+aiosqlite:///{workdir / 'serve.db'}"]
        command += ["--admin-token", ADMIN_TOKEN, "--grace-period", str(GRACE), *args]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def serving(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PROCESS_TIMEOUT
        async with grpc.aio.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.process.poll() is None, f"serve exited:\n{self.output()}"
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                assert loop.time() < deadline, f"serve never served:\n{self.output()}"
                await asyncio.sleep(0.1)

    async def logged(self, text: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PROCESS_TIMEOUT
        while text not in self.output():
            assert loop.time() < deadline, f"never logged {text!r}:\n{self.output()}"
            await asyncio.sleep(0.05)

    async def exit_code(self) -> int:
        return await asyncio.to_thread(self.process.wait, PROCESS_TIMEOUT)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Serve]]:
    servers: list[Serve] = []
    yield servers
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait(10)


def serve(started: list[Serve], workdir: Path, *args: str) -> Serve:
    server = Serve(workdir, *args)
    started.append(server)
    return server


async def server_key(channel: grpc.aio.Channel) -> tuple[tuple[str, str], ...]:
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    created = await admin.CreateApp(
        admin_pb2.CreateAppRequest(name="serve-process"),
        metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),),
    )
    return (("authorization", f"Bearer {created.server_key}"),)


async def import_in_flight(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamCall:
    """Real work in flight: an import stream whose client has not finished."""
    stream = registration_pb2_grpc.DeviceRegistrationServiceStub(channel).RegisterDevices(
        metadata=await server_key(channel)
    )
    item = registration_pb2.RegisterDeviceRequest(platform=APNS, device_token=new_token())
    await stream.write(registration_pb2.RegisterDevicesRequest(registrations=[item]))
    await stream.read()
    return stream


# ------------------------------------------------------------------ start ----


# Each: the arguments, and all that serve may print. {free} is a closed port,
# {dir} the test's directory.
UNWORKABLE_STARTS = [
    (
        ("--database-url", "postgres://pushhub:s3cret@127.0.0.1:5432/pushhub"),
        "error: database URL postgres://pushhub:***@127.0.0.1:5432/pushhub: PushHub "
        "connects through asyncpg; use postgresql+asyncpg://pushhub:***@127.0.0.1:5432/pushhub",
    ),
    (
        ("--database-url", "postgresql+asyncpg://pushhub:s3cret@127.0.0.1:{free}/pushhub"),
        "error: cannot connect to the database postgresql+asyncpg://pushhub:***@127.0.0.1:"
        "{free}/pushhub: nothing listens at 127.0.0.1:{free}; is PostgreSQL running there?",
    ),
    (
        ("--tls-cert", "{dir}/missing.pem", "--tls-key", "{dir}/missing-key.pem"),
        "error: PUSHHUB_TLS_CERT (--tls-cert): cannot read {dir}/missing.pem: "
        "No such file or directory",
    ),
    (
        ("--workers", "2"),
        "error: --workers 2 (PUSHHUB_WORKERS) needs PostgreSQL: SQLite is one process; "
        "use --workers 1",
    ),
    (
        ("--listen", "0.0.0.0:{free}"),
        "error: refusing plaintext on 0.0.0.0:{free}, which is not a loopback address: API "
        "keys would cross the network in clear text. Set PUSHHUB_TLS_CERT and PUSHHUB_TLS_KEY "
        "(--tls-cert, --tls-key), or PUSHHUB_ALLOW_PLAINTEXT=1 (--allow-plaintext) when a "
        "TLS-terminating proxy is in front",
    ),
]


async def test_a_start_that_cannot_work_is_one_line(started: list[Serve], tmp_path: Path) -> None:
    values = {"free": free_port(), "dir": tmp_path}
    servers = [  # started side by side: each process takes a second or two to import
        serve(started, tmp_path, *(arg.format(**values) for arg in args))
        for args, _ in UNWORKABLE_STARTS
    ]
    codes = await asyncio.gather(*(server.exit_code() for server in servers))
    for server, code, (_, says) in zip(servers, codes, UNWORKABLE_STARTS, strict=True):
        assert (code, server.output()) == (1, says.format(**values) + "\n")


async def test_a_second_server_on_a_taken_port_exits_naming_the_address(
    started: list[Serve], tmp_path: Path
) -> None:
    first = serve(started, tmp_path)
    await first.serving()
    second = serve(started, tmp_path, "--listen", first.address)  # the last --listen wins
    assert await second.exit_code() == 1
    assert second.output() == (
        f"error: cannot listen on {first.address}: the address is already in use "
        "(another pushhub serve?)\n"
    )
    await first.serving()  # still the only one answering there


# ---------------------------------------------------------------- signals ----


async def test_sigterm_ends_open_watches_at_once_with_unavailable(
    started: list[Serve], tmp_path: Path
) -> None:
    server = serve(started, tmp_path)
    await server.serving()
    async with grpc.aio.insecure_channel(server.address) as channel:
        auth = await server_key(channel)
        later = timestamp(datetime.now(UTC) + timedelta(hours=1))
        published = await publish_pb2_grpc.PublishServiceStub(channel).Publish(
            publish_pb2.PublishRequest(message="watched", publish_at=later), metadata=auth
        )
        watch = status_pb2_grpc.StatusServiceStub(channel).WatchMessageStatus(
            status_pb2.WatchMessageStatusRequest(message_id=published.message_id), metadata=auth
        )
        await watch.read()  # the watch is open
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await watch.read()
        check_error(ended.value, grpc.StatusCode.UNAVAILABLE, "SERVER_STOPPING")
    # Gone well within the 600 s grace: no watch held the drain.
    assert await server.exit_code() == 0


async def test_a_second_sigint_exits_without_waiting_for_the_drain(
    started: list[Serve], tmp_path: Path
) -> None:
    server = serve(started, tmp_path)
    await server.serving()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stream = await import_in_flight(channel)
        server.process.send_signal(signal.SIGINT)
        await server.logged(f"stopping: in-flight RPCs get {GRACE:.1f} s")
        assert server.process.poll() is None  # draining: the stream is still open
        server.process.send_signal(signal.SIGINT)
        assert await server.exit_code() == 128 + signal.SIGINT
        stream.cancel()
    assert "SIGINT again: exiting now, without waiting for in-flight RPCs" in server.output()
