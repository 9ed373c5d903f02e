"""A local HTTP server that records the webhook POSTs PushHub makes.

The server lists the sinks' host and port in PUSHHUB_WEBHOOK_ALLOWED_HOSTS, so a
SinkServer listens on one port for a whole session and gives each test a Sink
of its own under a path prefix: a late retry of one test's webhook never lands
in another's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    """Records every POST; the first `fail_first` attempts are answered 503, and every
    POST is answered with a redirect to `redirect_to` when it is set."""

    port: int = 0
    # Where its URLs start on a shared SinkServer; recorded paths leave it out.
    prefix: str = ""
    received: list[Received] = field(default_factory=list)
    fail_first: int = 0
    redirect_to: str | None = None
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def url(self, path: str | None = None) -> str:
        """A URL on the sink; without a path, one no other test uses."""
        path = path or f"/hooks/{uuid.uuid4().hex}?app=pushhub"
        return self.base + path

    def calls_to(self, url: str) -> list[Received]:
        path = url.removeprefix(self.base)
        with self.lock:
            return [call for call in self.received if call.path == path]

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The first `count` calls to any URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            await asyncio.sleep(0.02)
        raise AssertionError(f"expected {count} webhook calls, got {len(self.received)}")

    async def wait_for_call(self, url: str, timeout: float = 15.0) -> Received:
        """The first call to `url`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if calls := self.calls_to(url):
                return calls[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no webhook call to {url}")

    def record(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        """Counts an attempt; False when it is to be refused (503)."""
        with self.lock:
            self.attempts += 1
            if self.attempts <= self.fail_first:
                return False
            self.received.append(Received(path, headers, body))
            return True


class SinkServer:
    """One listening port; each Sink it hands out owns the paths under its prefix."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sinks: dict[str, Sink] = {}

    @property
    def allowed_host(self) -> str:
        """Its PUSHHUB_WEBHOOK_ALLOWED_HOSTS entry."""
        return f"127.0.0.1:{self.port}"

    def sink(self, prefix: str | None = None) -> Sink:
        prefix = f"/{uuid.uuid4().hex}" if prefix is None else prefix
        sink = self._sinks[prefix] = Sink(port=self.port, prefix=prefix)
        return sink

    def route(self, path: str) -> tuple[Sink, str] | None:
        """The sink owning path, and the path after its prefix."""
        for prefix in sorted(self._sinks, key=len, reverse=True):
            if path.startswith(prefix):
                return self._sinks[prefix], path[len(prefix) :]
        return None


@contextmanager
def running_sinks() -> Iterator[SinkServer]:
    server = SinkServer(0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {key.lower(): value for key, value in self.headers.items()}
            routed = server.route(self.path)
            if routed is None:
                self.send_response(404)
            else:
                sink, path = routed
                accepted = sink.record(path, headers, body)
                if sink.redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", sink.redirect_to)
                else:
                    self.send_response(200 if accepted else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def running_sink() -> Iterator[Sink]:
    """A sink on a server of its own, owning every path."""
    with running_sinks() as server:
        yield server.sink(prefix="")


def signature(key: str, url: str) -> str:
    """What PushHub signs: hex HMAC-SHA256 of the callback URL, keyed by the API key."""
    return hmac.new(key.encode(), url.encode(), hashlib.sha256).hexdigest()
