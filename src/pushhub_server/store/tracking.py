"""Tracked registration requests (Customer Insights – Journeys status queries)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from pushhub_server.core.clock import to_micros
from pushhub_server.core.models import FailureReason, RequestState, TrackedRequest

from .database import Database
from .records import dump_map, load_map
from .schema import tracked_requests
from .sql import chunked


class SqlTrackingRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, requests: Sequence[TrackedRequest], at: datetime) -> None:
        if not requests:
            return
        created_at = to_micros(at)
        rows = [_row(request, created_at) for request in requests]
        async with self._db.write() as conn:
            await conn.execute(tracked_requests.insert(), rows)

    async def finish(
        self,
        app_id: str,
        request_id: str,
        state: RequestState,
        reason: FailureReason | None,
    ) -> None:
        mine = sa.and_(tracked_requests.c.app_id == app_id, tracked_requests.c.id == request_id)
        values = {"state": int(state), "failure_reason": None if reason is None else int(reason)}
        async with self._db.write() as conn:
            await conn.execute(sa.update(tracked_requests).where(mine).values(values))

    async def get_many(
        self, app_id: str, request_ids: Sequence[str]
    ) -> Mapping[str, TrackedRequest]:
        found: dict[str, TrackedRequest] = {}
        async with self._db.read() as conn:
            for ids in chunked(request_ids):
                query = sa.select(tracked_requests).where(
                    tracked_requests.c.app_id == app_id, tracked_requests.c.id.in_(ids)
                )
                for row in await conn.execute(query):
                    found[row.id] = _request(row)
        return found


def _row(request: TrackedRequest, created_at: int) -> dict[str, Any]:
    return {
        "id": request.request_id,
        "app_id": request.app_id,
        "state": int(request.state),
        "failure_reason": None if request.failure_reason is None else int(request.failure_reason),
        "callback_url": request.callback_url,
        "callback_headers_json": dump_map(request.callback_headers),
        "created_at": created_at,
    }


def _request(row: Any) -> TrackedRequest:
    return TrackedRequest(
        request_id=row.id,
        app_id=row.app_id,
        state=RequestState(row.state),
        failure_reason=None if row.failure_reason is None else FailureReason(row.failure_reason),
        callback_url=row.callback_url,
        callback_headers=load_map(row.callback_headers_json),
    )
