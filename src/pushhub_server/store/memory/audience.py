"""AudienceReader in memory: the SQL reader's answers, filter for filter
(tests/contract/test_audience_reader.py runs both on the same cases)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pushhub_server.core.messages import Audience, Recipient
from pushhub_server.core.models import Registration
from pushhub_server.core.tag_expression import evaluate, parse_tag_expression

from .state import MemoryStore

_Filter = Callable[[Registration], bool]


class MemoryAudienceReader:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def page(
        self,
        app_id: str,
        audience: Audience,
        after_id: str | None,
        limit: int,
        now: datetime,
        *,
        with_metadata: bool = True,
        with_templates: bool = True,
        last_id: str | None = None,
    ) -> list[Recipient]:
        filters = _filters(audience)
        page: list[Recipient] = []
        for row in self._store.app_registrations(app_id):  # in id order
            registration = row.registration
            registration_id = registration.registration_id
            if after_id is not None and registration_id <= after_id:
                continue
            if (last_id is not None and registration_id > last_id) or len(page) == limit:
                break
            if row.live(now) and all(accepts(registration) for accepts in filters):
                page.append(_recipient(registration, with_metadata, with_templates))
        return page


def _filters(audience: Audience) -> list[_Filter]:
    """Every filter the audience gives, ANDed; broadcast ignores the channel."""
    filters: list[_Filter] = []
    channel = None if audience.broadcast else audience.channel
    if channel is not None:
        filters.append(lambda r: channel in r.channels)
    if audience.tag_expression:
        # Publish validated it under the configured limits; this only rebuilds its AST.
        text = audience.tag_expression
        expr = parse_tag_expression(text, max_tags=len(text), max_tag_length=len(text))
        filters.append(lambda r: evaluate(expr, set(r.tags)))
    if audience.user_ids:
        users = set(audience.user_ids)
        filters.append(lambda r: r.user_id in users)
    if audience.registration_ids:
        ids = set(audience.registration_ids)
        filters.append(lambda r: r.registration_id in ids)
    if audience.platforms:
        platforms = set(audience.platforms)
        filters.append(lambda r: r.platform in platforms)
    return filters


def _recipient(registration: Registration, with_metadata: bool, with_templates: bool) -> Recipient:
    return Recipient(
        registration.registration_id,
        registration.platform,
        registration.device_token,
        metadata=dict(registration.metadata) if with_metadata else {},
        templates=dict(registration.templates) if with_templates else {},
        selector=registration.selector,
        web_push_keys=registration.web_push_keys,
    )
