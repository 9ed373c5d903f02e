"""Multiplexed HTTP/2 POSTs through libcurl (pycurl's CurlMulti), driven by the asyncio loop.

Why libcurl: against a local nginx HTTP/2 sink it carries several times the
requests of a pure-Python HTTP/2 stack, and httpx broke down with concurrent
streams (docs/performance.md, "HTTP/2 client", has the figures and
benchmarks/http2_clients.py reproduces them). Framing, HPACK and TLS all run in
C; Python touches each request a handful of times.

How it meets asyncio: each client runs its CurlMulti on a dedicated thread, so
libcurl, nghttp2 and TLS (which run with the GIL released) use another core and
the event loop stays free for gRPC. post_many hands its requests to the thread
through a queue and wakes it through a socketpair; the thread watches libcurl's
sockets (M_SOCKETFUNCTION) with its own selector alongside the wakeup socket,
asks libcurl for its next timeout (``CurlMulti.timeout``) before each wait, calls
``socket_action`` and resolves each finished batch's future with
``loop.call_soon_threadsafe``. Every libcurl object is touched by that thread only.

Python per request, on that thread: every call from libcurl into Python must take
the GIL, which the busy event loop holds most of the time, so each one can stall
the thread for up to the interpreter's switch interval. So no timer callback
(M_TIMERFUNCTION would run on every add_handle; asking for the timeout once per
round is enough, as libcurl is only ever called from this thread) and no header
callback: the status comes from CURLINFO_RESPONSE_CODE and ``Retry-After`` from
CURLINFO_RETRY_AFTER (libcurl parses both forms), and a body, which only error
responses carry, is the one callback left. A finished easy handle keeps its
options, so a request whose header list or body is the same object as its
handle's previous one does not set them again: callers share one header list
across the requests of a batch.

Connections: transfers are multiplexed (PIPEWAIT + PIPE_MULTIPLEX) as streams of
one connection up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS; ``max_connections``
bounds the connections per host, and libcurl queues transfers beyond that. One
thread's libcurl work per request (HTTP/2 framing, TLS, a send() each) is what
bounds a client, so ``ShardedHttp2Client`` spreads each batch over several
clients, each with its own connection and thread: their C work runs in parallel
and one thread's wait for the GIL does not stall the others.

Lost connections: when the peer sends GOAWAY, nghttp2 fails the streams above
its last-stream-id as REFUSED_STREAM and libcurl resends them on a new connection
itself. A transfer that fails anyway (the connection dropped while it was in
flight, or could not be made) is resent here, up to ``resend_attempts`` times, so
a transport failure reaches the caller only when fresh connections did not help.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import selectors
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import pycurl

_log = logging.getLogger(__name__)

# Transfers are not resent after a timeout: the peer is stalling, and waiting
# `timeout` again per attempt would hold the caller far longer than it expects.
_NOT_RESENT = frozenset({pycurl.E_OPERATION_TIMEDOUT})
# Idle easy handles kept for reuse; beyond this, finished handles are closed.
_IDLE_HANDLES = 4096
# Transfers the worker thread hands to libcurl before it services sockets again, so
# responses keep flowing while a large batch is being added.
_SLICE = 500


@dataclass(frozen=True, slots=True)
class Http2Request:
    url: str
    # Complete header lines, "name: value". Not modified once handed over: requests
    # share one list, and a handle that sent this very list reuses it (module docstring).
    headers: list[str]
    body: bytes
    # CURLOPT_RESOLVE lines, "host:port:address[,address]": connect to exactly these
    # addresses (checked by the caller), never to what DNS says at connect time.
    # Shared and never modified, like headers. A pinned request (any list, even an
    # empty one for an IP literal) also ignores the proxy environment variables: a
    # proxy would resolve the name itself.
    resolve: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Http2Response:
    # 0 when the transfer failed before any response arrived (see error).
    status: int
    body: bytes = b""
    # libcurl's description of a transport failure, else None.
    error: str | None = None
    error_code: int = 0
    # Retry-After in seconds (delta-seconds, or an HTTP date less the system time);
    # None when absent or zero. Read for unsuccessful responses only.
    retry_after: float | None = None

    @property
    def timed_out(self) -> bool:
        return self.error_code == pycurl.E_OPERATION_TIMEDOUT


# Nearly every response: one shared object instead of one per request.
_OK = Http2Response(200)


class _Batch:
    """The transfers of one post_many call; the future resolves when all have finished.

    ``responses`` and ``remaining`` are touched by the worker thread only until the
    future resolves; ``cancelled`` is set by the event loop.
    """

    __slots__ = ("requests", "responses", "remaining", "future", "loop", "cancelled")

    def __init__(
        self,
        requests: Sequence[Http2Request],
        future: asyncio.Future[None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.requests = requests
        self.responses: list[Http2Response | None] = [None] * len(requests)
        self.remaining = len(requests)
        self.future = future
        self.loop = loop
        self.cancelled = False

    def finish(self, index: int, response: Http2Response) -> None:
        """Worker thread: records one response; the last one resolves the future."""
        self.responses[index] = response
        self.remaining -= 1
        if not self.remaining:
            # RuntimeError: the loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Transfer:
    """An easy handle configured once, plus where its response lands; reused across requests."""

    __slots__ = ("curl", "body_chunks", "batch", "index", "headers", "body", "resolve")

    def __init__(self, ca_file: str | None, timeout: float, connect_timeout: float) -> None:
        self.body_chunks: list[bytes] = []
        self.batch: _Batch | None = None
        self.index = 0
        # The header list and body the handle holds now (see Http2Request.headers).
        self.headers: list[str] | None = None
        self.body: bytes | None = None
        self.resolve: list[str] | None = None
        curl = pycurl.Curl()
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
        # pycurl's default names pycurl, libcurl and every TLS and compression
        # library (about 160 bytes), formatted into every request.
        curl.setopt(pycurl.USERAGENT, "pushhub")
        # Wait for an existing connection to offer a stream instead of opening another.
        curl.setopt(pycurl.PIPEWAIT, 1)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.TIMEOUT_MS, int(timeout * 1000))
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(connect_timeout * 1000))
        if ca_file:
            curl.setopt(pycurl.CAINFO, ca_file)
        # A bound C-level append: no Python frame per body chunk.
        curl.setopt(pycurl.WRITEFUNCTION, self.body_chunks.append)
        self.curl = curl

    def start(self, request: Http2Request, batch: _Batch, index: int) -> None:
        self.batch = batch
        self.index = index
        curl = self.curl
        curl.setopt(pycurl.URL, request.url)
        if request.headers is not self.headers:
            curl.setopt(pycurl.HTTPHEADER, request.headers)
            self.headers = request.headers
        if request.body is not self.body:
            curl.setopt(pycurl.POSTFIELDS, request.body)
            self.body = request.body
        if request.resolve is not self.resolve:
            self._pin(request.resolve)

    def _pin(self, resolve: list[str] | None) -> None:
        curl = self.curl
        curl.setopt(pycurl.RESOLVE, resolve or [])
        if resolve is not None and self.resolve is None:
            curl.setopt(pycurl.PROXY, "")  # "": no proxy, whatever the environment says
        self.resolve = resolve

    def response(self, error: str | None, error_code: int) -> Http2Response:
        if error:
            return Http2Response(0, error=error, error_code=error_code)
        curl = self.curl
        status = curl.getinfo(pycurl.RESPONSE_CODE)
        if status == 200 and not self.body_chunks:
            return _OK
        body = b"".join(self.body_chunks)
        if 200 <= status < 300:
            return Http2Response(status, body)
        retry_after = curl.getinfo(pycurl.RETRY_AFTER)
        return Http2Response(status, body, retry_after=float(retry_after) if retry_after else None)

    def reset(self) -> None:
        self.body_chunks.clear()
        self.batch = None


# Commands from the event loop to the worker thread.
_ADD = 0  # (_ADD, batch)
_CANCEL = 1  # (_CANCEL, batch)
_CLOSE = 2  # (_CLOSE, None)


class Http2Client:
    """POSTs many requests at once over multiplexed HTTP/2 connections.

    Bound to the event loop it is first used on. Call ``close`` when done.
    """

    def __init__(
        self,
        *,
        max_connections: int = 1,
        max_streams: int = 1000,
        ca_file: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        resend_attempts: int = 3,
    ) -> None:
        self._ca_file = ca_file
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._resend_attempts = resend_attempts
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # Event loop -> worker thread.
        self._commands: collections.deque[tuple[int, _Batch | None]] = collections.deque()
        # Guards _worker_done against commands queued while the worker drains its queue.
        self._lock = threading.Lock()
        self._worker_done = False
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        # Worker-thread state from here on (the thread does not exist yet).
        self._selector: selectors.BaseSelector | None = None
        self._active: dict[pycurl.Curl, _Transfer] = {}
        self._idle: list[_Transfer] = []
        self._pending: collections.deque[tuple[_Batch, int]] = collections.deque()
        multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, max_connections)
        # libcurl opens at most 100 streams per connection unless told otherwise; the
        # peer's SETTINGS_MAX_CONCURRENT_STREAMS (APNs: about 1,000) still applies.
        multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, max_streams)
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch_socket)
        self._multi: pycurl.CurlMulti = multi

    async def post_many(self, requests: Sequence[Http2Request]) -> list[Http2Response]:
        """One response per request, in order; transport failures come back as responses."""
        responses = await self._post_once(requests)
        for _ in range(self._resend_attempts):
            failed = [i for i, r in enumerate(responses) if _resendable(r)]
            if not failed or self._closed:
                break
            resent = await self._post_once([requests[i] for i in failed])
            for index, response in zip(failed, resent, strict=True):
                responses[index] = response
        return responses

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        thread, stopped = self._thread, self._stopped
        if thread is None:
            self._multi.close()
            return
        self._send(_CLOSE, None)
        if stopped is not None and asyncio.get_running_loop() is self._loop:
            await asyncio.shield(stopped)
        thread.join()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    # ------------------------------------------------- event-loop side

    async def _post_once(self, requests: Sequence[Http2Request]) -> list[Http2Response]:
        if not requests:
            return []
        self._require_open()
        loop = self._bind_loop()
        batch = _Batch(requests, loop.create_future(), loop)
        self._ensure_thread(loop)
        self._send(_ADD, batch)
        try:
            await batch.future
        except asyncio.CancelledError:
            batch.cancelled = True
            if not self._closed:
                self._send(_CANCEL, batch)
            raise
        return batch.responses  # type: ignore[return-value]  # all filled once resolved

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("Http2Client is bound to another event loop")
        return loop

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("Http2Client is closed")

    def _ensure_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is not None:
            return
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopped = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(loop, self._stopped), name="pushhub-http2", daemon=True
        )
        self._thread.start()

    def _send(self, command: int, batch: _Batch | None) -> None:
        with self._lock:
            if self._worker_done:  # the worker stopped on an unexpected error
                if command == _ADD:
                    raise RuntimeError("Http2Client is closed")
                return
            self._commands.append((command, batch))
        assert self._wake_w is not None
        # BlockingIOError: the buffer is full of wake-ups already; the thread will look.
        with contextlib.suppress(BlockingIOError, InterruptedError):
            self._wake_w.send(b"\0")

    # ------------------------------------------------- worker thread

    def _run(self, loop: asyncio.AbstractEventLoop, stopped: asyncio.Future[None]) -> None:
        try:
            self._serve()
        except Exception:
            # Logged here, where the traceback is: the thread ends, and _shut_down
            # has answered every request it held.
            _log.exception("HTTP/2 client worker stopped")
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(_resolve, stopped)

    def _serve(self) -> None:
        multi = self._multi
        wake_r = self._wake_r
        assert wake_r is not None
        selector = self._selector = selectors.DefaultSelector()
        selector.register(wake_r, selectors.EVENT_READ, None)
        closing = False
        try:
            while not closing:
                timeout: float | None = 0
                if not (self._pending or self._commands):
                    timeout_ms = multi.timeout()  # -1: libcurl has no timer running
                    timeout = None if timeout_ms < 0 else timeout_ms / 1000
                for key, mask in selector.select(timeout):
                    if key.data is None:
                        _drain(wake_r)
                        continue
                    fd = key.fd
                    event = 0
                    if mask & selectors.EVENT_READ:
                        event |= pycurl.CSELECT_IN
                    if mask & selectors.EVENT_WRITE:
                        event |= pycurl.CSELECT_OUT
                    # An earlier socket_action in this round may have dropped the socket.
                    if selector.get_map().get(fd) is key:
                        multi.socket_action(fd, event)
                if not multi.timeout():  # a timer is due
                    multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
                self._collect()
                closing = self._take_commands()
                if self._pending:
                    self._start_slice()
                    self._collect()
        finally:
            self._shut_down()

    def _take_commands(self) -> bool:
        """Runs queued commands; True when the client is closing."""
        commands = self._commands
        while commands:
            command, batch = commands.popleft()
            if command == _CLOSE:
                return True
            assert batch is not None
            if command == _ADD:
                if not batch.cancelled:
                    self._pending.append((batch, 0))
            else:
                self._cancel(batch)
        return False

    def _start_slice(self) -> None:
        """Adds up to _SLICE pending requests and lets libcurl start them right away."""
        multi = self._multi
        budget = _SLICE
        pending = self._pending
        while pending and budget:
            batch, first = pending.popleft()
            if batch.cancelled:
                continue
            requests = batch.requests
            last = min(first + budget, len(requests))
            for index in range(first, last):
                try:
                    transfer = self._idle.pop() if self._idle else self._new_transfer()
                    transfer.start(requests[index], batch, index)
                    multi.add_handle(transfer.curl)
                except BaseException:
                    # The worker stops on this; _shut_down fails what never reached
                    # libcurl, so the caller gets answers instead of waiting forever.
                    pending.appendleft((batch, index))
                    raise
                self._active[transfer.curl] = transfer
            budget -= last - first
            if last < len(requests):
                pending.appendleft((batch, last))
        # New transfers are due at once.
        multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)

    def _new_transfer(self) -> _Transfer:
        return _Transfer(self._ca_file, self._timeout, self._connect_timeout)

    def _cancel(self, batch: _Batch) -> None:
        """Stops a cancelled batch's transfers that are still running."""
        for curl, transfer in list(self._active.items()):
            if transfer.batch is batch:
                del self._active[curl]
                self._multi.remove_handle(curl)
                self._release(transfer)

    def _finish(self, curl: pycurl.Curl, error: str | None, error_code: int) -> None:
        transfer = self._active.pop(curl, None)
        if transfer is None:
            return
        self._multi.remove_handle(curl)
        batch, index = transfer.batch, transfer.index
        response = transfer.response(error, error_code)
        self._release(transfer)
        if batch is not None:
            batch.finish(index, response)

    def _release(self, transfer: _Transfer) -> None:
        transfer.reset()
        if len(self._idle) < _IDLE_HANDLES:
            self._idle.append(transfer)
        else:
            transfer.curl.close()

    def _abandon(self, transfer: _Transfer) -> None:
        batch = transfer.batch
        if batch is not None:
            batch.finish(transfer.index, Http2Response(0, error="client closed"))
        transfer.curl.close()

    def _shut_down(self) -> None:
        multi = self._multi
        for transfer in self._active.values():
            multi.remove_handle(transfer.curl)
            self._abandon(transfer)
        self._active.clear()
        # Requests never handed to libcurl, and commands that arrived after close.
        with self._lock:
            self._worker_done = True
        while self._take_commands():  # True while _CLOSE commands interrupt the drain
            pass
        for batch, first in self._pending:
            for index in range(first, len(batch.requests)):
                batch.finish(index, Http2Response(0, error="client closed"))
        self._pending.clear()
        for transfer in self._idle:
            transfer.curl.close()
        self._idle.clear()
        multi.close()
        if self._selector is not None:
            self._selector.close()
            self._selector = None

    # ------------------------------------------------- libcurl callbacks (worker thread)

    def _watch_socket(self, what: int, fd: int, multi: object, socketp: object) -> None:
        """M_SOCKETFUNCTION: libcurl says which events it wants on a socket."""
        selector = self._selector
        if selector is None:
            return
        events = 0
        if what != pycurl.POLL_REMOVE:
            if what & pycurl.POLL_IN:
                events |= selectors.EVENT_READ
            if what & pycurl.POLL_OUT:
                events |= selectors.EVENT_WRITE
        registered = fd in selector.get_map()
        if not events:
            if registered:
                selector.unregister(fd)
        elif registered:
            selector.modify(fd, events, fd)
        else:
            selector.register(fd, events, fd)

    def _collect(self) -> None:
        """Hands finished transfers to their batches."""
        while True:
            queued, succeeded, failed = self._multi.info_read()
            for curl in succeeded:
                self._finish(curl, None, 0)
            for curl, code, message in failed:
                self._finish(curl, message or f"curl error {code}", code)
            if not queued:
                return


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while sock.recv(4096):
            pass


def _resendable(response: Http2Response) -> bool:
    return response.error is not None and response.error_code not in _NOT_RESENT


class ShardedHttp2Client:
    """``shards`` Http2Clients of one connection each; ``post_many`` splits its batch
    into contiguous runs, one per client, sent at once. Same interface as Http2Client."""

    def __init__(
        self, shards: int = 1, *, ca_file: str | None = None, timeout: float = 30.0
    ) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self._clients = [
            Http2Client(max_connections=1, ca_file=ca_file, timeout=timeout) for _ in range(shards)
        ]

    async def post_many(self, requests: Sequence[Http2Request]) -> list[Http2Response]:
        """One response per request, in order, as Http2Client.post_many."""
        clients = self._clients
        size = -(-len(requests) // len(clients))  # ceiling division
        if len(requests) <= size:  # one client's share: no need to split
            return await clients[0].post_many(requests)
        parts = await asyncio.gather(
            *(
                client.post_many(requests[start : start + size])
                for client, start in zip(clients, range(0, len(requests), size), strict=False)
            )
        )
        return list(itertools.chain.from_iterable(parts))

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
