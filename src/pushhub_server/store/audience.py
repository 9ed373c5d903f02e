"""A message's audience as one parameterised query, read in keyset pages.

Every filter is a bound parameter: tag names never reach the SQL text. Pages
follow the registration id, which each query reads in index order, so no page
sorts or loads more than its own rows, at any audience size.

Decoding is per recipient, so it is kept to tuple unpacking: a registration's
metadata and templates stay JSON text until something reads them, which a
message without ``{{name}}`` placeholders or ``template_name`` never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from pushhub_server.core.clock import to_micros
from pushhub_server.core.messages import Audience, Recipient
from pushhub_server.core.models import Platform, Template
from pushhub_server.core.tag_expression import fold, parse_tag_expression
from pushhub_server.core.web_push import WebPushKeys

from .database import Database
from .platforms import PLATFORM_CODES, PLATFORMS_BY_CODE
from .records import live_registration, load_map, load_templates, web_push_keys
from .schema import channels, registration_tags, registrations, subscriptions
from .sql import one_of

_reg = registrations.c


class _Reads(NamedTuple):
    """Which of a registration's large columns a page reads."""

    metadata: bool = True
    templates: bool = True

    def columns(self) -> tuple[sa.ColumnElement[Any], ...]:
        # Left out, a column reads as NULL: the row keeps its shape, and a message
        # that never renders metadata or templates never moves their bytes.
        return (
            _reg.id,
            _reg.platform,
            _reg.device_token,
            _reg.metadata_json if self.metadata else sa.null().label("metadata_json"),
            _reg.templates_json if self.templates else sa.null().label("templates_json"),
            _reg.selector,
            _reg.web_push_p256dh,
            _reg.web_push_auth,
        )


_EVERYTHING = _Reads()


# Statements built for recent (app, audience, limit, first page?): a fan-out reads
# every page with the same one, only the cursor and the time change.
_QUERY_CACHE_SIZE = 64


class SqlAudienceReader:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._queries: dict[tuple[str, Audience, int, bool, bool, _Reads], sa.Select[Any]] = {}

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
        reads = _Reads(with_metadata, with_templates)
        query = self._query(app_id, audience, limit, after_id is None, last_id is None, reads)
        parameters = {"a_after_id": after_id, "a_last_id": last_id, "a_now": to_micros(now)}
        async with self._db.read() as conn:
            rows = await conn.execute(query, parameters)
        # Tuple unpacking: a Row's attribute lookup costs more than the rest of a recipient.
        return [
            _StoredRecipient(
                id_,
                PLATFORMS_BY_CODE[platform],
                token,
                metadata,
                templates,
                selector,
                None if p256dh is None else web_push_keys(p256dh, auth),
            )
            for id_, platform, token, metadata, templates, selector, p256dh, auth in rows
        ]

    def _query(
        self,
        app_id: str,
        audience: Audience,
        limit: int,
        first: bool,
        to_the_end: bool,
        reads: _Reads,
    ) -> sa.Select[Any]:
        key = (app_id, audience, limit, first, to_the_end, reads)
        query = self._queries.get(key)
        if query is None:
            after = None if first else sa.bindparam("a_after_id")
            last = None if to_the_end else sa.bindparam("a_last_id")
            query = audience_query(
                app_id,
                audience,
                after,
                limit,
                sa.bindparam("a_now"),
                self._db.dialect,
                reads,
                last_id=last,
            )
            if len(self._queries) >= _QUERY_CACHE_SIZE:
                del self._queries[next(iter(self._queries))]
            self._queries[key] = query
        return query


def audience_query(
    app_id: str,
    audience: Audience,
    after_id: str | sa.BindParameter[Any] | None,
    limit: int,
    now: datetime | sa.BindParameter[Any],
    dialect: str,
    reads: _Reads = _EVERYTHING,
    *,
    last_id: str | sa.BindParameter[Any] | None = None,
) -> sa.Select[Any]:
    """The page of recipients after after_id, up to last_id (a partition's end);
    public so EXPLAIN can be checked.

    after_id, last_id and now may be bound parameters, filled in when the query runs.
    """
    query, key = _driving_rows(app_id, audience, reads.columns())
    conditions = _audience_conditions(app_id, audience, now, dialect)
    if after_id is not None:
        conditions.append(key > after_id)
    if last_id is not None:
        conditions.append(key <= last_id)
    return query.where(*conditions).order_by(key).limit(limit)


def partition_end_query(
    app_id: str, audience: Audience, after_id: str | None, size: int
) -> sa.Select[tuple[str]] | None:
    """The id `size` rows after after_id in the audience's driving index (the app's
    registrations, or the channel's subscriptions): where a partition starting
    after after_id ends (docs/fleet.md). None for an audience that names its
    users or registrations: a list that short is never cut.

    An index-only scan of `size` entries: the audience's other filters and the
    registrations' expiry are left to the pages, so a partition holds at most
    `size` recipients, fewer where filters leave some out.
    """
    if audience.user_ids or audience.registration_ids:
        return None
    if _walks_registrations(audience):
        key = _reg.id
        query = sa.select(key).where(_reg.app_id == app_id)
    else:
        key = subscriptions.c.registration_id
        channel_id = (
            sa.select(channels.c.id)
            .where(channels.c.app_id == app_id, channels.c.name == audience.channel)
            .scalar_subquery()
        )
        query = sa.select(key).where(subscriptions.c.channel_id == channel_id)
    if after_id is not None:
        query = query.where(key > after_id)
    return query.order_by(key).offset(size - 1).limit(1)


def _walks_registrations(audience: Audience) -> bool:
    return audience.channel is None or audience.broadcast


def _audience_conditions(
    app_id: str,
    audience: Audience,
    now: datetime | sa.BindParameter[Any],
    dialect: str,
) -> list[sa.ColumnElement[bool]]:
    at = now if isinstance(now, sa.BindParameter) else to_micros(now)
    return [_reg.app_id == app_id, live_registration(at), *_filters(audience, dialect)]


def _driving_rows(
    app_id: str, audience: Audience, columns: Sequence[sa.ColumnElement[Any]]
) -> tuple[sa.Select[Any], sa.ColumnElement[str]]:
    """Where the scan starts, and the id it pages by, in that index's order.

    A channel's subscriptions are read through (channel_id, registration_id),
    so a small channel in a large app reads only its own rows; everything else
    walks the app's registrations through (app_id, id).
    """
    selected = sa.select(*columns)
    if _walks_registrations(audience):
        return selected.select_from(registrations), _reg.id
    channel_id = (
        sa.select(channels.c.id)
        .where(channels.c.app_id == app_id, channels.c.name == audience.channel)
        .scalar_subquery()
    )
    subscribed = subscriptions.c
    joined = selected.select_from(
        subscriptions.join(registrations, _reg.id == subscribed.registration_id)
    ).where(subscribed.channel_id == channel_id)
    return joined, subscribed.registration_id


def _filters(audience: Audience, dialect: str) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if audience.tag_expression:
        conditions.append(_tag_condition(audience.tag_expression, dialect))
    if audience.user_ids:
        conditions.append(one_of(_reg.user_id, audience.user_ids, dialect))
    if audience.registration_ids:
        conditions.append(one_of(_reg.id, audience.registration_ids, dialect))
    if audience.platforms:
        conditions.append(_reg.platform.in_([PLATFORM_CODES[p] for p in audience.platforms]))
    return conditions


class _TagCondition:
    """Folds a tag expression into SQL: one EXISTS per tag, probing (registration_id, tag)."""

    def __init__(self, dialect: str) -> None:
        # PostgreSQL turns an EXISTS under OR into a hashed subplan that reads
        # every row of the tag in all apps, on every page. OFFSET 0 is its
        # documented optimisation fence: the probe stays one index lookup per row.
        self._fenced = dialect == "postgresql"

    def tag(self, name: str) -> sa.ColumnElement[bool]:
        tags = registration_tags.c
        probe = sa.select(sa.literal(1)).where(tags.registration_id == _reg.id, tags.tag == name)
        return (probe.offset(0) if self._fenced else probe).exists()

    def not_(self, operand: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        return sa.not_(operand)

    def and_(self, operands: Sequence[sa.ColumnElement[bool]]) -> sa.ColumnElement[bool]:
        return sa.and_(*operands)

    def or_(self, operands: Sequence[sa.ColumnElement[bool]]) -> sa.ColumnElement[bool]:
        return sa.or_(*operands)


def _tag_condition(text: str, dialect: str) -> sa.ColumnElement[bool]:
    # Publish validated the expression under the configured limits; this only
    # rebuilds its AST, so bounds of len(text) (never reached) refuse nothing.
    expr = parse_tag_expression(text, max_tags=len(text), max_tag_length=len(text))
    return fold(expr, _TagCondition(dialect))


class _StoredRecipient(Recipient):
    """A Recipient read from the store: metadata and templates decode on first use.

    It equals the Recipient with the same values, and stays immutable. Filling
    the instance dict directly is what Recipient's frozen __init__ does too,
    field by field through object.__setattr__, at three times the cost.
    """

    def __init__(
        self,
        registration_id: str,
        platform: Platform,
        device_token: str,
        metadata_json: str | None,
        templates_json: str | None,
        selector: str | None,
        web_push_keys: WebPushKeys | None = None,
    ) -> None:
        values = self.__dict__
        values["registration_id"] = registration_id
        values["platform"] = platform
        values["device_token"] = device_token
        values["selector"] = selector
        values["web_push_keys"] = web_push_keys
        values["_metadata_json"] = metadata_json
        values["_templates_json"] = templates_json

    @property  # type: ignore[override]
    def metadata(self) -> dict[str, str]:
        values = self.__dict__
        if "_metadata" not in values:
            values["_metadata"] = load_map(values["_metadata_json"])
        return values["_metadata"]  # type: ignore[no-any-return]

    @property  # type: ignore[override]
    def templates(self) -> dict[str, Template]:
        values = self.__dict__
        if "_templates" not in values:
            values["_templates"] = load_templates(values["_templates_json"])
        return values["_templates"]  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Recipient):
            return NotImplemented
        return _values(self) == _values(other)

    __hash__ = Recipient.__hash__


def _values(recipient: Recipient) -> tuple[Any, ...]:
    return (
        recipient.registration_id,
        recipient.platform,
        recipient.device_token,
        recipient.metadata,
        recipient.templates,
        recipient.selector,
        recipient.web_push_keys,
    )
