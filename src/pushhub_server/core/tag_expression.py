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
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from typing import Protocol, TypeAlias, TypeVar

from .errors import PushHubError, invalid_field
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


@dataclass(frozen=True)
class _Token:
    kind: str  # "tag", "op", "bad" or "end"
    text: str
    position: int  # 1-based


def _syntax_error(field: str, message: str, position: int) -> PushHubError:
    error = invalid_field(field, INVALID_TAG_EXPRESSION, f"{field}: {message}")
    error.metadata["position"] = str(position)
    return error


def _tokenize(text: str, field: str) -> list[_Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        kind, token, position = match.lastgroup, match.group(), match.start() + 1
        if kind != "space":
            tokens.append(_Token(str(kind), token, position))
        if kind == "bad":  # reported when the parser reaches it, so errors come in order
            return tokens
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _bad_character(field: str, char: str, position: int) -> PushHubError:
    if char in _HALF_OPERATORS:
        expected = _HALF_OPERATORS[char]
        return _syntax_error(field, f"expected '{expected}' at position {position}", position)
    return _syntax_error(field, f"unexpected character {char!r} at position {position}", position)


def _join(kind: type[And] | type[Or], parts: list[TagExpr]) -> TagExpr:
    if len(parts) == 1:
        return parts[0]
    flat: list[TagExpr] = []
    for part in parts:
        flat.extend(part.operands if isinstance(part, kind) else (part,))
    return kind(tuple(flat))


class _Parser:
    def __init__(self, text: str, field: str, max_tags: int, max_tag_length: int) -> None:
        self.field = field
        self.max_tags = max_tags
        self.max_tag_length = max_tag_length
        self.tokens = _tokenize(text, field)
        self.index = 0
        self.depth = 0
        self.tag_count = 0

    def parse(self) -> TagExpr:
        expr = self._or()
        self._expect("end", "'&&', '||' or end of expression")
        return expr

    def _or(self) -> TagExpr:
        parts = [self._and()]
        while self._accept("||"):
            parts.append(self._and())
        return _join(Or, parts)

    def _and(self) -> TagExpr:
        parts = [self._unary()]
        while self._accept("&&"):
            parts.append(self._unary())
        return _join(And, parts)

    def _unary(self) -> TagExpr:
        token = self._next()
        if token.kind == "tag":
            return self._tag(token)
        if token.text == "!":
            return self._nested(token, lambda: Not(self._unary()))
        if token.text == "(":
            return self._nested(token, self._group)
        raise self._fail(token, "a tag, '!' or '('")

    def _group(self) -> TagExpr:
        expr = self._or()
        self._expect(")", "'&&', '||' or ')'")
        return expr

    def _nested(self, token: _Token, parse_inner: Callable[[], TagExpr]) -> TagExpr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            message = f"nesting deeper than {MAX_DEPTH} levels at position {token.position}"
            raise _syntax_error(self.field, message, token.position)
        expr = parse_inner()
        self.depth -= 1
        return expr

    def _tag(self, token: _Token) -> Tag:
        self.tag_count += 1
        if self.tag_count > self.max_tags:
            raise self._too_many_tags(token)
        try:
            check_tag(self.field, token.text, self.max_tag_length)
        except PushHubError as error:
            error.metadata["position"] = str(token.position)
            raise
        return Tag(token.text)

    def _too_many_tags(self, token: _Token) -> PushHubError:
        message = (
            f"{self.field}: more than {self.max_tags} tags; the limit is {self.max_tags}"
            f" (exceeded at position {token.position})"
        )
        error = invalid_field(self.field, TOO_MANY_TAGS, message, limit=self.max_tags)
        error.metadata["position"] = str(token.position)
        return error

    def _peek(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind == "bad":
            raise _bad_character(self.field, token.text, token.position)
        return token

    def _next(self) -> _Token:
        token = self._peek()
        if token.kind != "end":
            self.index += 1
        return token

    def _accept(self, operator: str) -> bool:
        token = self._peek()
        if token.kind == "op" and token.text == operator:
            self.index += 1
            return True
        return False

    def _expect(self, text_or_end: str, expected: str) -> None:
        token = self._next()
        if text_or_end == "end" and token.kind == "end":
            return
        if token.kind != "op" or token.text != text_or_end:
            raise self._fail(token, expected)

    def _fail(self, token: _Token, expected: str) -> PushHubError:
        found = "end of expression" if token.kind == "end" else repr(token.text)
        message = f"expected {expected} at position {token.position}, found {found}"
        return _syntax_error(self.field, message, token.position)
