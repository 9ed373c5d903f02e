"""StatusService.WatchMessageStatus: one response per change, ending at a terminal state.

Issue 3, section 6; protos/pushhub/v1/status.proto.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
import pytest_asyncio
from google.protobuf import duration_pb2

from pushhub.v1 import admin_pb2, status_pb2

from .harness import (
    CANCELLED,
    PUBLISHED,
    PUBLISHING,
    SCHEDULED,
    TERMINAL,
    AppHandle,
    Stubs,
    bearer,
    check_error,
    create_app,
    new_token,
    settle,
    start_test_server,
    timestamp,
)

# Generous: each response normally arrives within milliseconds.
READ_TIMEOUT = 5.0
# Well under the server's fallback poll of the database (2 s) while watching.
PROMPT = 1.0


def watch(app: AppHandle, message_id: str, auth=None):
    request = status_pb2.WatchMessageStatusRequest(message_id=message_id)
    return app.stubs.status.WatchMessageStatus(request, metadata=auth or app.server())


async def read(call) -> status_pb2.MessageStatus | None:
    """The next status, or None once the stream has ended."""
    response = await asyncio.wait_for(call.read(), READ_TIMEOUT)
    if response is grpc.aio.EOF:
        return None
    return response.status


async def read_to_end(call) -> list[status_pb2.MessageStatus]:
    statuses = []
    while (status := await read(call)) is not None:
        statuses.append(status)
    assert await call.code() == grpc.StatusCode.OK
    return statuses


def check_sequence(statuses: list[status_pb2.MessageStatus]) -> None:
    """Each response is a change; progress only moves forward (run by run: SCHEDULED,
    PUBLISHING, then the next run or a terminal state); only the last is terminal."""

    def progress(status: status_pb2.MessageStatus) -> tuple[int, int]:
        rank = {SCHEDULED: 0, PUBLISHING: 1}.get(status.state, 2)
        return status.run_count, rank

    for before, after in zip(statuses, statuses[1:], strict=False):
        assert before != after, "a response without a change"
        assert before.state not in TERMINAL
        assert progress(after) >= progress(before), statuses
        assert after.sent_count >= before.sent_count
    assert statuses[-1].state in TERMINAL


async def test_watch_streams_changes_until_published(server, app: AppHandle, clock) -> None:
    for _ in range(3):
        await app.register(device_token=new_token())
    response = await app.publish(
        message="watched", publish_at=timestamp(clock.now() + timedelta(seconds=1))
    )
    call = watch(app, response.message_id)
    first = await read(call)
    assert first is not None
    assert first.message_id == response.message_id
    assert first.state == SCHEDULED
    assert first.HasField("next_run_at")

    clock.advance(timedelta(seconds=1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    server.scheduler.wake()
    rest = await read_to_end(call)
    # Pushed on each change, not found by the watcher's fallback poll (2 s): a
    # change that lands while the watcher is reading must not be missed.
    assert loop.time() - started < PROMPT, "the terminal state came late: a missed wake-up"
    statuses = [first, *rest]
    check_sequence(statuses)
    last = statuses[-1]
    assert last.state == PUBLISHED
    assert (last.targeted_count, last.sent_count, last.run_count) == (3, 3, 1)
    assert not last.HasField("next_run_at")


async def test_watch_ends_when_the_message_is_cancelled(app: AppHandle, clock) -> None:
    response = await app.publish(
        message="watched", publish_at=timestamp(clock.now() + timedelta(hours=1))
    )
    call = watch(app, response.message_id)
    first = await read(call)
    assert first is not None and first.state == SCHEDULED
    await app.cancel(response.message_id)
    rest = await read_to_end(call)
    assert [status.state for status in rest] == [CANCELLED]
    check_sequence([first, *rest])


async def test_watch_of_a_finished_message_answers_once_and_ends(server, app: AppHandle) -> None:
    await app.register()
    response = await app.publish(message="done")
    final = await settle(server, app, response.message_id)
    statuses = await read_to_end(watch(app, response.message_id))
    assert statuses == [final]


async def test_watch_of_a_repeat_follows_each_run(server, app: AppHandle, clock) -> None:
    await app.register()
    start = clock.now()
    response = await app.publish(
        message="tick",
        publish_at=timestamp(start + timedelta(seconds=1)),
        repeat_every=duration_pb2.Duration(seconds=1),
        repeat_expires_at=timestamp(start + timedelta(seconds=2)),
    )
    call = watch(app, response.message_id)
    seen = [await read(call)]
    rest = asyncio.create_task(read_to_end(call))
    for run in (1, 2):
        clock.advance(timedelta(seconds=1))
        await settle(server, app, response.message_id, runs=run)
    seen.extend(await rest)
    check_sequence(seen)
    assert seen[-1].state == PUBLISHED
    assert seen[-1].run_count == 2
    # Between the runs the stream showed the message scheduled again, after run 1.
    assert any(status.state == SCHEDULED and status.run_count == 1 for status in seen), seen


async def test_a_watch_ends_once_its_key_is_revoked(app: AppHandle, clock) -> None:
    created = await app.stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(app_id=app.app_id, kind=admin_pb2.API_KEY_KIND_SERVER),
        metadata=app.server(),
    )
    response = await app.publish(
        message="watched", publish_at=timestamp(clock.now() + timedelta(hours=1))
    )
    call = watch(app, response.message_id, bearer(created.key))
    assert (await read(call)).state == SCHEDULED
    await app.stubs.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(app_id=app.app_id, key_id=created.api_key.key_id),
        metadata=app.server(),
    )
    await app.cancel(response.message_id)  # a change the revoked key must not see
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await read(call)
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest_asyncio.fixture(loop_scope="session")
async def watchful(server, empty_database: str, clock) -> AsyncIterator[AppHandle]:
    """An app on a server of its own, whose watches re-check their key every 0.2 s."""
    running = await start_test_server(empty_database, clock, watch_key_check_seconds=0.2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield await create_app(Stubs.on(channel), clock)
    finally:
        await running.stop(1.0)


async def test_a_watch_without_changes_ends_once_its_key_is_revoked(
    watchful: AppHandle, clock
) -> None:
    app = watchful
    created = await app.stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(app_id=app.app_id, kind=admin_pb2.API_KEY_KIND_SERVER),
        metadata=app.server(),
    )
    response = await app.publish(
        message="watched", publish_at=timestamp(clock.now() + timedelta(hours=1))
    )
    call = watch(app, response.message_id, bearer(created.key))
    assert (await read(call)).state == SCHEDULED
    await app.stubs.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(app_id=app.app_id, key_id=created.api_key.key_id),
        metadata=app.server(),
    )
    # Nothing changes: the message stays scheduled for an hour.
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await read(call)
    check_error(ended.value, grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    await app.cancel(response.message_id)


async def test_stopping_the_server_ends_open_watches_at_once(
    server, empty_database: str, clock
) -> None:
    running = await start_test_server(empty_database, clock)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        app = await create_app(Stubs.on(channel), clock)
        response = await app.publish(
            message="watched", publish_at=timestamp(clock.now() + timedelta(hours=1))
        )
        call = watch(app, response.message_id)
        assert (await read(call)).state == SCHEDULED
        stopping = asyncio.ensure_future(running.stop(grace=600))
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await read(call)
        check_error(ended.value, grpc.StatusCode.UNAVAILABLE, "SERVER_STOPPING")
        # The stop waited for no watch: far sooner than its 600 s grace.
        await asyncio.wait_for(stopping, 60)


async def test_watch_is_denied_to_a_device_key(app: AppHandle) -> None:
    response = await app.publish(message="x", channel="nobody")
    call = watch(app, response.message_id, auth=app.device())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(call)
    check_error(caught.value, grpc.StatusCode.PERMISSION_DENIED, "SERVER_KEY_REQUIRED")


async def test_watch_of_an_unknown_or_foreign_message_is_not_found(
    app: AppHandle, other_app: AppHandle, clock
) -> None:
    for message_id in ("no-such-message", ""):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read(watch(app, message_id))
        check_error(caught.value, grpc.StatusCode.NOT_FOUND, "MESSAGE_NOT_FOUND")
    theirs = await other_app.publish(
        message="x", publish_at=timestamp(clock.now() + timedelta(hours=1))
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(watch(app, theirs.message_id))
    check_error(caught.value, grpc.StatusCode.NOT_FOUND, "MESSAGE_NOT_FOUND")
    await other_app.cancel(theirs.message_id)
