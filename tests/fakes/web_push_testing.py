"""web-push-testing (npm): a real, independent Web Push service, run on 127.0.0.1.

scripts/web-push-testing.sh installs the package into build/ on first use (as
scripts/buf.sh does for buf) and starts tests/fakes/web_push_testing.js, which
prints the port it listens on. The service speaks plain HTTP/1.1; its endpoints
are ``http://localhost:PORT/notify/<clientHash>``. It checks the VAPID token
against the subscription's applicationServerKey (node's jsonwebtoken), decrypts
aes128gcm with node's http_ece, and answers 201, 400, or 410 once a
subscription is expired.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "web-push-testing.sh"
# The first run installs the npm package.
START_TIMEOUT = 300.0


@dataclass(frozen=True)
class Subscription:
    endpoint: str
    p256dh: str
    auth: str
    client_hash: str


class WebPushTesting:
    """A running web-push-testing service; ``await WebPushTesting.start()``."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self._process = process
        self.port = port
        self.base_url = f"http://localhost:{port}"

    @classmethod
    async def start(cls) -> WebPushTesting:
        process = await asyncio.create_subprocess_exec(str(SCRIPT), stdout=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            process.terminate()
            await process.wait()
            raise
        if not line.startswith(b"listening on "):
            await process.wait()
            raise RuntimeError(f"web-push-testing did not start (exit {process.returncode})")
        return cls(process, int(line.split()[-1]))

    async def stop(self) -> None:
        self._process.terminate()
        await self._process.wait()

    async def subscribe(self, application_server_key: str) -> Subscription:
        status, answer = await self._post(
            "/subscribe", {"applicationServerKey": application_server_key}
        )
        assert status == 200, answer
        data = answer["data"]
        return Subscription(
            data["endpoint"], data["keys"]["p256dh"], data["keys"]["auth"], data["clientHash"]
        )

    async def expire(self, subscription: Subscription) -> None:
        status, _ = await self._post(f"/expire-subscription/{subscription.client_hash}", {})
        assert status == 200

    async def notifications(self, subscription: Subscription) -> list[str]:
        """The decrypted payloads the service received for this subscription."""
        status, answer = await self._post(
            "/get-notifications", {"clientHash": subscription.client_hash}
        )
        assert status == 200, answer
        return list(answer["data"]["messages"])

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await asyncio.to_thread(_post_json, self.base_url + path, body)


def _post_json(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()
