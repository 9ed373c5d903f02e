"""Request and answer sizes: every method has a limit derived from core.limits, the
largest valid requests fit it, and an error status stays small whatever its text."""

from __future__ import annotations

from dataclasses import replace

from google.rpc import error_details_pb2

from pushhub.v1 import admin_pb2, publish_pb2, registration_pb2, status_pb2
from pushhub_server.api.answer_sizes import MAX_ANSWER_BYTES, answer_bound
from pushhub_server.api.client_address_interceptor import client_address
from pushhub_server.api.errors import MAX_STATUS_BYTES, status_proto
from pushhub_server.api.message_sizes import MIN_REQUEST_BYTES, request_limits
from pushhub_server.core.errors import ErrorCode, FieldViolation, PushHubError
from pushhub_server.core.limits import Limits

LIMITS = Limits()
SIZES = request_limits(LIMITS)
WIDE = "\U0001f600"  # four UTF-8 bytes


def method(module, service: str, name: str) -> str:
    return f"/{module.DESCRIPTOR.services_by_name[service].full_name}/{name}"


def test_every_method_has_a_limit_of_at_least_the_minimum() -> None:
    expected = {
        method(module, service.name, rpc.name)
        for module in (registration_pb2, publish_pb2, status_pb2, admin_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for rpc in service.methods
    }
    assert set(SIZES) == expected
    assert min(SIZES.values()) >= MIN_REQUEST_BYTES


def test_registrations_have_limits_of_their_own() -> None:
    register = method(registration_pb2, "DeviceRegistrationService", "RegisterDevice")
    import_ = method(registration_pb2, "DeviceRegistrationService", "RegisterDevices")
    assert SIZES[register] == LIMITS.registration_bytes == 16 * 1024
    assert SIZES[import_] == LIMITS.batch_bytes == 4 * 1024 * 1024


def typical(index: int) -> registration_pb2.RegisterDeviceRequest:
    """An FCM registration as bulk imports carry them: a 163-character token, two
    channels, three tags and a little metadata."""
    return registration_pb2.RegisterDeviceRequest(
        platform=2,
        device_token=f"{index:08d}:" + "A" * 154,
        channels=[f"news-{index % 50}", "sports"],
        tags=[f"lang:{index % 7}", f"tier-{index % 3}", "beta"],
        metadata={"app_version": "12.4.1", "locale": "en_GB"},
    )


def test_a_full_thousand_item_message_fits_and_so_does_its_answer() -> None:
    message = registration_pb2.RegisterDevicesRequest(
        registrations=[typical(index) for index in range(LIMITS.batch_items)]
    )
    assert message.ByteSize() <= LIMITS.batch_bytes
    items = message.registrations
    bound = answer_bound([item.ByteSize() for item in items], [len(i.channels) for i in items])
    assert bound <= MAX_ANSWER_BYTES


def test_a_registration_with_several_full_templates_fits() -> None:
    template = registration_pb2.Template(body='{"aps": {"alert": "' + "x" * 3000 + '"}}')
    request = typical(1)
    for name in ("a", "b", "c", "d"):
        request.templates[name].CopyFrom(template)
    assert request.ByteSize() <= LIMITS.registration_bytes


def test_the_largest_valid_requests_fit() -> None:
    tags = ["t" * LIMITS.tag] * LIMITS.tag_update_values
    largest = {
        method(registration_pb2, "DeviceRegistrationService", "UpdateTags"): (
            registration_pb2.UpdateTagsRequest(
                user_id=WIDE * LIMITS.user_id, add_tags=tags, remove_tags=tags
            )
        ),
        method(status_pb2, "StatusService", "GetRegistrationStatus"): (
            status_pb2.GetRegistrationStatusRequest(
                request_ids=[WIDE * LIMITS.registration_id] * LIMITS.request_ids
            )
        ),
        method(publish_pb2, "PublishService", "Publish"): publish_pb2.PublishRequest(
            user_ids=[WIDE * LIMITS.user_id] * LIMITS.publish_targets,
            headers={f"{i:03d}" + WIDE * 252: WIDE * LIMITS.header_value for i in range(64)},
            notification=publish_pb2.Notification(title="t" * 2000, body="b" * 2000),
        ),
        method(registration_pb2, "DeviceRegistrationService", "CleanupDevices"): (
            registration_pb2.CleanupDevicesRequest(
                targets=[
                    registration_pb2.CleanupTarget(
                        user_id=WIDE * LIMITS.user_id, device_token="f" * LIMITS.device_token
                    )
                ]
                * LIMITS.cleanup_targets
            )
        ),
    }
    for name, request in largest.items():
        assert request.ByteSize() <= SIZES[name], name


def test_limits_move_with_the_limits() -> None:
    cleanup = method(registration_pb2, "DeviceRegistrationService", "CleanupDevices")
    doubled = request_limits(replace(LIMITS, cleanup_targets=2 * LIMITS.cleanup_targets))
    assert doubled[cleanup] > 1.9 * SIZES[cleanup]


def test_a_status_stays_small_whatever_its_text() -> None:
    text = WIDE * 5000
    error = PushHubError(
        ErrorCode.INVALID_ARGUMENT,
        "A_LONG_REASON_OF_OURS",
        text,
        {text + str(index): text for index in range(20)},
        [FieldViolation(text, text)] * 10,
        retry_after=1e6,
    )
    status = status_proto(error)
    assert status.ByteSize() <= MAX_STATUS_BYTES
    assert status.message.endswith("…") and status.message.startswith(WIDE)
    status.message.encode()  # cut at a character boundary


def test_retry_info_only_when_the_server_says_when() -> None:
    def retry_infos(error: PushHubError) -> list[error_details_pb2.RetryInfo]:
        found = []
        for detail in status_proto(error).details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                found.append(info)
        return found

    busy = PushHubError(ErrorCode.RESOURCE_EXHAUSTED, "BUSY", "busy", retry_after=0.25)
    [info] = retry_infos(busy)
    assert info.retry_delay.ToMilliseconds() == 250
    assert retry_infos(PushHubError(ErrorCode.INVALID_ARGUMENT, "BAD", "bad")) == []


def test_client_addresses_count_an_ipv6_subscriber_as_one() -> None:
    assert client_address("ipv4:203.0.113.7:40000") == "203.0.113.7"
    assert client_address("ipv6:%5B2001:db8:1:2:aa::1%5D:40000") == "2001:db8:1:2::/64"
    assert client_address("ipv6:[2001:db8:1:2:bb::9]:5") == "2001:db8:1:2::/64"
    assert client_address("ipv6:%5B::ffff:198.51.100.1%5D:1") == "198.51.100.1"
    assert client_address("unix:/run/pushhub.sock") == "unix:/run/pushhub.sock"
