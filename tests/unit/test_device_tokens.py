"""core.device_tokens: each platform's token syntax, one rule wherever a token enters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushhub_server.core.device_tokens import check_device_token, token_forms
from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.models import Platform

APNS, FCM = Platform.APNS, Platform.FCM
LIMIT = 4096


def _refused(platform: Platform, token: str, field: str = "device_token") -> PushHubError:
    with pytest.raises(PushHubError) as caught:
        check_device_token(field, platform, token, LIMIT)
    error = caught.value
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert error.metadata["field"] == field
    assert [v.field for v in error.violations] == [field]
    return error


@given(st.binary(min_size=32, max_size=100), st.randoms())
def test_apns_tokens_are_hex_of_either_case_stored_in_lowercase(raw: bytes, rng) -> None:
    token = "".join(rng.choice((c.lower(), c.upper())) for c in raw.hex())
    assert check_device_token("device_token", APNS, token, LIMIT) == raw.hex()


@pytest.mark.parametrize(
    "token",
    [
        "a1b2c3d4e5f6",  # the old README's example: too short
        "a" * 63,
        "a" * 65,  # not whole bytes
        "g" * 64,
        "a" * 63 + " ",
        "a" * 32 + "\n" + "a" * 32,
        "a" * 32 + "/../" + "a" * 32,
        "0x" + "a" * 64,
        "a" * 64 + "\x00",
        "ａ" * 64,  # fullwidth letters are not hex digits
    ],
)
def test_apns_tokens_that_are_not_64_to_200_hex_digits_are_refused(token: str) -> None:
    assert _refused(APNS, token).reason == "INVALID_DEVICE_TOKEN"


def test_an_apns_token_over_200_digits_is_too_long_for_apns() -> None:
    error = _refused(APNS, "a" * 201)
    assert (error.reason, error.metadata["limit"]) == ("VALUE_TOO_LONG", "200")


@given(st.text("ABCXYZabcxyz0189_:-", min_size=1, max_size=300))
def test_fcm_tokens_keep_their_case(token: str) -> None:
    assert check_device_token("device_token", FCM, token, LIMIT) == token


@pytest.mark.parametrize(
    "token", ["a b", "tab\there", "line\nbreak", "nul\x00", "slash/", "dot.", "é", "plus+", ""]
)
def test_fcm_tokens_outside_its_alphabet_are_refused(token: str) -> None:
    assert _refused(FCM, token).reason == "INVALID_DEVICE_TOKEN"


def test_fcm_length_limit_is_the_configured_one() -> None:
    assert check_device_token("device_token", FCM, "t" * LIMIT, LIMIT) == "t" * LIMIT
    error = _refused(FCM, "t" * (LIMIT + 1))
    assert (error.reason, error.metadata["limit"]) == ("VALUE_TOO_LONG", str(LIMIT))


def test_a_token_without_its_platform_is_looked_up_in_each_stored_form() -> None:
    assert token_forms("t", "dEv:1", LIMIT) == ("dEv:1",)
    apns_like = "AB" * 32
    assert token_forms("t", apns_like, LIMIT) == (apns_like, apns_like.lower())
    assert token_forms("t", "ab" * 32, LIMIT) == ("ab" * 32,)
    with pytest.raises(PushHubError) as caught:
        token_forms("targets[3].device_token", "a b", LIMIT)
    assert caught.value.metadata["field"] == "targets[3].device_token"


HMS, WEB_PUSH = Platform.HMS, Platform.WEB_PUSH


@given(st.text("ABCXYZabcxyz0189_.:-", min_size=1, max_size=300))
def test_hms_tokens_keep_their_case(token: str) -> None:
    assert check_device_token("device_token", HMS, token, LIMIT) == token


@pytest.mark.parametrize("token", ["a b", "line\nbreak", "slash/", 'quote"', "é", "plus+", ""])
def test_hms_tokens_outside_its_alphabet_are_refused(token: str) -> None:
    assert _refused(HMS, token).reason == "INVALID_DEVICE_TOKEN"


def test_a_web_push_token_is_a_url_of_at_most_4096_characters() -> None:
    endpoint = "https://fcm.googleapis.com/fcm/send/" + "a" * 100
    assert check_device_token("device_token", WEB_PUSH, endpoint, LIMIT) == endpoint
    # The endpoint's own limit holds even where the configured token limit is larger.
    long = "https://fcm.googleapis.com/" + "a" * 4070
    assert _refused_with(WEB_PUSH, long, 10_000).reason == "VALUE_TOO_LONG"
    for token in ("fcm:abc", "https://a b", "ftp://x/y", "https://x\n"):
        assert _refused(WEB_PUSH, token).reason == "INVALID_DEVICE_TOKEN"


def _refused_with(platform: Platform, token: str, limit: int) -> PushHubError:
    with pytest.raises(PushHubError) as caught:
        check_device_token("device_token", platform, token, limit)
    return caught.value


def test_cleanup_looks_an_endpoint_or_an_hms_token_up_as_it_is_stored() -> None:
    endpoint = "https://updates.push.services.mozilla.com/wpush/v2/gAAAA"
    assert token_forms("t", endpoint, LIMIT) == (endpoint,)
    assert token_forms("t", "hms.token:1", LIMIT) == ("hms.token:1",)
