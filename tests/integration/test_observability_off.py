"""Metrics and traces off cost nothing: a server started without
PUSHHUB_METRICS_LISTEN and OTEL_EXPORTER_OTLP_ENDPOINT never imports
prometheus-client or OpenTelemetry (docs/observability.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_PROGRAM = """
import asyncio, sys
from pushhub_server.config import Config
from pushhub_server.server import start_server

async def main():
    running = await start_server(Config(database_url=sys.argv[1], listen="127.0.0.1:0"))
    await running.stop(0)

asyncio.run(main())
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(" ".join(name for name in loaded if name in ("prometheus_client", "opentelemetry")))
"""


def _loaded(tmp_path: Path, **settings: str) -> list[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PUSHHUB_", "OTEL_"))},
        **settings,
    }
    url = f"sqlite+aiosqlite:///{tmp_path / 'off.db'}"
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_off_imports_neither(tmp_path: Path) -> None:
    assert _loaded(tmp_path) == []


def test_the_otlp_endpoint_turns_tracing_on(tmp_path: Path) -> None:
    # Nothing listens there: spans are batched and dropped, the server still starts.
    assert _loaded(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9") == ["opentelemetry"]


def test_otel_sdk_disabled_keeps_tracing_off(tmp_path: Path) -> None:
    settings = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}
    assert _loaded(tmp_path, **settings) == []


def test_a_traces_only_endpoint_turns_tracing_on(tmp_path: Path) -> None:
    settings = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}
    assert _loaded(tmp_path, **settings) == ["opentelemetry"]
