"""Multiplexed HTTP/2 POSTs through libcurl (pycurl's CurlMulti), driven by the asyncio loop.

Why libcurl: benchmarks/http2_clients.py measured, against a local nginx HTTP/2
TLS sink on this 2-core machine, 16-19k requests/s through this client against
about 2.4k for a pure-Python HTTP/2 stack (h2 on asyncio), and httpx breaks down
with concurrent streams (DESIGN.md). Framing, HPACK and TLS all run in C; Python
touches each request a handful of times.

How it meets asyncio: libcurl says which sockets to watch (M_SOCKETFUNCTION) and
when it next needs a timeout (M_TIMERFUNCTION); the loop's add_reader/add_writer and
call_later call ``socket_action`` back. Everything runs on the event-loop thread,
so there are no locks, no thread hand-offs and no GIL contention with the loop.

Connections: transfers are multiplexed (PIPEWAIT + PIPE_MULTIPLEX) as streams of
one connection up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS; ``max_connections``
bounds the connections per host, and libcurl queues transfers beyond that.

Lost connections: when the peer sends GOAWAY, nghttp2 fails the streams above
its last-stream-id as REFUSED_STREAM and libcurl resends them on a new connection
itself. A transfer that fails anyway (the connection dropped while it was in
flight, or could not be made) is resent here, up to ``resend_attempts`` times, so
a transport failure reaches the caller only when fresh connections did not help.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pycurl

# Transfers are not resent after a timeout: the peer is stalling, and waiting
# `timeout` again per attempt would hold the caller far longer than it expects.
_NOT_RESENT = frozenset({pycurl.E_OPERATION_TIMEDOUT})
# Idle easy handles kept for reuse; beyond this, finished handles are closed.
_IDLE_HANDLES = 4096
# The loop may run a timer up to its clock resolution early; that counts as on time.
_TIMER_SLACK = 0.001
# Transfers handed to libcurl per event-loop turn. libcurl starts every transfer it
# has been given in one socket_action call, and with a fast peer collects most of the
# responses in that same call too: a batch of 1,000 held the loop for 70-100 ms of
# CPU (100-500 ms wall on a busy 2-core machine), stalling every gRPC call. Slices of
# 100 (a few ms each) let other callbacks run in between; benchmarks/delivery.py
# measured no throughput lost (CPU per request unchanged).
_SLICE = 100


@dataclass(frozen=True, slots=True)
class Http2Request:
    url: str
    # Complete header lines, "name: value".
    headers: list[str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Http2Response:
    # 0 when the transfer failed before any response arrived (see error).
    status: int
    # Raw header lines as received (status line first), parsed only on demand:
    # successful responses are the common case and nobody reads their headers.
    header_lines: tuple[bytes, ...] = ()
    body: bytes = b""
    # libcurl's description of a transport failure, else None.
    error: str | None = None
    error_code: int = 0

    @property
    def timed_out(self) -> bool:
        return self.error_code == pycurl.E_OPERATION_TIMEDOUT

    def header(self, name: str) -> str | None:
        """The value of the first header called ``name`` (case-insensitive)."""
        prefix = name.lower().encode() + b":"
        for line in self.header_lines:
            if line[: len(prefix)].lower() == prefix:
                return line[len(prefix) :].decode("latin-1").strip()
        return None

    def retry_after(self, now: datetime) -> float | None:
        """Retry-After as seconds from now: delta-seconds or an HTTP date (RFC 9110)."""
        value = self.header("retry-after")
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            return _seconds_until(value, now)
        return max(seconds, 0.0) if math.isfinite(seconds) else None


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # "-0000": RFC 5322's "UTC, source zone unknown"
        moment = moment.replace(tzinfo=UTC)
    return max((moment - now).total_seconds(), 0.0)


class _Batch:
    """The transfers of one post_many call; the future resolves when all have finished."""

    __slots__ = ("responses", "remaining", "future")

    def __init__(self, size: int, future: asyncio.Future[None]) -> None:
        self.responses: list[Http2Response | None] = [None] * size
        self.remaining = size
        self.future = future

    def finish(self, index: int, response: Http2Response) -> None:
        self.responses[index] = response
        self.remaining -= 1
        if not self.remaining and not self.future.done():
            self.future.set_result(None)


class _Transfer:
    """An easy handle configured once, plus where its response lands; reused across requests."""

    __slots__ = ("curl", "header_lines", "body_chunks", "batch", "index")

    def __init__(self, ca_file: str | None, timeout: float, connect_timeout: float) -> None:
        self.header_lines: list[bytes] = []
        self.body_chunks: list[bytes] = []
        self.batch: _Batch | None = None
        self.index = 0
        curl = pycurl.Curl()
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
        # Wait for an existing connection to offer a stream instead of opening another.
        curl.setopt(pycurl.PIPEWAIT, 1)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.TIMEOUT_MS, int(timeout * 1000))
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(connect_timeout * 1000))
        if ca_file:
            curl.setopt(pycurl.CAINFO, ca_file)
        # Bound C-level appends: no Python frame per header line or body chunk.
        curl.setopt(pycurl.HEADERFUNCTION, self.header_lines.append)
        curl.setopt(pycurl.WRITEFUNCTION, self.body_chunks.append)
        self.curl = curl

    def start(self, request: Http2Request, batch: _Batch, index: int) -> None:
        self.batch = batch
        self.index = index
        curl = self.curl
        curl.setopt(pycurl.URL, request.url)
        curl.setopt(pycurl.HTTPHEADER, request.headers)
        curl.setopt(pycurl.POSTFIELDS, request.body)

    def response(self, error: str | None, error_code: int) -> Http2Response:
        status = 0 if error else self.curl.getinfo(pycurl.RESPONSE_CODE)
        return Http2Response(
            status, tuple(self.header_lines), b"".join(self.body_chunks), error, error_code
        )

    def reset(self) -> None:
        self.header_lines.clear()
        self.body_chunks.clear()
        self.batch = None


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
        self._timer: asyncio.TimerHandle | None = None
        # When libcurl wants socket_action(SOCKET_TIMEOUT) next, in loop.time(); None: never.
        self._deadline: float | None = None
        self._watched: set[int] = set()
        self._active: dict[pycurl.Curl, _Transfer] = {}
        self._idle: list[_Transfer] = []
        multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, max_connections)
        # libcurl opens at most 100 streams per connection unless told otherwise; the
        # peer's SETTINGS_MAX_CONCURRENT_STREAMS (APNs: about 1,000) still applies.
        multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, max_streams)
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._set_timer)
        self._multi: pycurl.CurlMulti | None = multi

    async def post_many(self, requests: Sequence[Http2Request]) -> list[Http2Response]:
        """One response per request, in order; transport failures come back as responses."""
        responses = await self._post_once(requests)
        for _ in range(self._resend_attempts):
            failed = [i for i, r in enumerate(responses) if _resendable(r)]
            if not failed or self._multi is None:
                break
            resent = await self._post_once([requests[i] for i in failed])
            for index, response in zip(failed, resent, strict=True):
                responses[index] = response
        return responses

    async def close(self) -> None:
        multi = self._multi
        if multi is None:
            return
        self._multi = None
        for transfer in self._active.values():
            multi.remove_handle(transfer.curl)
            self._abandon(transfer)
        self._active.clear()
        for transfer in self._idle:
            transfer.curl.close()
        self._idle.clear()
        self._stop_watching()
        multi.close()

    # ---------------------------------------------------------------- batches

    async def _post_once(self, requests: Sequence[Http2Request]) -> list[Http2Response]:
        if not requests:
            return []
        self._require_multi()
        loop = self._bind_loop()
        batch = _Batch(len(requests), loop.create_future())
        started: list[_Transfer] = []
        try:
            for first in range(0, len(requests), _SLICE):
                if first:
                    await asyncio.sleep(0)  # other callbacks get a turn between slices
                self._start_slice(requests, first, batch, started)
            await batch.future
        except asyncio.CancelledError:
            self._cancel(started, batch)
            raise
        return batch.responses  # type: ignore[return-value]  # all filled once resolved

    def _start_slice(
        self,
        requests: Sequence[Http2Request],
        first: int,
        batch: _Batch,
        started: list[_Transfer],
    ) -> None:
        """Adds requests[first:first + _SLICE] and lets libcurl start them right away."""
        multi = self._require_multi()  # close() may have run between slices
        for index in range(first, min(first + _SLICE, len(requests))):
            transfer = self._idle.pop() if self._idle else self._new_transfer()
            transfer.start(requests[index], batch, index)
            self._active[transfer.curl] = transfer
            multi.add_handle(transfer.curl)
            started.append(transfer)
        # New transfers are due at once; running them here rather than from the 0 ms
        # timer keeps each slice's work in its own loop turn.
        multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        self._collect()

    def _new_transfer(self) -> _Transfer:
        return _Transfer(self._ca_file, self._timeout, self._connect_timeout)

    def _cancel(self, transfers: list[_Transfer], batch: _Batch) -> None:
        """Stops a cancelled batch's transfers that are still running."""
        for transfer in transfers:
            if transfer.batch is batch and self._multi is not None:
                del self._active[transfer.curl]
                self._multi.remove_handle(transfer.curl)
                self._release(transfer)

    def _finish(self, curl: pycurl.Curl, error: str | None, error_code: int) -> None:
        transfer = self._active.pop(curl, None)
        if transfer is None:
            return
        assert self._multi is not None
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

    # ------------------------------------------------- libcurl <-> event loop

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("Http2Client is bound to another event loop")
        return loop

    def _require_multi(self) -> pycurl.CurlMulti:
        if self._multi is None:
            raise RuntimeError("Http2Client is closed")
        return self._multi

    def _watch_socket(self, what: int, fd: int, multi: object, socketp: object) -> None:
        """M_SOCKETFUNCTION: libcurl says which events it wants on a socket."""
        loop = self._loop
        assert loop is not None
        if what == pycurl.POLL_REMOVE:
            self._unwatch(fd)
            return
        self._watched.add(fd)
        if what & pycurl.POLL_IN:
            loop.add_reader(fd, self._on_socket, fd, pycurl.CSELECT_IN)
        else:
            loop.remove_reader(fd)
        if what & pycurl.POLL_OUT:
            loop.add_writer(fd, self._on_socket, fd, pycurl.CSELECT_OUT)
        else:
            loop.remove_writer(fd)

    def _set_timer(self, timeout_ms: int) -> None:
        """M_TIMERFUNCTION: -1 removes the timer; otherwise call back after timeout_ms.

        libcurl asks for a new timeout on nearly every handle it adds, so an armed
        timer that fires no later than the new deadline is kept rather than replaced
        (_on_timeout re-arms when it finds the deadline moved later). Never calls
        socket_action directly: libcurl forbids re-entering it from here.
        """
        loop = self._loop
        assert loop is not None
        if timeout_ms < 0:
            self._deadline = None
            self._cancel_timer()
            return
        self._deadline = loop.time() + timeout_ms / 1000
        if self._timer is None or self._timer.when() > self._deadline:
            self._cancel_timer()
            self._timer = loop.call_at(self._deadline, self._on_timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_socket(self, fd: int, event: int) -> None:
        if self._multi is not None:
            self._multi.socket_action(fd, event)
            self._collect()

    def _on_timeout(self) -> None:
        self._timer = None
        deadline, loop = self._deadline, self._loop
        if deadline is None or loop is None or self._multi is None:
            return
        if deadline - loop.time() > _TIMER_SLACK:
            self._timer = loop.call_at(deadline, self._on_timeout)
            return
        self._deadline = None
        self._multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        self._collect()

    def _collect(self) -> None:
        """Hands finished transfers to their batches."""
        assert self._multi is not None
        while True:
            queued, succeeded, failed = self._multi.info_read()
            for curl in succeeded:
                self._finish(curl, None, 0)
            for curl, code, message in failed:
                self._finish(curl, message or f"curl error {code}", code)
            if not queued:
                return

    def _unwatch(self, fd: int) -> None:
        if fd in self._watched and self._loop is not None:
            self._watched.discard(fd)
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)

    def _stop_watching(self) -> None:
        for fd in list(self._watched):
            self._unwatch(fd)
        self._deadline = None
        self._cancel_timer()


def _resendable(response: Http2Response) -> bool:
    return response.error is not None and response.error_code not in _NOT_RESENT
