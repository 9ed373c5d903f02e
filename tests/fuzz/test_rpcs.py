"""Every RPC of every service, with random and hostile requests and every credential.

After each call: no INTERNAL, UNKNOWN or DEADLINE_EXCEEDED (a hang), no Python
internals in any status message; a published message settles (terminal, or
waiting for a later run) without Python text in its error; after each example
the server still answers its health check SERVING. Requests are built from the
descriptors (request_strategies), so a new RPC is fuzzed without a change here.
"""

from __future__ import annotations

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from pushhub.v1 import admin_pb2, publish_pb2, registration_pb2, status_pb2
from pushhub_server.server import SERVICE_NAMES

from .budget import DEEP, SEED
from .conftest import fuzz_settings
from .fuzz_case import FuzzCase, Target
from .request_strategies import MethodDescriptor, methods, services

FILES = (
    registration_pb2.DESCRIPTOR,
    publish_pb2.DESCRIPTOR,
    status_pb2.DESCRIPTOR,
    admin_pb2.DESCRIPTOR,
)
METHODS = methods(*FILES)
_BY_NAME = {method.name: method for method in METHODS}
_BY_FULL_NAME = {f"{m.containing_service.name}.{m.name}": m for m in METHODS}
# Calls that store what a later call reads: drawn twice as often before the call under test.
PRODUCERS = [
    _BY_NAME[name]
    for name in (
        "RegisterDevice",
        "RegisterDevices",
        "Publish",
        "CreateApiKey",
        "SetApnsCredentials",
        "SetFcmCredentials",
        "SetWebPushCredentials",
        "SetHmsCredentials",
    )
]


def test_every_served_service_is_fuzzed() -> None:
    assert {service.full_name for service in services(*FILES)} == set(SERVICE_NAMES)


def _name(method: MethodDescriptor) -> str:
    return f"{method.containing_service.name}.{method.name}"


@pytest.mark.parametrize("method", METHODS, ids=_name)
@fuzz_settings()
@given(data=st.data())
async def test_hostile_requests_get_clean_answers(
    target: Target, method: MethodDescriptor, data: st.DataObject
) -> None:
    """Up to two random calls first (they may store what the last call trips on)."""
    if DEEP:
        note(f"PUSHHUB_FUZZ_SEED={SEED}")
    case = FuzzCase(target, data)
    await case.open()
    # Drawn by name: a failing example then prints which calls came first.
    earlier = st.lists(st.sampled_from([_name(m) for m in PRODUCERS + METHODS]), max_size=2)
    for name in data.draw(earlier, "earlier calls"):
        await case.fuzz(_BY_FULL_NAME[name])
    await case.fuzz(method)
    await case.finish()


# What a registration stores and a publish later reads: spoiled one at a time, or
# any of them.
STORED = ("selector", "templates", "metadata", "device_token")
RENDERED = (
    "template_name",
    "template_properties",
    "headers",
    "message",
    "notification",
    "apns_json",
    "fcm_json",
)


@pytest.mark.parametrize("stored", [*STORED, "any"])
@fuzz_settings()
@given(data=st.data())
async def test_what_devices_store_cannot_break_a_publish(
    target: Target, stored: str, data: st.DataObject
) -> None:
    """Devices register, some with a stored value spoiled, then the app publishes: a
    stored value must not stall the dispatcher or fail the message with Python text."""
    if DEEP:
        note(f"PUSHHUB_FUZZ_SEED={SEED}")
    case = FuzzCase(target, data)
    await case.open()
    focus = (*STORED, "platform", "tags", "channels") if stored == "any" else (stored,)
    registrations = st.lists(
        st.tuples(
            st.sampled_from(("server", "device", "device+user")),
            st.sampled_from(("plausible", "mutant", "mutant")),
        ),
        min_size=1,
        max_size=3,
    )
    for credential, mode in data.draw(registrations, "registrations"):
        await case.fuzz(_BY_NAME["RegisterDevice"], credential, mode, focus)
    mode = data.draw(st.sampled_from(("plausible", "mutant")), "publish mode")
    await case.fuzz(_BY_NAME["Publish"], "server", mode, RENDERED)
    await case.finish()
