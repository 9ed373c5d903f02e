"""Calling any RPC from its descriptor, and what every answer must satisfy.

The bounds here are liveness bounds, not speed targets: a call that has not
answered in CALL_DEADLINE seconds on loopback is stuck, not slow, and the
health check gets HEALTH_SECONDS even on a busy shared machine.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import grpc
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .request_strategies import message_class

CALL_DEADLINE = 10.0
HEALTH_SECONDS = 5.0
# How long an open server stream (a watch of an unfinished message) may stay
# silent after its first answer before the client ends it: a watch may stay open.
STREAM_LINGER = 1.0
# The client accepts any answer the server's own 16 MiB limit lets out.
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)
DETAILS_KEY = "grpc-status-details-bin"
STATUS_NAME = status_pb2.Status.DESCRIPTOR.full_name

# Codes no client input may produce. DEADLINE_EXCEEDED is a hang, UNAVAILABLE a
# dead or unreachable server (the database is never down in this suite).
FORBIDDEN = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_FORBIDDEN_NUMBERS = frozenset(code.value[0] for code in FORBIDDEN)
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}

# Python internals that must never reach a client: a traceback, a source line, an
# exception class name (JSONDecodeError, KeyError...), the text of a common
# builtin exception, a driver's name.
PYTHON_TEXT = re.compile(
    r"Traceback \(most recent call last\)"
    r"|File \"[^\"]*\", line \d+"
    r"|\b[A-Z][A-Za-z0-9]*(?:Error|Exception|Warning)\b"
    r"|\b(?:StopIteration|StopAsyncIteration|KeyboardInterrupt|GeneratorExit|SystemExit)\b"
    r"|codec can't (?:en|de)code|object has no attribute|NoneType|invalid literal for"
    r"|unsupported operand|is not JSON serializable|maximum recursion depth"
    r"|\b(?:sqlalchemy|asyncpg|aiosqlite|sqlite3|psycopg2?)\b"
    r"|<class '|\[SQL: "
)


@dataclass
class Outcome:
    """How one call ended: its code and message, the rich status, the answers."""

    code: grpc.StatusCode
    details: str = ""
    rich: status_pb2.Status | None = None
    responses: list[Message] = field(default_factory=list)
    seconds: float = 0.0
    # The client stopped reading an open server stream (allowed: a watch may stay open).
    left_open: bool = False


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


async def call(
    channel: grpc.Channel,
    method: MethodDescriptor,
    requests: Sequence[Message],
    metadata: tuple[tuple[str, str], ...],
) -> Outcome:
    """Calls `method` (any of the four kinds) with `requests`; never raises for an RPC error.

    On grpc's blocking client, in a thread: grpc.aio reports a client stream the
    server ended early (an authentication error) as a client-side INTERNAL
    "Internal error from Core" about half the time (grpc/grpc#36066), hiding the
    server's real answer. The blocking client reports the server's status.
    """
    started = time.monotonic()
    try:
        # A backstop over the gRPC deadline, in case the client library itself stalls.
        outcome = await asyncio.wait_for(
            asyncio.to_thread(_call, channel, method, requests, metadata),
            CALL_DEADLINE + STREAM_LINGER + 5,
        )
    except TimeoutError:
        outcome = Outcome(grpc.StatusCode.DEADLINE_EXCEEDED, "client-side backstop expired")
    outcome.seconds = time.monotonic() - started
    return outcome


def _call(
    channel: grpc.Channel,
    method: MethodDescriptor,
    requests: Sequence[Message],
    metadata: tuple[tuple[str, str], ...],
) -> Outcome:
    serialize = message_class(method.input_type).SerializeToString
    deserialize = message_class(method.output_type).FromString
    target = path(method)
    kwargs = {"request_serializer": serialize, "response_deserializer": deserialize}
    # What the client sends: the stream's messages, or the one request.
    sent: object = iter(requests) if method.client_streaming else requests[0]
    if method.server_streaming:
        if method.client_streaming:
            multi = channel.stream_stream(target, **kwargs)
        else:
            multi = channel.unary_stream(target, **kwargs)
        # A watch may stay open; a bidirectional stream ends once the client half-closes.
        linger = not method.client_streaming
        return _read(multi(sent, metadata=metadata, timeout=CALL_DEADLINE), linger)
    if method.client_streaming:
        unary: grpc.UnaryUnaryMultiCallable = channel.stream_unary(target, **kwargs)
    else:
        unary = channel.unary_unary(target, **kwargs)
    try:
        answer = unary(sent, metadata=metadata, timeout=CALL_DEADLINE)
    except grpc.RpcError as error:
        return _failed(error)
    return Outcome(grpc.StatusCode.OK, responses=[answer])


def _read(stream: grpc.Call, linger: bool) -> Outcome:
    """All answers of a server stream within the deadline; with `linger`, once an answer
    came, the next within STREAM_LINGER of it, else the client ends the stream (left_open)."""
    responses: list[Message] = []
    silence: threading.Timer | None = None
    lingered = threading.Event()

    def end_open_stream() -> None:
        lingered.set()
        stream.cancel()

    try:
        for answer in stream:  # type: ignore[attr-defined]
            responses.append(answer)
            if silence is not None:
                silence.cancel()
            if linger:
                silence = threading.Timer(STREAM_LINGER, end_open_stream)
                silence.start()
    except grpc.RpcError as error:
        if lingered.is_set() and error.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
            return Outcome(grpc.StatusCode.OK, responses=responses, left_open=True)
        failed = _failed(error)
        failed.responses = responses
        return failed
    finally:
        if silence is not None:
            silence.cancel()
    return Outcome(grpc.StatusCode.OK, responses=responses)


def _failed(error: grpc.RpcError) -> Outcome:
    call = cast(grpc.Call, error)
    return Outcome(call.code(), call.details() or "", _rich(call))


def _rich(error: grpc.Call) -> status_pb2.Status | None:
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_KEY:
            return status_pb2.Status.FromString(value)
    return None


# ------------------------------------------------------------------ checks


def problems(method: MethodDescriptor, requests: Sequence[Message], outcome: Outcome) -> list[str]:
    """What is wrong with an answer, whatever the request was; empty when all is well."""
    found: list[str] = []
    if outcome.code in FORBIDDEN:
        found.append(
            f"answered {outcome.code.name} after {outcome.seconds:.1f} s: {outcome.details[:300]!r}"
        )
    found += _python_text("status message", outcome.details)
    if outcome.rich is not None:
        found += _python_text("google.rpc.Status message", outcome.rich.message)
    for response in outcome.responses:
        found += _answer_problems(response)
    if outcome.code == grpc.StatusCode.OK and method.client_streaming and method.server_streaming:
        found += _one_answer_per_request(requests, outcome.responses)
    return found


def _python_text(where: str, text: str) -> list[str]:
    match = PYTHON_TEXT.search(text)
    if match is None:
        return []
    return [f"{where} shows Python internals ({match.group(0)!r}): {text[:300]!r}"]


def _answer_problems(message: Message) -> list[str]:
    """Statuses nested in an answer (per-item errors of a bulk import), error messages
    and failure reasons of a message status: no forbidden code, no Python text."""
    found: list[str] = []
    if message.DESCRIPTOR.full_name == STATUS_NAME:
        status = cast(status_pb2.Status, message)
        if status.code in _FORBIDDEN_NUMBERS:
            name = _CODE_NAMES.get(status.code, str(status.code))
            found.append(f"an answer carries a {name} status: {status.message[:300]!r}")
        return found + _python_text("a nested google.rpc.Status", status.message)
    for descriptor, value in message.ListFields():
        if descriptor.name == "error_message":
            found += _python_text("error_message", value)
        elif descriptor.name == "failure_reasons":
            for reason in value:
                found += _python_text("a failure reason", reason)
        elif descriptor.type == FieldDescriptor.TYPE_MESSAGE:
            items = (
                value.values()
                if _is_map(descriptor)
                else (value if descriptor.is_repeated else [value])
            )
            for item in items:
                if isinstance(item, Message):
                    found += _answer_problems(item)
    return found


def _is_map(descriptor: FieldDescriptor) -> bool:
    return descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry


def _one_answer_per_request(requests: Sequence[Message], responses: Sequence[Message]) -> list[str]:
    """A bidirectional stream answers each request once, with one result per item
    (RegisterDevices' contract); checked for any stream whose messages have one
    repeated field each way."""
    if len(responses) != len(requests):
        return [f"{len(requests)} stream messages got {len(responses)} answers"]
    found = []
    for number, (request, response) in enumerate(zip(requests, responses, strict=True)):
        sent, got = _repeated_count(request), _repeated_count(response)
        if sent is not None and got is not None and sent != got:
            found.append(f"stream message {number}: {sent} items got {got} results")
    return found


def _repeated_count(message: Message) -> int | None:
    repeated = [f for f in message.DESCRIPTOR.fields if f.is_repeated and not _is_map(f)]
    return len(getattr(message, repeated[0].name)) if len(repeated) == 1 else None


async def health_problems(channel: grpc.aio.Channel) -> list[str]:
    """The server's grpc.health.v1 answer for the whole server, within HEALTH_SECONDS."""
    stub = health_pb2_grpc.HealthStub(channel)
    started = time.monotonic()
    try:
        answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_SECONDS)
    except grpc.aio.AioRpcError as error:
        waited = time.monotonic() - started
        return [f"health check failed after {waited:.1f} s: {error.code().name}"]
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        return [f"health check answered {name}"]
    return []
