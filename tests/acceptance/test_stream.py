"""RegisterDevices: the bidirectional bulk-import stream (issue #2, 6 and 8)."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from pushhub.v1 import registration_pb2 as reg

from .harness import APNS, FCM, AppHandle, check_error, check_status, new_token, stream_requests

INVALID = grpc.StatusCode.INVALID_ARGUMENT
BATCHES = 10
PER_BATCH = 1000


def _plan(index: int, run: str) -> tuple[reg.RegisterDeviceRequest, tuple[str, str] | None]:
    """The item at `index`, and the (reason, field) it must fail with, if any."""
    token = f"{run}{index:05d}{new_token(51)}"  # 64 hex digits: valid on either platform
    item = reg.RegisterDeviceRequest(
        platform=APNS if index % 2 else FCM,
        device_token=token,
        channels=["bulk", f"c{index % 5}"],
        tags=[f"t{index % 7}", "imported"],
        metadata={"n": str(index)},
    )
    if index % 97 == 0:
        item.device_token = token + "x" * 4096
        return item, ("VALUE_TOO_LONG", "device_token")
    if index % 131 == 0:
        item.tags.append("not a tag!")
        return item, ("INVALID_TAG", "tags[2]")
    if index % 151 == 0:
        item.platform = 99
        return item, ("INVALID_PLATFORM", "platform")
    if index % 173 == 0:
        item.channels.append("c" * 256)
        return item, ("VALUE_TOO_LONG", "channels[2]")
    return item, None


async def test_ten_thousand_items_with_scattered_errors(app: AppHandle) -> None:
    run = uuid.uuid4().hex[:8]
    planned = [_plan(index, run) for index in range(BATCHES * PER_BATCH)]
    batches = [
        reg.RegisterDevicesRequest(
            registrations=[item for item, _ in planned[start : start + PER_BATCH]]
        )
        for start in range(0, len(planned), PER_BATCH)
    ]

    started = time.monotonic()
    call = app.stubs.registrations.RegisterDevices(stream_requests(batches), metadata=app.server())
    responses = [response async for response in call]
    elapsed = time.monotonic() - started
    assert await call.code() == grpc.StatusCode.OK

    assert len(responses) == BATCHES, "one response per request"
    assert [len(r.results) for r in responses] == [PER_BATCH] * BATCHES
    results = [result for response in responses for result in response.results]

    stored_tokens: set[str] = set()
    registration_ids: set[str] = set()
    failures = 0
    for index, ((item, expected), result) in enumerate(zip(planned, results, strict=True)):
        outcome = result.WhichOneof("outcome")
        if expected is None:
            assert outcome == "response", (index, result.error)
            registration = result.response.registration
            assert registration.device_token == item.device_token, f"item {index} out of order"
            assert registration.metadata["n"] == str(index)
            assert set(result.response.channel_registration_ids) == {"bulk", f"c{index % 5}"}
            registration_ids.add(registration.registration_id)
            stored_tokens.add(item.device_token)
        else:
            failures += 1
            assert outcome == "error", f"item {index} should fail with {expected}"
            reason, field = expected
            legacy = "8000" if reason == "VALUE_TOO_LONG" else None
            check_status(result.error, INVALID, reason, field=field, legacy_code=legacy)
    assert len(registration_ids) == len(stored_tokens), "one registration per valid item"
    assert failures == sum(1 for _, expected in planned if expected)
    assert failures > 150

    listed = await app.list_all(page_size=1000)
    assert len(listed) == len(stored_tokens)
    assert {r.device_token for r in listed} == stored_tokens
    assert {r.registration_id for r in listed} == registration_ids
    in_c3 = await app.list_all(channel="c3", page_size=1000)
    expected_c3 = {
        item.device_token for index, (item, bad) in enumerate(planned) if not bad and index % 5 == 3
    }
    assert {r.device_token for r in in_c3} == expected_c3
    print(f"RegisterDevices: {len(planned)} items in {elapsed:.2f}s")


async def test_each_request_is_answered_before_the_next_is_sent(app: AppHandle) -> None:
    call = app.stubs.registrations.RegisterDevices(metadata=app.server())
    tokens: list[list[str]] = []
    for round_ in range(3):
        batch = [new_token() for _ in range(round_ + 1)]
        tokens.append(batch)
        await call.write(
            reg.RegisterDevicesRequest(
                registrations=[
                    reg.RegisterDeviceRequest(platform=APNS, device_token=t) for t in batch
                ]
            )
        )
        response = await call.read()
        assert [r.response.registration.device_token for r in response.results] == batch
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK


async def test_empty_request_gets_an_empty_response(app: AppHandle) -> None:
    call = app.stubs.registrations.RegisterDevices(
        stream_requests(
            [
                reg.RegisterDevicesRequest(),
                reg.RegisterDevicesRequest(
                    registrations=[reg.RegisterDeviceRequest(platform=FCM, device_token="x1")]
                ),
            ]
        ),
        metadata=app.server(),
    )
    responses = [response async for response in call]
    assert [len(r.results) for r in responses] == [0, 1]


async def test_reimport_upserts_and_duplicates_within_a_batch(app: AppHandle) -> None:
    tokens = [new_token() for _ in range(50)]

    def batch(channels: list[str]) -> reg.RegisterDevicesRequest:
        items = [
            reg.RegisterDeviceRequest(platform=APNS, device_token=t, channels=channels)
            for t in tokens
        ]
        # The same device twice in one batch: both succeed, one row.
        items.append(
            reg.RegisterDeviceRequest(platform=APNS, device_token=tokens[0], channels=channels)
        )
        return reg.RegisterDevicesRequest(registrations=items)

    async def run(request):
        call = app.stubs.registrations.RegisterDevices(
            stream_requests([request]), metadata=app.server()
        )
        [response] = [r async for r in call]
        return [result.response for result in response.results]

    first = await run(batch(["a"]))
    assert all(first), "every item succeeds"
    assert first[-1].registration.registration_id == first[0].registration.registration_id
    second = await run(batch(["a", "b"]))
    assert [r.registration.registration_id for r in second] == [
        r.registration.registration_id for r in first
    ]
    assert [r.channel_registration_ids["a"] for r in second] == [
        r.channel_registration_ids["a"] for r in first
    ]
    listed = await app.list_all()
    assert len(listed) == 50, "re-importing creates no duplicate rows"
    assert all(sorted(r.channels) == ["a", "b"] for r in listed)


async def test_more_than_a_thousand_items_is_refused_once(app: AppHandle) -> None:
    """One error for the message, ending the stream after the answers before it:
    not one per item (200,000 items made a 53 MB answer no client could take)."""
    first = reg.RegisterDevicesRequest(
        registrations=[reg.RegisterDeviceRequest(platform=APNS, device_token=new_token())]
    )
    too_many = reg.RegisterDevicesRequest(
        registrations=[
            reg.RegisterDeviceRequest(platform=APNS, device_token=new_token()) for _ in range(1001)
        ]
    )
    after = reg.RegisterDevicesRequest(
        registrations=[reg.RegisterDeviceRequest(platform=APNS, device_token=new_token())]
    )
    call = app.stubs.registrations.RegisterDevices(
        stream_requests([first, too_many, after]), metadata=app.server()
    )
    responses = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for response in call:
            responses.append(response)
    check_error(caught.value, INVALID, "TOO_MANY_VALUES", field="registrations")
    assert [len(r.results) for r in responses] == [1]
    stored = [r.device_token for r in await app.list_all()]
    assert stored == [first.registrations[0].device_token]


async def test_stream_with_a_device_key_is_refused(app: AppHandle) -> None:
    call = app.stubs.registrations.RegisterDevices(
        stream_requests(
            [
                reg.RegisterDevicesRequest(
                    registrations=[reg.RegisterDeviceRequest(platform=FCM, device_token="d")]
                )
            ]
        ),
        metadata=app.device(),
    )
    try:
        [r async for r in call]
    except grpc.aio.AioRpcError as error:
        check_error(error, grpc.StatusCode.PERMISSION_DENIED, "SERVER_KEY_REQUIRED")
    else:
        raise AssertionError("a device key imported a batch")
    assert await app.list_all() == []


async def test_batches_in_one_stream_resolve_as_if_sent_one_by_one(app: AppHandle) -> None:
    """Batches of disjoint tokens are written side by side; any overlap keeps the order.

    Even and odd batches draw on two separate token ranges, so neighbours are
    disjoint and may be written at once; each batch re-registers tokens of the
    batch two before it with its own tag, and one moves a token by registration
    id. The last word must win, exactly as with one request at a time.
    """
    tokens = [new_token() for _ in range(1000)]

    def window(number: int) -> list[str]:
        base = (number % 2) * 500 + (number // 2) * 50
        return tokens[base : base + 150]

    created = await app.stubs.registrations.RegisterDevice(
        reg.RegisterDeviceRequest(platform=APNS, device_token=new_token()), metadata=app.server()
    )
    mover_id = created.registration.registration_id
    batches = []
    for number in range(8):
        items = [
            reg.RegisterDeviceRequest(platform=APNS, device_token=t, tags=[f"batch-{number}"])
            for t in window(number)
        ]
        if number == 5:
            # Takes over a token that batch 7 registers again: by id, so it waits its turn.
            items.append(
                reg.RegisterDeviceRequest(
                    platform=APNS, registration_id=mover_id, device_token=tokens[700]
                )
            )
        batches.append(reg.RegisterDevicesRequest(registrations=items))

    call = app.stubs.registrations.RegisterDevices(stream_requests(batches), metadata=app.server())
    responses = [response async for response in call]
    assert all(not r.HasField("error") for response in responses for r in response.results)

    last_batch = {token: number for number in range(8) for token in window(number)}
    listed = {r.device_token: r for r in await app.list_all()}
    for token, number in last_batch.items():
        assert list(listed[token].tags) == [f"batch-{number}"], token
    assert listed[tokens[700]].registration_id == mover_id, "batch 7 updated the moved token"
    # The mover gave up its first token; the row that held tokens[700] is gone.
    assert len(listed) == len(last_batch)


async def test_an_item_that_breaks_a_parser_fails_alone(app: AppHandle) -> None:
    """Deep JSON and a timestamp beyond any date fail their own item, not the message."""
    good = [reg.RegisterDeviceRequest(platform=APNS, device_token=new_token()) for _ in range(3)]
    deep = reg.RegisterDeviceRequest(
        platform=APNS,
        device_token=new_token(),
        templates={"t": reg.Template(body="[" * 2000 + "]" * 2000)},
    )
    far = reg.RegisterDeviceRequest(platform=APNS, device_token=new_token())
    far.expires_at.seconds = 10**12
    batches = [
        reg.RegisterDevicesRequest(registrations=good),
        reg.RegisterDevicesRequest(registrations=[good[0], deep, far, good[1]]),
        reg.RegisterDevicesRequest(registrations=good),
    ]
    call = app.stubs.registrations.RegisterDevices(stream_requests(batches), metadata=app.server())
    responses = [response async for response in call]
    assert len(responses) == 3
    first, middle, last = responses
    assert [r.WhichOneof("outcome") for r in middle.results] == [
        "response",
        "error",
        "error",
        "response",
    ]
    check_status(middle.results[1].error, INVALID, "INVALID_TEMPLATE", field="templates[t].body")
    check_status(middle.results[2].error, INVALID, "VALUE_OUT_OF_RANGE", field="expires_at")
    assert all(r.WhichOneof("outcome") == "response" for r in (*first.results, *last.results))
    assert len(await app.list_all()) == 3


async def test_two_reserved_ids_on_one_token_in_a_batch_are_answered_per_item(
    app: AppHandle,
) -> None:
    """As four RegisterDevice calls in a row: the second reserved id takes the token,
    removing the registration the first made; naming that one again is gone."""
    rpc = app.stubs.registrations
    first, second, on_fcm = [
        (
            await rpc.CreateRegistrationId(reg.CreateRegistrationIdRequest(), metadata=app.server())
        ).registration_id
        for _ in range(3)
    ]
    token = new_token()
    items = [
        reg.RegisterDeviceRequest(
            platform=APNS, device_token=token, registration_id=first, channels=["news"]
        ),
        reg.RegisterDeviceRequest(platform=APNS, device_token=token, registration_id=second),
        reg.RegisterDeviceRequest(platform=FCM, device_token=token, registration_id=on_fcm),
        reg.RegisterDeviceRequest(platform=APNS, device_token=new_token(), registration_id=first),
    ]
    call = rpc.RegisterDevices(
        stream_requests([reg.RegisterDevicesRequest(registrations=items)]), metadata=app.server()
    )
    [response] = [r async for r in call]

    made, taker, other_platform, again = response.results
    assert made.response.registration.registration_id == first
    assert list(made.response.registration.channels) == ["news"]
    assert taker.response.registration.registration_id == second
    assert other_platform.response.registration.registration_id == on_fcm
    check_status(again.error, grpc.StatusCode.NOT_FOUND, "REGISTRATION_GONE")
    listed = {(r.platform, r.device_token): r.registration_id for r in await app.list_all()}
    assert listed == {(APNS, token): second, (FCM, token): on_fcm}
