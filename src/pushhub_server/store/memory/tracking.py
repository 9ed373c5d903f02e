"""TrackingRepository in memory: the requests a RegisterDevice call asked to track."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from pushhub_server.core.models import FailureReason, RequestState, TrackedRequest

from .state import MemoryStore


class MemoryTrackingRepository:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def record(self, requests: Sequence[TrackedRequest], at: datetime) -> None:
        for request in requests:
            self._store.tracked[request.request_id] = request

    async def get_many(
        self, app_id: str, request_ids: Sequence[str]
    ) -> Mapping[str, TrackedRequest]:
        found = (self._store.tracked.get(request_id) for request_id in request_ids)
        return {
            request.request_id: request
            for request in found
            if request is not None and request.app_id == app_id
        }

    async def finish(
        self,
        app_id: str,
        request_id: str,
        state: RequestState,
        reason: FailureReason | None,
    ) -> None:
        request = self._store.tracked.get(request_id)
        if request is not None and request.app_id == app_id:
            self._store.tracked[request_id] = replace(request, state=state, failure_reason=reason)
