"""User tokens signed with the app's secret but carrying odd claims: each is a token
that does not count (PERMISSION_DENIED, saying why), never INTERNAL.

The signing secret is what an operator's backend holds to mint its own tokens;
a device key that presents such a token reaches the server's claim checks.
Before, an exp too large for a float answered INTERNAL (OverflowError), and a
sub that no user id can be (NUL, a lone surrogate, 256 characters, empty)
counted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import grpc
import pytest

from pushhub.v1 import registration_pb2 as reg

from .harness import FCM, AppHandle, StoreProbe, expect_error

DENIED = grpc.StatusCode.PERMISSION_DENIED
HEADER = '{"alg": "HS256", "typ": "JWT"}'
LATER = "4102444800"  # 2100-01-01


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def forge(secret: str, payload: str, header: str = HEADER) -> str:
    """An HS256 JWT over the exact JSON text given (PyJWT would refuse to write some)."""
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        pytest.param('"sub": "alice", "exp": 1' + "0" * 400, "exp", id="exp-beyond-a-float"),
        pytest.param('"sub": "alice", "exp": 1e400', "exp", id="exp-1e400"),
        pytest.param('"sub": "alice", "exp": true', "exp", id="exp-true"),
        pytest.param('"sub": "alice", "exp": NaN', "exp", id="exp-nan"),
        pytest.param(f'"sub": "\\udc00", "exp": {LATER}', "sub", id="sub-lone-surrogate"),
        pytest.param(f'"sub": "al\\u0000ice", "exp": {LATER}', "sub", id="sub-nul"),
        pytest.param(f'"sub": "{"a" * 256}", "exp": {LATER}', "sub", id="sub-too-long"),
        pytest.param(f'"sub": "", "exp": {LATER}', "sub", id="sub-empty"),
    ],
)
async def test_a_token_with_an_odd_claim_does_not_count(
    app: AppHandle, store: StoreProbe, claims: str, why: str
) -> None:
    token = forge(await store.signing_secret(app), f'{{"iss": "{app.app_id}", {claims}}}')
    info = await expect_error(
        app.register(app.device(token), platform=FCM, device_token="t-1", user_id="alice"),
        DENIED,
        "USER_TOKEN_REQUIRED",
    )
    assert info.metadata["field"] == "user_id"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await app.register(app.device(token), platform=FCM, device_token="t-1", user_id="alice")
    assert why in (caught.value.details() or ""), caught.value.details()
    # Nor does it prove ownership of alice's device, which would compare sub in SQL.
    await app.register(platform=FCM, device_token="alices-phone", user_id="alice")
    await expect_error(
        app.stubs.registrations.UnregisterDevice(
            reg.UnregisterDeviceRequest(platform=FCM, device_token="alices-phone"),
            metadata=app.device(token),
        ),
        DENIED,
        "NOT_DEVICE_OWNER",
    )


async def test_a_header_nested_past_the_parsers_limit_does_not_count(
    app: AppHandle, store: StoreProbe
) -> None:
    """2,000 levels: within gRPC's 8 KiB of metadata, beyond json.loads' recursion
    (PyJWT turns that RecursionError into a DecodeError itself)."""
    header = '{"alg": "HS256", "x": ' + "[" * 2000 + "]" * 2000 + "}"
    payload = f'{{"iss": "{app.app_id}", "sub": "alice", "exp": {LATER}}}'
    token = forge(await store.signing_secret(app), payload, header)
    await expect_error(
        app.register(app.device(token), platform=FCM, device_token="t-2", user_id="alice"),
        DENIED,
        "USER_TOKEN_REQUIRED",
    )


async def test_a_well_formed_forged_token_counts(app: AppHandle, store: StoreProbe) -> None:
    """The forging above is faithful: with sane claims the same token is accepted."""
    payload = f'{{"iss": "{app.app_id}", "sub": "alice", "exp": {LATER}}}'
    token = forge(await store.signing_secret(app), payload)
    response = await app.register(
        app.device(token), platform=FCM, device_token="t-3", user_id="alice"
    )
    assert response.registration.user_id == "alice"
