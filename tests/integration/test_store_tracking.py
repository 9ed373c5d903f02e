from __future__ import annotations

from datetime import UTC, datetime

from pushhub_server.core.ids import new_id
from pushhub_server.core.models import FailureReason, RequestState, TrackedRequest
from pushhub_server.store import SqlAppRepository, SqlTrackingRepository

from .conftest import create_app

NOW = datetime(2030, 1, 1, tzinfo=UTC)


async def test_record_and_get_many_within_one_app(
    apps: SqlAppRepository, tracking: SqlTrackingRepository, app_id: str
) -> None:
    ok = TrackedRequest(new_id(), app_id, RequestState.SUCCESS, None, None, {})
    failed = TrackedRequest(
        new_id(),
        app_id,
        RequestState.FAILED,
        FailureReason.DUPLICATE_EXISTS,
        "https://example.com/hook",
        {"x-token": "abc"},
    )
    await tracking.record([ok, failed], NOW)
    found = await tracking.get_many(app_id, [ok.request_id, failed.request_id, "unknown"])
    assert found == {ok.request_id: ok, failed.request_id: failed}

    other = await create_app(apps)
    assert await tracking.get_many(other.app_id, [ok.request_id]) == {}
