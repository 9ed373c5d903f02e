"""One structured log line per RPC: method, status code and duration (issue #2, 3)."""

from __future__ import annotations

import json
import logging

import grpc
import pytest

from pushhub.v1 import registration_pb2 as reg

from .harness import APNS, AppHandle, stream_requests

SERVICE = "/pushhub.v1.DeviceRegistrationService"


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "pushhub.rpc"]


async def test_each_rpc_logs_its_method_code_and_duration(
    app: AppHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pushhub.rpc")
    for _ in range(2):  # a method's second call logs like its first
        await app.register()
    with pytest.raises(grpc.aio.AioRpcError):
        await app.stubs.registrations.RegisterDevice(
            reg.RegisterDeviceRequest(platform=APNS), metadata=app.server()
        )
    call = app.stubs.registrations.RegisterDevices(
        stream_requests([reg.RegisterDevicesRequest()]), metadata=app.server()
    )
    _ = [response async for response in call]

    lines = _lines(caplog)
    assert [(line["method"], line["code"]) for line in lines] == [
        (f"{SERVICE}/RegisterDevice", "OK"),
        (f"{SERVICE}/RegisterDevice", "OK"),
        (f"{SERVICE}/RegisterDevice", "INVALID_ARGUMENT"),
        (f"{SERVICE}/RegisterDevices", "OK"),
    ]
    assert all(isinstance(line["duration_ms"], float | int) for line in lines)
    assert all(line["duration_ms"] >= 0 for line in lines)  # type: ignore[operator]


async def test_warning_level_drops_the_rpc_lines(
    app: AppHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """PUSHHUB_LOG_LEVEL=WARNING (or --log-level) silences the per-RPC lines."""
    caplog.set_level(logging.WARNING, logger="pushhub.rpc")
    await app.register()
    assert _lines(caplog) == []
