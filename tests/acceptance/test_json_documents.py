"""Every JSON document a client sends obeys one rule, checked when it is accepted.

Valid UTF-8 (no lone surrogate, raw or escaped), finite numbers only (no NaN,
Infinity or 1e400, which json.loads accepts), nesting at most 64 deep. Before,
apns_json holding "\\udc00" answered INTERNAL, a template holding it was
stored and failed every later template publish to its channel, and a service
account nested 5,000 deep answered INTERNAL.
"""

from __future__ import annotations

import base64
import hashlib
import json

import grpc
import pytest

from pushhub.v1 import admin_pb2
from pushhub.v1 import registration_pb2 as reg

from .harness import (
    ADMIN_METADATA,
    FCM,
    PUBLISHED,
    AppHandle,
    StoreProbe,
    expect_error,
    new_token,
    settle,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT

BROKEN_DOCUMENTS = [
    pytest.param('{"alert": "\\udc00"}', id="lone-surrogate"),
    pytest.param('{"alert": "ok", "\\ud800": 1}', id="lone-surrogate-key"),
    pytest.param('{"n": NaN}', id="nan"),
    pytest.param('{"n": Infinity}', id="infinity"),
    pytest.param('{"n": -1e400}', id="1e400"),
    pytest.param('{"n": 1' + "0" * 400 + "}", id="integer-beyond-a-double"),
    pytest.param('{"a": ' + "[" * 64 + "]" * 64 + "}", id="nested-65-deep"),
    # Within a template's 4,096 characters, beyond json.loads' recursion limit.
    pytest.param('{"a": ' + "[" * 2000 + "]" * 2000 + "}", id="nested-2000-deep"),
]


@pytest.mark.parametrize("field", ["apns_json", "fcm_json"])
@pytest.mark.parametrize("document", BROKEN_DOCUMENTS)
async def test_platform_json_breaking_the_rule_is_refused(
    app: AppHandle, store: StoreProbe, field: str, document: str
) -> None:
    await app.register()
    await expect_error(
        app.publish(message="hi", request_id="refused", **{field: document}),
        INVALID,
        "INVALID_JSON",
        field=field,
    )
    assert await store.published(app, "refused") is None, "a refused publish stores nothing"


async def test_platform_json_within_the_rule_is_delivered(
    server, app: AppHandle, store: StoreProbe
) -> None:
    registered = await app.register()
    document = '{"smile": "\\ud83d\\ude00", "big": 1.5e308, "deep": ' + "[" * 62 + "]" * 62 + "}"
    published = await app.publish(message="hi", apns_json=document)
    status = await settle(server, app, published.message_id)
    assert status.state == PUBLISHED and status.sent_count == 1
    payloads = await store.payloads(app, published.message_id)
    payload = payloads[registered.registration.registration_id]
    assert payload["smile"] == "\U0001f600" and payload["big"] == 1.5e308


@pytest.mark.parametrize("document", BROKEN_DOCUMENTS)
async def test_a_template_breaking_the_rule_is_refused_when_stored(
    app: AppHandle, document: str
) -> None:
    await expect_error(
        app.register(templates={"t": reg.Template(body=document)}),
        INVALID,
        "INVALID_TEMPLATE",
        field="templates[t].body",
    )
    assert await app.list_all() == []


async def test_one_devices_template_cannot_fail_a_publish_for_everyone(
    server, app: AppHandle
) -> None:
    """The issue's case: five devices on a channel, a sixth tries a "\\udc00" template."""
    template = reg.Template(body='{"aps": {"alert": "$(text)"}}')
    for _ in range(5):
        await app.register(channels=["room"], templates={"t": template})
    await expect_error(
        app.register(channels=["room"], templates={"t": reg.Template(body='{"a": "\\udc00"}')}),
        INVALID,
        "INVALID_TEMPLATE",
        field="templates[t].body",
    )
    published = await app.publish(
        channel="room", template_name="t", template_properties={"text": "hello"}
    )
    status = await settle(server, app, published.message_id)
    assert (status.state, status.targeted_count, status.sent_count) == (PUBLISHED, 5, 5)
    assert status.error_message == ""


@pytest.mark.parametrize(
    "document",
    [*BROKEN_DOCUMENTS, pytest.param("[" * 5000 + "]" * 5000, id="the-issue's-5000-deep")],
)
async def test_a_service_account_breaking_the_rule_is_refused(
    app: AppHandle, document: str
) -> None:
    await expect_error(
        app.stubs.admin.SetFcmCredentials(
            admin_pb2.SetFcmCredentialsRequest(app_id=app.app_id, service_account_json=document),
            metadata=app.server(),
        ),
        INVALID,
        "INVALID_CREDENTIALS",
        field="service_account_json",
    )


def _page_token(after: str, filter_key: str) -> str:
    """A page token built by hand: its filter digest is no secret."""
    digest = hashlib.sha256(filter_key.encode()).hexdigest()[:16]
    payload = f'{{"after": {after}, "filter": "{digest}"}}'
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    # The nesting stays within ListRegistrations' request size, so the token rule answers.
    "after",
    ['"\\udc00"', '"a\\u0000b"', '"x y"', "[" * 1200 + "]" * 1200, "1e400"],
)
async def test_a_forged_page_token_is_refused(app: AppHandle, after: str) -> None:
    """A token's "after" goes into SQL: a NUL or a lone surrogate there answered INTERNAL."""
    await app.register(platform=FCM, device_token=new_token())
    listing = reg.ListRegistrationsRequest(
        page_token=_page_token(after, json.dumps([None, None, None, 0]))
    )
    await expect_error(
        app.stubs.registrations.ListRegistrations(listing, metadata=app.server()),
        INVALID,
        "INVALID_PAGE_TOKEN",
        field="page_token",
    )
    apps = admin_pb2.ListAppsRequest(page_token=_page_token(after, "apps"))
    await expect_error(
        app.stubs.admin.ListApps(apps, metadata=ADMIN_METADATA),
        INVALID,
        "INVALID_PAGE_TOKEN",
        field="page_token",
    )
