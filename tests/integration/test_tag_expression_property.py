"""The database's answer to a tag expression equals the pure-Python evaluator's."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushhub_server.core.messages import Audience
from pushhub_server.core.models import RegistrationInput, UpsertResult
from pushhub_server.core.tag_expression import And, Not, Or, Tag, TagExpr, evaluate, to_text
from pushhub_server.store import (
    Database,
    SqlAppRepository,
    SqlAudienceReader,
    SqlRegistrationRepository,
)
from tests.store_records import device

from .conftest import create_app

NOW = datetime(2030, 1, 1, tzinfo=UTC)
# Few tags, so random expressions often match something; odd characters on purpose.
TAGS = ("a", "b", "c", "user:x", "lang-en.1", "#hash@2")

tag_sets = st.lists(st.frozensets(st.sampled_from(TAGS)), min_size=30, max_size=30)


def _compound(children: st.SearchStrategy[TagExpr]) -> st.SearchStrategy[TagExpr]:
    operands = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(st.builds(Not, children), st.builds(And, operands), st.builds(Or, operands))


expressions = st.recursive(st.builds(Tag, st.sampled_from(TAGS)), _compound, max_leaves=10)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tags=tag_sets, expr=expressions)
async def test_database_matches_the_evaluator(
    apps: SqlAppRepository,
    registrations: SqlRegistrationRepository,
    db: Database,
    tags: list[frozenset[str]],
    expr: TagExpr,
) -> None:
    app_id = (await create_app(apps)).app_id  # a fresh app per example
    items: list[RegistrationInput] = [device(tags=tuple(sorted(t))) for t in tags]
    results = await registrations.upsert_many(app_id, items, NOW)
    expected = sorted(
        result.registration.registration_id
        for result, held in zip(results, tags, strict=True)
        if isinstance(result, UpsertResult) and evaluate(expr, held)
    )
    audience = Audience(broadcast=True, tag_expression=to_text(expr))
    found = await SqlAudienceReader(db).page(app_id, audience, None, len(items) + 1, NOW)
    assert [recipient.registration_id for recipient in found] == expected
