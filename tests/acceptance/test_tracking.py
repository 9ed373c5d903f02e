"""Registration tracking and its signed webhook (Customer Insights - Journeys)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import grpc
import pytest

from pushhub.v1 import registration_pb2 as reg
from pushhub.v1 import status_pb2 as st

from .harness import (
    APNS,
    AppHandle,
    check_error,
    check_status,
    expect_error,
    new_token,
    rich_status,
    stream_requests,
)
from .webhook_sink import Sink, SinkServer, running_sink, signature

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PENDING = st.REGISTRATION_STATE_PENDING
SUCCESS = st.REGISTRATION_STATE_SUCCESS
FAILED = st.REGISTRATION_STATE_FAILED
NO_REASON = st.REGISTRATION_FAILURE_REASON_UNSPECIFIED
DUPLICATE = st.REGISTRATION_FAILURE_REASON_DUPLICATE_EXISTS
TOO_LONG = st.REGISTRATION_FAILURE_REASON_DEVICE_TOKEN_TOO_LONG
STORE_FAILED = st.REGISTRATION_FAILURE_REASON_FAILED_TO_STORE_DEVICE
TOKEN_NOT_VALID = st.REGISTRATION_FAILURE_REASON_API_TOKEN_NOT_VALID


async def statuses(app: AppHandle, request_ids: list[str]) -> list[tuple[str, int, int]]:
    response = await app.stubs.status.GetRegistrationStatus(
        st.GetRegistrationStatusRequest(request_ids=request_ids), metadata=app.server()
    )
    return [(s.request_id, s.state, s.failure_reason) for s in response.statuses]


# ------------------------------------------------------------- tracking ----


async def test_track_returns_request_id_and_success(app: AppHandle) -> None:
    response = await app.register(track=True)
    assert response.request_id
    assert await statuses(app, [response.request_id]) == [(response.request_id, SUCCESS, NO_REASON)]
    untracked = await app.register()
    assert untracked.request_id == ""


async def test_identical_reregistration_is_duplicate_exists(app: AppHandle) -> None:
    token = new_token()
    first = await app.register(device_token=token, channels=["a"], tags=["t"], track=True)
    again = await app.register(device_token=token, channels=["a"], tags=["t"], track=True)
    assert again.registration.registration_id == first.registration.registration_id
    assert again.request_id and again.request_id != first.request_id
    changed = await app.register(device_token=token, channels=["a", "b"], tags=["t"], track=True)
    assert await statuses(app, [first.request_id, again.request_id, changed.request_id]) == [
        (first.request_id, SUCCESS, NO_REASON),
        (again.request_id, FAILED, DUPLICATE),
        (changed.request_id, SUCCESS, NO_REASON),
    ]
    assert len(await app.list_all()) == 1


async def test_too_long_token_is_device_token_too_long(app: AppHandle) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await app.register(device_token="x" * 4097, track=True)
    info = check_status(
        rich_status(caught.value),
        INVALID,
        "VALUE_TOO_LONG",
        legacy_code="8000",
        field="device_token",
    )
    request_id = info.metadata["request_id"]
    assert request_id
    assert await statuses(app, [request_id]) == [(request_id, FAILED, TOO_LONG)]


async def test_bad_user_token_is_api_token_not_valid(app: AppHandle) -> None:
    info = await expect_error(
        app.register(app.device("not-a-valid-jwt"), user_id="alice", track=True),
        grpc.StatusCode.PERMISSION_DENIED,
        "USER_TOKEN_REQUIRED",
    )
    request_id = info.metadata["request_id"]
    assert await statuses(app, [request_id]) == [(request_id, FAILED, TOKEN_NOT_VALID)]


async def test_other_failures_are_failed_to_store_device(app: AppHandle) -> None:
    info = await expect_error(
        app.register(tags=["bad tag"], track=True), INVALID, "INVALID_TAG", field="tags[0]"
    )
    request_id = info.metadata["request_id"]
    assert await statuses(app, [request_id]) == [(request_id, FAILED, STORE_FAILED)]


async def test_unknown_ids_are_pending_and_order_is_preserved(
    app: AppHandle, other_app: AppHandle
) -> None:
    ok = (await app.register(track=True)).request_id
    token = new_token()
    await app.register(device_token=token)
    duplicate = (await app.register(device_token=token, track=True)).request_id
    unknown = str(uuid.uuid4())
    asked = [unknown, duplicate, ok, "not-an-id", ok]
    assert await statuses(app, asked) == [
        (unknown, PENDING, NO_REASON),
        (duplicate, FAILED, DUPLICATE),
        (ok, SUCCESS, NO_REASON),
        ("not-an-id", PENDING, NO_REASON),
        (ok, SUCCESS, NO_REASON),
    ]
    # Another app sees nothing of these requests.
    assert await statuses(other_app, [ok]) == [(ok, PENDING, NO_REASON)]


async def test_tracking_in_the_stream(app: AppHandle) -> None:
    items = [
        reg.RegisterDeviceRequest(platform=APNS, device_token=new_token(), track=True),
        reg.RegisterDeviceRequest(platform=APNS, device_token="y" * 5000, track=True),
        reg.RegisterDeviceRequest(platform=APNS, device_token=new_token()),
    ]
    call = app.stubs.registrations.RegisterDevices(
        stream_requests([reg.RegisterDevicesRequest(registrations=items)]), metadata=app.server()
    )
    [response] = [r async for r in call]
    first, second, third = response.results
    assert first.response.request_id
    info = check_status(second.error, INVALID, "VALUE_TOO_LONG", field="device_token")
    assert third.response.request_id == ""
    assert await statuses(app, [first.response.request_id, info.metadata["request_id"]]) == [
        (first.response.request_id, SUCCESS, NO_REASON),
        (info.metadata["request_id"], FAILED, TOO_LONG),
    ]


# -------------------------------------------------------------- webhook ----


@pytest.fixture
def sink(webhook_sinks: SinkServer) -> Sink:
    return webhook_sinks.sink()


async def test_webhook_success_is_signed_with_the_presenting_key(
    app: AppHandle, sink: Sink
) -> None:
    url = sink.url(f"/hooks/{uuid.uuid4().hex}?source=pushhub")
    response = await app.register(
        track=True,
        callback_url=url,
        callback_headers={"X-Webhook-Token": "s3cret", "X-Tenant": "acme"},
    )
    [call] = await sink.wait_for(1)
    assert call.path == url.removeprefix(sink.base)
    assert call.headers["x-webhook-token"] == "s3cret"
    assert call.headers["x-tenant"] == "acme"
    body = json.loads(call.body)
    assert set(body) == {"status", "signature", "failure_reason"}
    assert body["status"] == "SUCCESS"
    assert body["failure_reason"] in (None, "")
    assert body["signature"] == signature(app.server_key, url)
    assert response.request_id


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-A": "v\r\nX-Injected: 1"}, "callback_headers[X-A]"),
        ({"X-A": "bell\x07"}, "callback_headers[X-A]"),
        ({"X-A": "caf\u00e9"}, "callback_headers[X-A]"),
        ({"X A": "v"}, "callback_headers.key"),
        ({"X-A:": "v"}, "callback_headers.key"),
        ({"Host": "internal.example"}, "callback_headers.key"),
        ({"Content-Length": "0"}, "callback_headers.key"),
    ],
)
async def test_callback_headers_must_be_http_headers(
    app: AppHandle, sink: Sink, headers: dict[str, str], field: str
) -> None:
    """RFC 7230 names and values, none that frames the request: nothing is sent."""
    url = sink.url("/bad-headers")
    for auth in (app.server(), app.device()):
        await expect_error(
            app.register(auth, track=True, callback_url=url, callback_headers=headers),
            INVALID,
            "INVALID_HEADER",
            field=field,
        )
    # A good request after them is the first the sink sees.
    await app.register(track=True, callback_url=sink.url("/good"))
    [call] = await sink.wait_for(1)
    assert call.path == "/good"
    assert len(await app.list_all()) == 1, "the refused requests stored nothing"


async def test_webhook_failure_reports_reason_and_device_key_signature(
    app: AppHandle, sink: Sink
) -> None:
    url = sink.url("/dup")
    token = new_token()
    await app.register(app.device(), device_token=token)
    await app.register(app.device(), device_token=token, track=True, callback_url=url)
    [call] = await sink.wait_for(1)
    body = json.loads(call.body)
    assert body["status"] == "FAILED"
    assert body["failure_reason"] == "DUPLICATE_EXISTS"
    assert body["signature"] == signature(app.device_key, url)
    assert body["signature"] != signature(app.server_key, url)

    too_long_url = sink.url("/too-long")
    with pytest.raises(grpc.aio.AioRpcError):
        await app.register(device_token="z" * 4097, track=True, callback_url=too_long_url)
    calls = await sink.wait_for(2)
    body = json.loads(calls[1].body)
    assert calls[1].path == "/too-long"
    assert (body["status"], body["failure_reason"]) == ("FAILED", "DEVICE_TOKEN_TOO_LONG")
    assert body["signature"] == signature(app.server_key, too_long_url)


async def test_webhook_is_retried_after_a_failure(app: AppHandle, sink: Sink) -> None:
    sink.fail_first = 1
    url = sink.url("/retry")
    await app.register(track=True, callback_url=url)
    [call] = await sink.wait_for(1, timeout=30)
    assert sink.attempts >= 2
    assert json.loads(call.body)["signature"] == signature(app.server_key, url)


async def test_webhook_target_down_changes_nothing(
    app: AppHandle, sink: Sink, silent_webhook_target: str
) -> None:
    sink.fail_first = 1_000_000  # answers 503, every time
    url = sink.url("/hook")
    started = time.monotonic()
    response = await app.register(
        track=True, callback_url=url, callback_headers={"X-A": "b"}, channels=["news"]
    )
    assert time.monotonic() - started < 3, "the webhook must not block the RPC"
    registration_id = response.registration.registration_id
    await asyncio.sleep(0.5)
    got = await app.stubs.registrations.GetRegistration(
        reg.GetRegistrationRequest(registration_id=registration_id), metadata=app.server()
    )
    assert got.registration == response.registration
    assert await statuses(app, [response.request_id]) == [(response.request_id, SUCCESS, NO_REASON)]
    # A target that accepts connections but never answers changes nothing either.
    unanswered = await app.register(track=True, callback_url=silent_webhook_target)
    assert await statuses(app, [unanswered.request_id]) == [
        (unanswered.request_id, SUCCESS, NO_REASON)
    ]
    assert len(await app.list_all()) == 2


async def test_an_oversized_message_is_refused_whole_and_tracks_nothing(app: AppHandle) -> None:
    """Refused once, before any item is read: no item is stored, none is tracked."""
    items = [
        reg.RegisterDeviceRequest(platform=APNS, device_token=new_token(), track=index % 500 == 0)
        for index in range(1001)
    ]
    call = app.stubs.registrations.RegisterDevices(
        stream_requests([reg.RegisterDevicesRequest(registrations=items)]), metadata=app.server()
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [r async for r in call]
    check_error(caught.value, INVALID, "TOO_MANY_VALUES", field="registrations")
    assert await app.list_all() == []


# ------------------------------------------- callbacks into the operator's network ----


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "must be an https URL"),
        ("https://10.0.0.1/hook", "not an IP address"),
        ("https://169.254.169.254/latest/meta-data/", "not an IP address"),
        ("https://[::1]:8443/hook", "not an IP address"),
        ("https://2130706433/hook", "not an IP address"),
        ("https://user:pass@hooks.example.com/hook", "user name or password"),
        ("gopher://hooks.example.com/", "must be an https URL"),
    ],
)
async def test_callback_urls_into_the_operators_network_are_refused_at_registration(
    app: AppHandle, url: str, why: str
) -> None:
    for key in (app.device(), app.server()):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await app.register(key, track=True, callback_url=url)
        check_status(rich_status(caught.value), INVALID, "INVALID_URL", field="callback_url")
        assert why in caught.value.details()


class ConnectionCounter:
    """A TCP listener on 127.0.0.1 that only counts the connections it gets."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ConnectionCounter:
        self._server = await asyncio.start_server(self._count, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _count(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


async def logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in caplog.text:
        assert time.monotonic() < deadline, f"never logged: {text!r}"
        await asyncio.sleep(0.02)


async def test_a_callback_name_resolving_to_loopback_is_never_connected_to(
    app: AppHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """The URL passes every rule a registration can check; its host, localhost,
    resolves to 127.0.0.1 (or ::1) when the webhook is sent, so it is refused then:
    logged, not retried, and the port behind it never sees a connection."""
    caplog.set_level(logging.WARNING, "pushhub_server.delivery.webhooks")
    async with ConnectionCounter() as target:
        url = f"https://localhost:{target.port}/hook"
        response = await app.register(app.device(), track=True, callback_url=url)
        await logged(caplog, f"webhook {url} refused: localhost resolves to")
        assert target.connections == 0
    assert await statuses(app, [response.request_id]) == [(response.request_id, SUCCESS, NO_REASON)]


async def test_a_redirect_from_a_callback_is_not_followed(
    app: AppHandle, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pushhub_server.delivery.webhooks")
    with running_sink() as inside:
        sink.redirect_to = inside.url("/admin/reset")
        url = sink.url("/hook")
        await app.register(app.device(), track=True, callback_url=url)
        await logged(caplog, f"webhook {url} answered HTTP 307, a redirect: not followed")
        assert len(sink.calls_to(url)) == 1
        assert inside.received == []
