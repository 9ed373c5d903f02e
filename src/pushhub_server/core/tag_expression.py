"""Azure Notification Hubs tag expressions: parse, print, evaluate and fold.

Grammar (precedence ``!`` > ``&&`` > ``||``; whitespace is ignored)::

    expression := conjunction ( '||' conjunction )*
    conjunction := unary ( '&&' unary )*
    unary      := '!' unary | '(' expression ')' | TAG
    TAG        := [A-Za-z0-9_@#.:-]{1,120}      (validation.check_tag)

The AST is immutable and canonical: an ``And`` never directly holds an ``And``
(nor an ``Or`` an ``Or``), and redundant parentheses leave no trace. Up to
``max_tags`` tag occurrences are allowed in any shape; nesting of ``(`` and
``!`` is bounded by ``MAX_DEPTH`` so every recursive walk stays shallow.

Consumers walk the AST with ``fold`` and a ``TagExprVisitor``: the store
compiles it into one parameterised SQL condition (one EXISTS per tag over the
(registration_id, tag) table), ``evaluate`` is the in-memory oracle, and
``to_text`` prints it back with minimal parentheses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import Protocol, TypeAlias, TypeVar

from .errors import PushHubError, invalid_field
from .token_cursor import Token, TokenCursor, tokenize
from .validation import check_tag

MAX_TAGS = 64
MAX_TAG_LENGTH = 120
MAX_DEPTH = 100
INVALID_TAG_EXPRESSION = "INVALID_TAG_EXPRESSION"
TOO_MANY_TAGS = "TOO_MANY_TAGS"

T = TypeVar("T")


@dataclass(frozen=True)
class Tag:
    name: str


@dataclass(frozen=True)
class Not:
    operand: TagExpr


@dataclass(frozen=True)
class And:
    operands: tuple[TagExpr, ...]

    def __post_init__(self) -> None:
        _check_operands(self)


@dataclass(frozen=True)
class Or:
    operands: tuple[TagExpr, ...]

    def __post_init__(self) -> None:
        _check_operands(self)


TagExpr: TypeAlias = Tag | Not | And | Or


def _check_operands(node: And | Or) -> None:
    object.__setattr__(node, "operands", tuple(node.operands))
    if not node.operands:
        raise ValueError(f"{type(node).__name__} needs at least one operand")


class TagExprVisitor(Protocol[T]):
    """Bottom-up callbacks for ``fold``: each receives its children's results."""

    def tag(self, name: str) -> T: ...

    def not_(self, operand: T) -> T: ...

    def and_(self, operands: Sequence[T]) -> T: ...

    def or_(self, operands: Sequence[T]) -> T: ...


def fold(expr: TagExpr, visitor: TagExprVisitor[T]) -> T:
    """Reduce ``expr`` bottom-up through ``visitor`` (e.g. into an SQL clause)."""
    match expr:
        case Tag(name):
            return visitor.tag(name)
        case Not(operand):
            return visitor.not_(fold(operand, visitor))
        case And(operands):
            return visitor.and_([fold(operand, visitor) for operand in operands])
        case Or(operands):
            return visitor.or_([fold(operand, visitor) for operand in operands])
    raise TypeError(f"not a tag expression: {expr!r}")


def evaluate(expr: TagExpr, tags: Set[str]) -> bool:
    """Whether a registration holding ``tags`` matches ``expr`` (short-circuits)."""
    match expr:
        case Tag(name):
            return name in tags
        case Not(operand):
            return not evaluate(operand, tags)
        case And(operands):
            return all(evaluate(operand, tags) for operand in operands)
        case Or(operands):
            return any(evaluate(operand, tags) for operand in operands)
    raise TypeError(f"not a tag expression: {expr!r}")


class _TagNames:
    def tag(self, name: str) -> frozenset[str]:
        return frozenset((name,))

    def not_(self, operand: frozenset[str]) -> frozenset[str]:
        return operand

    def and_(self, operands: Sequence[frozenset[str]]) -> frozenset[str]:
        return frozenset().union(*operands)

    or_ = and_


def tags_of(expr: TagExpr) -> frozenset[str]:
    """The distinct tag names ``expr`` mentions."""
    return fold(expr, _TagNames())


_OR_LEVEL, _AND_LEVEL, _NOT_LEVEL, _ATOM_LEVEL = range(4)
_Printed: TypeAlias = tuple[int, str]


def _wrap(part: _Printed, level: int) -> str:
    precedence, text = part
    return text if precedence >= level else f"({text})"


class _Printer:
    def tag(self, name: str) -> _Printed:
        return _ATOM_LEVEL, name

    def not_(self, operand: _Printed) -> _Printed:
        return _NOT_LEVEL, "!" + _wrap(operand, _NOT_LEVEL)

    def and_(self, operands: Sequence[_Printed]) -> _Printed:
        return _AND_LEVEL, " && ".join(_wrap(part, _AND_LEVEL) for part in operands)

    def or_(self, operands: Sequence[_Printed]) -> _Printed:
        return _OR_LEVEL, " || ".join(_wrap(part, _OR_LEVEL) for part in operands)


def to_text(expr: TagExpr) -> str:
    """Print ``expr`` with minimal parentheses; ``parse_tag_expression`` reads it back."""
    return fold(expr, _Printer())[1]


def parse_tag_expression(
    text: str,
    field: str = "tag_expression",
    max_tags: int = MAX_TAGS,
    *,
    max_tag_length: int = MAX_TAG_LENGTH,
) -> TagExpr:
    """Parse ``text`` into a canonical AST, or raise an INVALID_ARGUMENT PushHubError.

    Reasons: INVALID_TAG_EXPRESSION (syntax, with metadata ``position``, 1-based),
    TOO_MANY_TAGS (more than ``max_tags`` tag occurrences), and check_tag's
    reasons for a bad tag (also with ``position``).
    """
    return _Parser(text, field, max_tags, max_tag_length).parse()


# --- tokenizer and recursive-descent parser ---------------------------------

_TOKEN = re.compile(
    r"(?P<tag>[A-Za-z0-9_@#.:\-]+)|(?P<op>&&|\|\||[!()])|(?P<space>\s+)|(?P<bad>.)",
    re.DOTALL,
)
_HALF_OPERATORS = {"&": "&&", "|": "||"}


def _join(kind: type[And] | type[Or], parts: list[TagExpr]) -> TagExpr:
    if len(parts) == 1:
        return parts[0]
    flat: list[TagExpr] = []
    for part in parts:
        flat.extend(part.operands if isinstance(part, kind) else (part,))
    return kind(tuple(flat))


class _Parser(TokenCursor):
    reason = INVALID_TAG_EXPRESSION
    end_name = "end of expression"
    max_depth = MAX_DEPTH

    def __init__(self, text: str, field: str, max_tags: int, max_tag_length: int) -> None:
        super().__init__(tokenize(_TOKEN, text), field)
        self.max_tags = max_tags
        self.max_tag_length = max_tag_length
        self.tag_count = 0

    def parse(self) -> TagExpr:
        expr = self._or()
        self.expect("end", "", "'&&', '||' or end of expression")
        return expr

    def _or(self) -> TagExpr:
        parts = [self._and()]
        while self.accept("op", "||"):
            parts.append(self._and())
        return _join(Or, parts)

    def _and(self) -> TagExpr:
        parts = [self._unary()]
        while self.accept("op", "&&"):
            parts.append(self._unary())
        return _join(And, parts)

    def _unary(self) -> TagExpr:
        token = self.next()
        if token.kind == "tag":
            return self._tag(token)
        if token.text == "!":
            return self.nested(token, lambda: Not(self._unary()))
        if token.text == "(":
            return self.nested(token, self._group)
        raise self.fail(token, "a tag, '!' or '('")

    def _group(self) -> TagExpr:
        expr = self._or()
        self.expect("op", ")", "'&&', '||' or ')'")
        return expr

    def _tag(self, token: Token) -> Tag:
        self.tag_count += 1
        if self.tag_count > self.max_tags:
            raise self._too_many_tags(token)
        try:
            check_tag(self.field, token.text, self.max_tag_length)
        except PushHubError as error:
            error.metadata["position"] = str(token.position)
            raise
        return Tag(token.text)

    def _too_many_tags(self, token: Token) -> PushHubError:
        message = (
            f"{self.field}: more than {self.max_tags} tags; the limit is {self.max_tags}"
            f" (exceeded at position {token.position})"
        )
        error = invalid_field(self.field, TOO_MANY_TAGS, message, limit=self.max_tags)
        error.metadata["position"] = str(token.position)
        return error

    def bad_character(self, token: Token) -> PushHubError:
        expected = _HALF_OPERATORS.get(token.text)
        if expected is None:
            return super().bad_character(token)
        return self.error(f"expected '{expected}' at position {token.position}", token.position)
