"""How many calls run at once: refused over the limit, before the request is read.

Trusted callers (server keys, the admin token) share PUSHHUB_MAX_CONCURRENT_RPCS;
RegisterDevices streams also count against PUSHHUB_MAX_IMPORT_STREAMS.
WatchMessageStatus streams live as long as their message (days, for a repeat),
so they have their own PUSHHUB_MAX_WATCHES and never keep unary work out.
Public callers (device keys, anonymous health and reflection calls) share
PUSHHUB_MAX_DEVICE_RPCS, so they cannot keep the operator's backend out either.

A call holds its slots until its RPC task ends, however it ends (grpc.aio runs
interceptors and handler in one task per call): a client that disconnects
before sending its request gives them back too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc

from ..core.admission import Slots
from ..core.errors import resource_exhausted
from .authentication_interceptor import CallerClass, caller_class
from .refusals import refusal

# What a refused caller is told to wait: long enough not to hammer a busy server,
# short enough that a freed slot does not stay idle for long.
RETRY_BUSY_SECONDS = 1.0

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


@dataclass(frozen=True)
class Pool:
    slots: Slots
    reason: str
    what: str
    setting: str


class ConcurrencyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        *,
        max_rpcs: int,
        max_import_streams: int,
        max_watches: int,
        max_device_rpcs: int,
        import_method: str,
        watch_method: str,
    ) -> None:
        rpcs = Pool(Slots(max_rpcs), "TOO_MANY_CALLS", "calls", "PUSHHUB_MAX_CONCURRENT_RPCS")
        imports = Pool(
            Slots(max_import_streams),
            "TOO_MANY_IMPORT_STREAMS",
            "RegisterDevices streams",
            "PUSHHUB_MAX_IMPORT_STREAMS",
        )
        watches = Pool(
            Slots(max_watches),
            "TOO_MANY_WATCHES",
            "WatchMessageStatus streams",
            "PUSHHUB_MAX_WATCHES",
        )
        self._public = (
            Pool(
                Slots(max_device_rpcs),
                "TOO_MANY_DEVICE_CALLS",
                "calls with device keys or without a key",
                "PUSHHUB_MAX_DEVICE_RPCS",
            ),
        )
        self._trusted = (rpcs,)
        self._by_method = {import_method: (rpcs, imports), watch_method: (watches,)}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        if caller_class() is CallerClass.PUBLIC:
            pools = self._public
        else:
            pools = self._by_method.get(handler_call_details.method, self._trusted)
        taken: list[Slots] = []
        for pool in pools:
            if not pool.slots.take():
                _give_back(taken)
                return refusal(_busy(pool))
            taken.append(pool.slots)
        task = asyncio.current_task()
        assert task is not None  # grpc.aio runs every call in a task of its own
        task.add_done_callback(lambda _: _give_back(taken))
        return await continuation(handler_call_details)


def _give_back(taken: Sequence[Slots]) -> None:
    for slots in taken:
        slots.give_back()


def _busy(pool: Pool) -> Exception:
    return resource_exhausted(
        pool.reason,
        f"the server is running its maximum of {pool.slots.limit} {pool.what}; retry later",
        RETRY_BUSY_SECONDS,
        limit=str(pool.slots.limit),
        setting=pool.setting,
    )
