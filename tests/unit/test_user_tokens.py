"""User tokens whose claims are signed correctly but odd: refused, never an error or a pass.
AppService runs on the in-memory store (proved like the SQL one by tests/contract)."""

from __future__ import annotations

import secrets

import jwt
import pytest

from pushhub_server.core.apps import AppService
from pushhub_server.core.clock import ManualClock
from pushhub_server.core.credentials import SecretBox
from pushhub_server.store.memory import MemoryAppRepository, MemoryStore


@pytest.fixture
def service(clock: ManualClock) -> AppService:
    return AppService(MemoryAppRepository(MemoryStore()), clock)


@pytest.mark.parametrize("exp", ["soon", [1], {"at": 1}, float("nan"), float("inf"), 10**400, True])
async def test_an_exp_that_is_not_a_finite_number_is_refused(
    service: AppService, exp: object
) -> None:
    created = await service.create_app(f"tokens-{secrets.token_hex(4)}")
    app = created.app
    claims = {"sub": "alice", "iss": app.app_id, "exp": exp}
    # NaN and infinity are not JSON, but Python's encoder writes them and PyJWT reads them.
    token = jwt.encode(claims, _opened_secret(app.signing_secret), algorithm="HS256")

    principal = await service.authenticate(created.device_key, token)

    assert principal.user_id is None
    assert principal.user_token_error == "user token rejected: exp must be a number of seconds"


async def test_an_expired_token_says_so(service: AppService, clock: ManualClock) -> None:
    created = await service.create_app(f"tokens-{secrets.token_hex(4)}")
    app = created.app
    past = clock.now().timestamp() - 1
    claims = {"sub": "alice", "iss": app.app_id, "exp": past}
    token = jwt.encode(claims, _opened_secret(app.signing_secret), algorithm="HS256")

    principal = await service.authenticate(created.device_key, token)

    assert (principal.user_id, principal.user_token_error) == (None, "user token expired")


def _opened_secret(stored: str) -> str:
    """The app's signing secret, stored unsealed ("plain:") by a service without a key."""
    return SecretBox(None).open(stored)
