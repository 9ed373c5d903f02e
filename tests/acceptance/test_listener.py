"""The listener: TLS, mutual TLS, and what a server refuses at start (issue 11, parts 5, 6).

Each test starts a real server of its own on the suite's database, with
certificates a throwaway CA signs (tests/fakes/tls.py), and calls it as a
client would: grpc's own TLS, verified against that CA.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pushhub.v1 import admin_pb2, admin_pb2_grpc
from pushhub_server.config import Config
from pushhub_server.listener import Listener, StartupError
from tests.fakes.tls import TlsFiles, issue_client_files, issue_tls_files

from .harness import ADMIN_METADATA, start_test_server

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def server_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return issue_tls_files(tmp_path_factory.mktemp("listener-tls"))


@pytest.fixture(scope="module")
def client_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A client certificate, and the CA that signed it (the server's client CA)."""
    return issue_client_files(tmp_path_factory.mktemp("listener-client"))


@asynccontextmanager
async def running(database_url: str, clock, **settings) -> AsyncIterator[int]:
    server = await start_test_server(database_url, clock, **settings)
    try:
        yield server.port
    finally:
        await server.stop(1.0)


def tls(files: TlsFiles, client: TlsFiles | None = None) -> grpc.ChannelCredentials:
    """A client's credentials: the server verified against files' CA, with client's cert."""
    return grpc.ssl_channel_credentials(
        root_certificates=files.ca_file.read_bytes(),
        private_key=client.key_file.read_bytes() if client else None,
        certificate_chain=client.cert_file.read_bytes() if client else None,
    )


async def answers(channel: grpc.aio.Channel) -> grpc.StatusCode:
    """OK when the server answers a health check and an admin call on channel."""
    try:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == SERVING
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await admin.ListApps(admin_pb2.ListAppsRequest(), metadata=ADMIN_METADATA, timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def call_over(credentials: grpc.ChannelCredentials | None, port: int) -> grpc.StatusCode:
    address = f"127.0.0.1:{port}"
    if credentials is None:
        channel = grpc.aio.insecure_channel(address)
    else:
        channel = grpc.aio.secure_channel(address, credentials)
    async with channel:
        return await answers(channel)


async def test_a_tls_server_answers_tls_clients_only(
    empty_database: str, clock, server_files: TlsFiles, tmp_path: Path
) -> None:
    settings = {"tls_cert": str(server_files.cert_file), "tls_key": str(server_files.key_file)}
    async with running(empty_database, clock, **settings) as port:
        assert await call_over(tls(server_files), port) == grpc.StatusCode.OK
        assert await call_over(None, port) == grpc.StatusCode.UNAVAILABLE
        stranger = issue_tls_files(tmp_path / "stranger")  # a CA the server's cert is not from
        assert await call_over(tls(stranger), port) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_refuses_clients_without_a_certificate_from_the_client_ca(
    empty_database: str, clock, server_files: TlsFiles, client_files: TlsFiles, tmp_path: Path
) -> None:
    settings = {
        "tls_cert": str(server_files.cert_file),
        "tls_key": str(server_files.key_file),
        "tls_client_ca": str(client_files.ca_file),
    }
    async with running(empty_database, clock, **settings) as port:
        assert await call_over(tls(server_files, client_files), port) == grpc.StatusCode.OK
        assert await call_over(tls(server_files), port) == grpc.StatusCode.UNAVAILABLE
        forged = issue_client_files(tmp_path / "forged")  # same name, another CA
        assert await call_over(tls(server_files, forged), port) == grpc.StatusCode.UNAVAILABLE
        assert await call_over(None, port) == grpc.StatusCode.UNAVAILABLE


async def start_error(database_url: str, clock, **settings) -> str:
    with pytest.raises(StartupError) as caught:
        await start_test_server(database_url, clock, **settings)
    message = str(caught.value)
    assert "\n" not in message
    return message


async def test_unusable_tls_files_are_named_in_one_line(
    empty_database: str, clock, server_files: TlsFiles, tmp_path: Path
) -> None:
    cert, key = str(server_files.cert_file), str(server_files.key_file)
    missing = str(tmp_path / "missing.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    other_key = str(issue_tls_files(tmp_path / "other").key_file)

    message = await start_error(empty_database, clock, tls_cert=missing, tls_key=key)
    assert (
        message
        == f"PUSHHUB_TLS_CERT (--tls-cert): cannot read {missing}: No such file or directory"
    )
    message = await start_error(empty_database, clock, tls_cert=str(garbage), tls_key=key)
    assert message == (
        f"PUSHHUB_TLS_CERT (--tls-cert): {garbage} is not usable: it holds no PEM certificate"
    )
    message = await start_error(empty_database, clock, tls_cert=cert, tls_key=str(garbage))
    assert message == (
        f"PUSHHUB_TLS_KEY (--tls-key): {garbage} is not usable: it holds no PEM private key"
    )
    message = await start_error(empty_database, clock, tls_cert=cert, tls_key=other_key)
    assert message == f"the key in {other_key} does not belong to the certificate in {cert}"
    message = await start_error(empty_database, clock, tls_cert=cert)
    assert "go together" in message
    message = await start_error(empty_database, clock, tls_client_ca=cert)
    assert "needs PUSHHUB_TLS_CERT and PUSHHUB_TLS_KEY" in message
    message = await start_error(
        empty_database, clock, tls_cert=cert, tls_key=key, tls_client_ca=missing
    )
    assert message.startswith(f"PUSHHUB_TLS_CLIENT_CA (--tls-client-ca): cannot read {missing}")


async def test_plaintext_beyond_loopback_needs_an_explicit_opt_in(
    empty_database: str, clock, server_files: TlsFiles
) -> None:
    message = await start_error(empty_database, clock, listen="0.0.0.0:0")
    assert message.startswith("refusing plaintext on 0.0.0.0:0, which is not a loopback address")
    assert "PUSHHUB_ALLOW_PLAINTEXT" in message and "PUSHHUB_TLS_CERT" in message
    # Checked before anything binds: the opt-in, or TLS, is enough.
    for settings in (
        {"allow_plaintext": True},
        {"tls_cert": str(server_files.cert_file), "tls_key": str(server_files.key_file)},
    ):
        config = Config(listen="0.0.0.0:0", **settings)
        assert Listener.from_config(config).address == "0.0.0.0:0"
    for loopback in ("127.0.0.1:0", "localhost:0", "[::1]:0"):
        assert not Listener.from_config(Config(listen=loopback)).tls


async def test_a_taken_address_is_refused_at_once(server, empty_database: str, clock) -> None:
    address = f"127.0.0.1:{server.port}"
    message = await start_error(empty_database, clock, listen=address)
    assert message == (
        f"cannot listen on {address}: the address is already in use (another pushhub serve?)"
    )


async def test_an_address_of_no_interface_here_is_refused_at_once(
    empty_database: str, clock
) -> None:
    address = "192.0.2.1:50051"  # TEST-NET-1: never this machine's; binding sends nothing
    message = await start_error(empty_database, clock, listen=address, allow_plaintext=True)
    assert message == f"cannot listen on {address}: Cannot assign requested address"
