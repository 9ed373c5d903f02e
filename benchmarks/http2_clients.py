"""HTTP/2 client candidates for the APNs provider, against a local nginx TLS sink.

Prints requests/s for:

- pycurl: libcurl + nghttp2 through ``Http2Client`` (CurlMulti on its own
  thread), the transport the providers use;
- the APNs provider end to end (JWT, headers, classification) on that transport;
- h2 on asyncio: the pure-Python alternative, a minimal multiplexing client;
- httpx (HTTP/2), only when it happens to be installed.

The sink is nginx (Debian package ``nginx-light`` or ``nginx``), started as a
foreground subprocess with a temporary configuration shaped like APNs: TLS with a
certificate from a throwaway CA (the clients verify it), HTTP/2, up to 1,000
concurrent streams, ``keepalive_requests`` high enough never to close, and
``return 200`` for ``/3/device/`` (and FCM v1's ``{"name": …}`` answer for
``/v1/projects/``, which benchmarks/delivery.py uses; Huawei Push Kit's token
endpoint and success answer, which benchmarks/hms_provider.py uses; and 201 for
Web Push's ``/wpush/``). Two cores: nginx runs one worker, so the client gets
the other core.

    .venv/bin/python -m benchmarks.http2_clients [--requests 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import h2.config
import h2.connection
import h2.events
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from benchmarks.common import free_port
from pushhub_server.core.clock import SystemClock
from pushhub_server.core.credentials import ApnsCredentials
from pushhub_server.core.messages import Delivery
from pushhub_server.core.models import Platform
from pushhub_server.delivery.providers.apns import ApnsProvider
from pushhub_server.delivery.providers.http2 import Http2Client, Http2Request
from tests.fakes.tls import TlsFiles, issue_tls_files

TOKEN = "ab" * 32
BODY = b'{"aps":{"alert":{"title":"Sale","body":"Everything is 20% off today"},"sound":"default"}}'
HEADERS = [
    "apns-topic: com.example.app",
    "apns-push-type: alert",
    "apns-priority: 10",
    "apns-expiration: 0",
    "authorization: bearer eyJhbGciOiJFUzI1NiIsImtpZCI6IkFCQzEyM0RFRkcifQ.e30.c2lnbmF0dXJl",
    "content-type: application/json",
]
# Requests in flight: the dispatcher sends chunks of 1,000 and reads the next page
# meanwhile, so two chunks at a time is what the provider sees.
BATCH = 1000
PARALLEL_BATCHES = 2

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 1024; }}
http {{
    log_format uris '$request_uri';
    access_log {access_log};
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        http2_max_concurrent_streams 1000;
        keepalive_requests 100000000;
        location /3/device/ {{ return 200; }}
        # A Web Push service accepts a message with 201 Created
        # (benchmarks/webpush_provider.py).
        location /wpush/ {{ return 201; }}
        # FCM v1's success answer names the message (benchmarks/delivery.py).
        location /v1/projects/ {{
            default_type application/json;
            return 200 '{{"name":"projects/pushhub-bench/messages/0"}}';
        }}
        # Huawei Push Kit (benchmarks/hms_provider.py): its token endpoint, and
        # messages:send's success answer. nginx checks neither token nor body.
        location = /oauth2/v3/token {{
            default_type application/json;
            return 200 '{{"access_token":"bench","expires_in":3600,"token_type":"Bearer"}}';
        }}
        location ~ ^/v1/[^/]+/messages:send$ {{
            default_type application/json;
            return 200 '{{"code":"80000000","msg":"Success","requestId":"0"}}';
        }}
    }}
}}
"""


@contextmanager
def nginx_sink(tls: TlsFiles, access_log: Path | None = None) -> Iterator[str]:
    """Runs nginx in the foreground on a free port; yields its base URL.

    With access_log, nginx writes each request's URI there, one per line (flushed
    by the time this returns): benchmarks/fleet.py counts what reached the sink."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx not found: apt-get install -y nginx-light")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="pushhub-nginx-"))
    conf = workdir / "nginx.conf"
    log = "off" if access_log is None else f"{access_log} uris buffer=256k flush=1s"
    conf.write_text(
        NGINX_CONF.format(
            dir=workdir, port=port, cert=tls.cert_file, key=tls.key_file, access_log=log
        )
    )
    # A session of its own: Linux's autogroup then gives the sink its own share of
    # the CPU, not a part of the benchmark script's (benchmarks/fleet.py).
    process = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(conf)], start_new_session=True)
    try:
        _wait_listening(port, process)
        yield f"https://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: the master stops its worker
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"nginx exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("nginx did not start listening")


async def _timed(total: int, send: Callable[[int], Awaitable[None]]) -> float:
    """Runs PARALLEL_BATCHES workers that each send BATCH-sized batches; returns req/s."""
    queue = [BATCH] * (total // BATCH)

    async def worker() -> None:
        while queue:
            await send(queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(PARALLEL_BATCHES)))
    return total // BATCH * BATCH / (time.perf_counter() - started)


async def bench_pycurl(url: str, ca_file: str, total: int) -> float:
    client = Http2Client(ca_file=ca_file)
    request = Http2Request(f"{url}/3/device/{TOKEN}", HEADERS, BODY)

    async def send(count: int) -> None:
        responses = await client.post_many([request] * count)
        assert all(r.status == 200 for r in responses), responses[0]

    await send(10)  # connect outside the timing
    try:
        return await _timed(total, send)
    finally:
        await client.close()


async def bench_provider(url: str, ca_file: str, total: int) -> float:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    credentials = ApnsCredentials("ABC123DEFG", "TEAM123456", "com.example.app", pem)
    provider = ApnsProvider(credentials, SystemClock(), base_url=url, ca_file=ca_file)
    # One headers dict for every delivery, as the dispatcher renders a broadcast.
    headers = {"apns-push-type": "alert", "apns-priority": "10", "apns-expiration": "0"}

    async def send(count: int) -> None:
        deliveries = [
            Delivery("m", "a", f"r{i}", Platform.APNS, TOKEN, BODY, headers) for i in range(count)
        ]
        results = await provider.send(deliveries)
        assert all(r.reason is None for r in results), results[0]

    await send(10)
    try:
        return await _timed(total, send)
    finally:
        await provider.close()


class _H2Protocol(asyncio.Protocol):
    """A minimal h2 client: keeps `window` streams open until `total` responses arrived."""

    def __init__(self, total: int, window: int, authority: str) -> None:
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self._remaining = total
        self._unsent = total
        self._window = window
        self._headers = [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", authority),
            (":path", f"/3/device/{TOKEN}"),
            *(tuple(line.split(": ", 1)) for line in HEADERS),
        ]
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._h2.initiate_connection()
        self._fill()
        transport.write(self._h2.data_to_send())

    def _fill(self) -> None:
        """Opens streams up to the window, the peer's stream limit and its flow-control window."""
        h2c = self._h2
        limit = min(self._window, h2c.remote_settings.max_concurrent_streams)
        while (
            self._unsent
            and h2c.open_outbound_streams < limit
            and h2c.outbound_flow_control_window >= len(BODY)
        ):
            stream_id = h2c.get_next_available_stream_id()
            h2c.send_headers(stream_id, self._headers)
            h2c.send_data(stream_id, BODY, end_stream=True)
            self._unsent -= 1

    def data_received(self, data: bytes) -> None:
        for event in self._h2.receive_data(data):
            if isinstance(event, h2.events.StreamEnded):
                self._remaining -= 1
            elif isinstance(event, h2.events.DataReceived):
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.finished.set_exception(RuntimeError(f"GOAWAY {event.error_code}"))
        self._fill()
        assert self._transport is not None
        self._transport.write(self._h2.data_to_send())
        if not self._remaining and not self.finished.done():
            self.finished.set_result(None)


async def bench_h2(url: str, ca_file: str, total: int) -> float:
    port = int(url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["h2"])
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    transport, protocol = await loop.create_connection(
        lambda: _H2Protocol(total, PARALLEL_BATCHES * BATCH, f"127.0.0.1:{port}"),
        "127.0.0.1",
        port,
        ssl=context,
    )
    try:
        await protocol.finished
    finally:
        transport.close()
    return total / (time.perf_counter() - started)


async def bench_httpx(url: str, ca_file: str, total: int) -> float | None:
    try:
        import httpx
    except ImportError:
        return None
    async with httpx.AsyncClient(
        http2=True, verify=ssl.create_default_context(cafile=ca_file)
    ) as c:

        async def send(count: int) -> None:
            for _ in range(count):  # one at a time: it fails with concurrent streams
                response = await c.post(f"{url}/3/device/{TOKEN}", content=BODY)
                assert response.status_code == 200

        return await _timed(total, send)


async def main(total: int, rounds: int) -> None:
    tls = issue_tls_files(Path(tempfile.mkdtemp(prefix="pushhub-tls-")), ("localhost",))
    ca_file = str(tls.ca_file)
    candidates: list[tuple[str, Callable[[str, str, int], Awaitable[float | None]], int]] = [
        ("pycurl Http2Client (CurlMulti on asyncio)", bench_pycurl, total),
        ("ApnsProvider.send on Http2Client", bench_provider, total),
        ("h2 on asyncio (pure Python)", bench_h2, min(total, 50_000)),
        ("httpx (HTTP/2, one request at a time)", bench_httpx, min(total, 5 * BATCH)),
    ]
    with nginx_sink(tls) as url:
        print(
            f"nginx HTTP/2 TLS sink at {url}; {os.cpu_count()} cores; best and median of {rounds}"
        )
        for name, bench, requests in candidates:
            rates = [await bench(url, ca_file, requests) for _ in range(rounds)]
            if None in rates:
                print(f"{name}: not installed, skipped")
                continue
            measured = sorted(rate for rate in rates if rate is not None)
            best, median = measured[-1], measured[len(measured) // 2]
            print(
                f"{name:<42} {best:>8,.0f} req/s best, {median:>8,.0f} median ({requests:,} POSTs)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    # The machine may be shared: several rounds show how much the figures move.
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.rounds))
