"""One hypothesis example: a fresh app, the calls drawn for it, the checks after each.

Every example starts from a new app (AdminService.CreateApp with the operator
token), so what one example stored cannot make another fail: hypothesis can
replay and shrink a failure on its own. Ids the server hands out during an
example (registration, message, key, request ids, page tokens) become
candidates for the id fields of its later calls.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

import grpc
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import event
from hypothesis import strategies as st

from pushhub.v1 import admin_pb2, common_pb2, publish_pb2, status_pb2
from tests.acceptance.harness import ADMIN_METADATA, Stubs, bearer

from . import hostile_values as hv
from .budget import FINDINGS
from .request_strategies import requests, sketch
from .rpc_calls import CALL_DEADLINE, CHANNEL_OPTIONS, Outcome, call, health_problems, problems
from .server_process import FuzzServer

Metadata = tuple[tuple[str, str], ...]

# Who calls. "forged-user" is a device key with a user token it made up.
CREDENTIALS = (
    "server",
    "server+user",
    "device",
    "device+user",
    "device+forged-user",
    "admin",
    "none",
    "invalid",
)
# A key that may make the call a third of the time, a device's key a third: what
# anyone holding an app can send.
CREDENTIAL_CHOICES = st.one_of(
    st.sampled_from(("server", "admin")),
    st.sampled_from(("device", "device+user")),
    st.sampled_from(CREDENTIALS),
)
TERMINAL = (
    common_pb2.MESSAGE_STATE_PUBLISHED,
    common_pb2.MESSAGE_STATE_FAILED,
    common_pb2.MESSAGE_STATE_CANCELLED,
)
PUBLISH = publish_pb2.DESCRIPTOR.services_by_name["PublishService"].methods_by_name["Publish"]
# Ids seen in answers, kept per example (the newest few).
MAX_KNOWN = 40


class Target:
    """The fuzz server and channels to it; a sick server is replaced by a fresh one.

    Fuzzed calls go through the blocking client (see rpc_calls.call); the example's
    own bookkeeping (apps, user tokens, health, message status) through grpc.aio.
    """

    def __init__(self, server: FuzzServer) -> None:
        self.server = server
        self.channel: grpc.aio.Channel | None = None
        self.blocking: grpc.Channel | None = None
        # Failing examples a survey (PUSHHUB_FUZZ_FINDINGS) recorded.
        self.findings = 0

    async def connect(self) -> tuple[grpc.aio.Channel, grpc.Channel]:
        if self.channel is None or self.blocking is None:
            address = f"127.0.0.1:{self.server.port}"
            self.channel = grpc.aio.insecure_channel(address, options=list(CHANNEL_OPTIONS))
            self.blocking = grpc.insecure_channel(address, options=list(CHANNEL_OPTIONS))
            await asyncio.wait_for(self.channel.channel_ready(), CALL_DEADLINE)
        return self.channel, self.blocking

    async def restart(self) -> None:
        await self.close_channels()
        await asyncio.to_thread(self.server.restart)

    async def close_channels(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None
        if self.blocking is not None:
            self.blocking.close()
            self.blocking = None


@dataclass
class Step:
    """One call of an example, for the failure report."""

    method: str
    credential: str
    requests: str
    outcome: str
    problems: list[str] = field(default_factory=list)


class FuzzCase:
    def __init__(self, target: Target, data: st.DataObject) -> None:
        self._target = target
        self._data = data
        self._known: list[str] = []
        self._steps: list[Step] = []
        self._log_offset = target.server.log_offset()
        self._user_token: str | None = None
        self._channel: grpc.aio.Channel | None = None
        self._blocking: grpc.Channel | None = None
        self.app_id = ""
        self._server_key = ""
        self._device_key = ""

    async def open(self) -> None:
        """A fresh app for this example; a server that cannot make one is replaced first."""
        for attempt in range(2):
            try:
                self._channel, self._blocking = await self._target.connect()
                created = await Stubs.on(self._channel).admin.CreateApp(
                    admin_pb2.CreateAppRequest(name=f"fuzz-{uuid.uuid4().hex}"),
                    metadata=ADMIN_METADATA,
                    timeout=CALL_DEADLINE,
                )
                break
            except (grpc.aio.AioRpcError, TimeoutError):
                if attempt:
                    raise
                await self._target.restart()
                self._log_offset = self._target.server.log_offset()
        self.app_id = created.app.app_id
        self._server_key, self._device_key = created.server_key, created.device_key
        self._known.append(self.app_id)

    # ------------------------------------------------------------ calls

    async def fuzz(
        self,
        method: MethodDescriptor,
        credential: str | None = None,
        mode: str | None = None,
        focus: Sequence[str] = (),
    ) -> Outcome:
        """Draws a credential (unless given) and request(s) for `method`, calls it, checks
        the answer. `mode` and `focus` narrow the requests (see request_strategies)."""
        credential = credential or self._data.draw(CREDENTIAL_CHOICES, "credential")
        metadata = await self._metadata(credential)
        drawn = requests(method.input_type, tuple(self._known), mode, focus)
        if method.client_streaming:
            sent = [d.message for d in self._data.draw(st.lists(drawn, max_size=3), method.name)]
        else:
            sent = [self._data.draw(drawn, method.name).message]
        assert self._blocking is not None
        outcome = await call(self._blocking, method, sent, metadata)
        found = problems(method, sent, outcome)
        # Shown by --hypothesis-show-statistics: how far the requests get.
        event(f"{method.name} as {credential}: {outcome.code.name}")
        for response in outcome.responses:
            self._learn(response)
        if method.full_name == PUBLISH.full_name and outcome.code == grpc.StatusCode.OK:
            found += await self._settle(outcome.responses[0].message_id)  # type: ignore[attr-defined]
        self._steps.append(
            Step(
                f"{method.containing_service.name}.{method.name}",
                credential,
                " | ".join(sketch(request) for request in sent) or "(no messages)",
                _describe(outcome),
                found,
            )
        )
        return outcome

    async def _metadata(self, credential: str) -> Metadata:
        if credential == "admin":
            return ADMIN_METADATA
        if credential == "none":
            return ()
        if credential == "invalid":
            return (("authorization", self._data.draw(hv.invalid_keys(), "authorization")),)
        key = self._server_key if credential.startswith("server") else self._device_key
        if credential.endswith("+user"):
            return bearer(key, await self._real_user_token())
        if credential.endswith("+forged-user"):
            return bearer(key, self._data.draw(hv.hostile_user_tokens(self.app_id), "user-token"))
        return bearer(key)

    async def _real_user_token(self) -> str:
        if self._user_token is None:
            assert self._channel is not None
            try:
                issued = await Stubs.on(self._channel).admin.IssueUserToken(
                    admin_pb2.IssueUserTokenRequest(app_id=self.app_id, user_id=hv.USERS[0]),
                    metadata=bearer(self._server_key),
                    timeout=CALL_DEADLINE,
                )
                self._user_token = issued.token
            except grpc.aio.AioRpcError as error:  # the app was deleted by an earlier step
                self._user_token = f"unissued-{error.code().name}"
        return self._user_token

    def _learn(self, message: Message) -> None:
        """Remembers ids and page tokens from an answer (channel_registration_ids'
        values too), for later id fields."""
        for descriptor, value in message.ListFields():
            if _is_map(descriptor):
                entries = list(value.values())
                if _is_id(descriptor.name):
                    self._remember(e for e in entries if isinstance(e, str))
            elif descriptor.type == FieldDescriptor.TYPE_MESSAGE:
                entries = list(value) if descriptor.is_repeated else [value]
            else:
                if descriptor.type == FieldDescriptor.TYPE_STRING and _is_id(descriptor.name):
                    self._remember(value if descriptor.is_repeated else [value])
                continue
            for entry in entries:
                if isinstance(entry, Message):
                    self._learn(entry)

    def _remember(self, values: Iterable[str]) -> None:
        self._known.extend(v for v in values if v and v not in self._known)
        del self._known[:-MAX_KNOWN]

    async def _settle(self, message_id: str) -> list[str]:
        """Follows a published message until it is terminal or waits for a later run:
        a delivery that never ends, or ends with Python text, is a finding too."""
        assert self._channel is not None
        stubs = Stubs.on(self._channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CALL_DEADLINE
        request = status_pb2.GetMessageStatusRequest(message_id=message_id)
        status = None
        while loop.time() < deadline:
            try:
                answer = await stubs.status.GetMessageStatus(
                    request, metadata=bearer(self._server_key), timeout=CALL_DEADLINE
                )
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED):
                    return []  # the app was deleted meanwhile
                return [
                    f"GetMessageStatus of the published message: {error.code().name} "
                    f"{error.details()!r}"
                ]
            status = answer.status
            if status.state in TERMINAL or self._waits_for_later(status):
                found = problems(
                    _GET_STATUS, [request], Outcome(grpc.StatusCode.OK, responses=[answer])
                )
                if status.state == common_pb2.MESSAGE_STATE_FAILED and not status.error_message:
                    found.append("the message FAILED without an error_message")
                return found
            await asyncio.sleep(0.02)
        state = common_pb2.MessageState.Name(status.state) if status else "unknown"
        return [
            f"the published message did not settle within {CALL_DEADLINE:.0f} s (still {state})"
        ]

    def _waits_for_later(self, status: status_pb2.MessageStatus) -> bool:
        """Scheduled for after the server's frozen clock: it will never run here."""
        now: datetime | None = self._target.server.now
        if status.state != common_pb2.MESSAGE_STATE_SCHEDULED or now is None:
            return False
        return (
            status.HasField("next_run_at")
            and status.next_run_at.ToDatetime(tzinfo=now.tzinfo) > now
        )

    # ------------------------------------------------------------ end

    async def finish(self) -> None:
        """Health after the example; a sick server is replaced, then the example fails."""
        assert self._channel is not None
        sick = not self._target.server.alive
        found = ["the server process died"] if sick else await health_problems(self._channel)
        sick = sick or bool(found)
        stuck = any(
            "DEADLINE_EXCEEDED" in problem or "did not settle" in problem
            for step in self._steps
            for problem in step.problems
        )
        failed = found or any(step.problems for step in self._steps)
        if not failed:
            return
        log = self._target.server.log_since(self._log_offset)
        if sick or stuck:
            await self._target.restart()
        if FINDINGS:
            # A survey records every failing example and goes on; the package then
            # fails once, at the end (see conftest.target).
            self._record(found, log)
            self._target.findings += 1
            return
        raise AssertionError(self._report(found, log))

    def _record(self, health: list[str], log: str) -> None:
        finding = {"steps": [asdict(step) for step in self._steps], "health": health, "log": log}
        with open(FINDINGS, "a", encoding="utf-8") as findings:
            findings.write(json.dumps(finding) + "\n")

    def _report(self, health: list[str], log: str) -> str:
        lines = [f"app {self.app_id}:"]
        for number, step in enumerate(self._steps, 1):
            lines.append(f"  {number}. {step.method} as {step.credential}: {step.outcome}")
            lines.append(f"     request: {step.requests}")
            lines += [f"     PROBLEM: {problem}" for problem in step.problems]
        lines += [f"  PROBLEM after the calls: {problem}" for problem in health]
        if log:
            lines += [
                "  server log during the example:",
                *("    " + line for line in log.splitlines()),
            ]
        return "\n".join(lines)


_GET_STATUS = status_pb2.DESCRIPTOR.services_by_name["StatusService"].methods_by_name[
    "GetMessageStatus"
]


def _is_id(name: str) -> bool:
    return name.endswith(("_id", "_ids")) or name == "next_page_token"


def _is_map(descriptor: FieldDescriptor) -> bool:
    return descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry


def _describe(outcome: Outcome) -> str:
    text = f"{outcome.code.name} in {outcome.seconds:.2f} s"
    if outcome.details:
        text += f" {outcome.details[:200]!r}"
    if outcome.responses:
        text += f", {len(outcome.responses)} answer(s)"
    if outcome.left_open:
        text += ", stream left open"
    return text
