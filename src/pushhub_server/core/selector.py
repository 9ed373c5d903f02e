"""Backendless conditional delivery: SQL-92-style selectors over message headers.

Grammar (keywords case-insensitive, header names case-sensitive)::

    condition   := conjunction ( OR conjunction )*
    conjunction := negation ( AND negation )*
    negation    := NOT negation | '(' condition ')' | predicate
    predicate   := operand ( '=' | '<>' | '!=' | '<' | '>' | '<=' | '>=' ) operand
                 | header [NOT] IN '(' literal ( ',' literal )* ')'
                 | header [NOT] LIKE string [ESCAPE string]
                 | header IS [NOT] NULL
    operand     := header | literal
    literal     := string | number
    header      := [A-Za-z_][A-Za-z0-9_.-]*
    string      := "'" ( [^'] | "''" )* "'"
    number      := -?( digits [. digits?] | . digits ) ( [eE] [+-]? digits )?

Semantics (JMS message selectors, SQL three-valued logic). Header values are
strings; a missing header is NULL. A comparison with NULL is UNKNOWN. A string
compared with a number compares numerically when the string reads as a number,
and is FALSE otherwise (unlike types). Two strings compare as strings (code
point order). LIKE is case-sensitive: ``%`` is any run, ``_`` one character,
everything else literal. NOT, AND and OR follow SQL's truth tables over
TRUE/FALSE/UNKNOWN, and a selector matches only when the result is TRUE.

Cost. Selectors come from device keys, so no text may be expensive: parsing is
one pass over at most MAX_LENGTH characters, evaluation visits each predicate
once, and LIKE never backtracks (``LikePattern``). The worst 1,024-character
selector costs a few milliseconds to parse and evaluate
(``benchmarks/conditional_delivery.py``). A ``Selector`` compiles its AST into
closures once; the dispatcher remembers each text's result for a run.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from .errors import PushHubError, value_too_long
from .token_cursor import Token, TokenCursor, tokenize

MAX_LENGTH = 1024
MAX_DEPTH = 64
INVALID_SELECTOR = "INVALID_SELECTOR"

Value: TypeAlias = str | int | float
Truth: TypeAlias = bool | None  # None is UNKNOWN
Headers: TypeAlias = Mapping[str, str]


@dataclass(frozen=True)
class Header:
    name: str


@dataclass(frozen=True)
class Literal:
    value: Value


Operand: TypeAlias = Header | Literal


@dataclass(frozen=True)
class Comparison:
    op: str  # one of = <> < > <= >= ('!=' is read as '<>')
    left: Operand
    right: Operand


@dataclass(frozen=True)
class In:
    header: Header
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like:
    header: Header
    pattern: str
    escape: str | None = None
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    header: Header
    negated: bool = False


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class And:
    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Condition, ...]


Condition: TypeAlias = Comparison | In | Like | IsNull | Not | And | Or
_Evaluator: TypeAlias = Callable[[Headers], Truth]


@dataclass(frozen=True)
class Selector:
    """A parsed selector: its source text, its AST and its compiled evaluator."""

    text: str
    condition: Condition
    _evaluator: _Evaluator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_evaluator", _compile(self.condition))

    def evaluate(self, headers: Headers) -> Truth:
        """TRUE, FALSE or UNKNOWN (None) for a message carrying ``headers``."""
        return self._evaluator(headers)


def matches(selector: Selector, headers: Headers) -> bool:
    """Whether a message with ``headers`` reaches a registration holding ``selector``."""
    return selector._evaluator(headers) is True


def parse_selector(text: str, field: str = "selector", max_length: int = MAX_LENGTH) -> Selector:
    """Parse and compile ``text``, or raise an INVALID_ARGUMENT PushHubError.

    Reasons: VALUE_TOO_LONG (over ``max_length`` characters) and INVALID_SELECTOR
    (syntax, with metadata ``position``, 1-based). An empty selector is an
    error: callers store "no selector" as an empty field and skip the call.

    Not cached: a compiled 1,024-character selector holds about a thousand
    objects, and a cache of selectors that device keys choose would make every
    full garbage collection walk them (hundreds of milliseconds with the event
    loop held). Callers keep the verdicts instead (check_selector, the dispatcher).
    """
    if len(text) > max_length:
        raise value_too_long(field, max_length)
    return Selector(text, _Parser(text, field).parse())


@functools.lru_cache(maxsize=1024)
def check_selector(text: str, field: str = "selector", max_length: int = MAX_LENGTH) -> None:
    """Raises as parse_selector does; remembers the texts that passed (registrations
    repeat their selectors), never the compiled selectors."""
    parse_selector(text, field, max_length)


# --- evaluation ---------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_Compare: TypeAlias = Callable[[Value, Value], bool]
_OPERATORS: dict[str, _Compare] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}

_MIRRORED = {"=": "=", "<>": "<>", "<": ">", ">": "<", "<=": ">=", ">=": "<="}


def _parse_number(text: str) -> int | float:
    return int(text) if _INTEGER.fullmatch(text) else float(text)


@functools.lru_cache(maxsize=1024)  # a message's header values repeat for every recipient
def _number_of(text: str) -> int | float | None:
    return _parse_number(text) if _NUMBER.fullmatch(text) else None


def _as_number(value: Value) -> int | float | None:
    return _number_of(value) if isinstance(value, str) else value


def _compare(compare: _Compare, left: Value | None, right: Value | None) -> Truth:
    if left is None or right is None:
        return None
    if isinstance(left, str) is not isinstance(right, str):
        left, right = _as_number(left), _as_number(right)
        if left is None or right is None:
            return False
    return compare(left, right)


def _getter(operand: Operand) -> Callable[[Headers], Value | None]:
    if isinstance(operand, Header):
        name = operand.name
        return lambda headers: headers.get(name)
    value = operand.value
    return lambda headers: value


def _compile_comparison(node: Comparison) -> _Evaluator:
    match node:
        case Comparison(op, Header(name), Literal(value)):
            return _header_vs_literal(_OPERATORS[op], name, value)
        case Comparison(op, Literal(value), Header(name)):
            return _header_vs_literal(_OPERATORS[_MIRRORED[op]], name, value)
    compare, left, right = _OPERATORS[node.op], _getter(node.left), _getter(node.right)
    return lambda headers: _compare(compare, left(headers), right(headers))


def _header_vs_literal(compare: _Compare, name: str, literal: Value) -> _Evaluator:
    """The common case, specialised: no getters, the literal's type known up front."""
    if isinstance(literal, str):
        return _header_vs_string(compare, name, literal)
    return _header_vs_number(compare, name, literal)


def _header_vs_string(compare: _Compare, name: str, literal: str) -> _Evaluator:
    def evaluate(headers: Headers) -> Truth:
        value = headers.get(name)
        return None if value is None else compare(value, literal)

    return evaluate


def _header_vs_number(compare: _Compare, name: str, literal: int | float) -> _Evaluator:
    def evaluate(headers: Headers) -> Truth:
        value = headers.get(name)
        if value is None:
            return None
        number = _number_of(value)
        return False if number is None else compare(number, literal)

    return evaluate


def _compile_in(node: In) -> _Evaluator:
    name = node.header.name
    strings = frozenset(value for value in node.values if isinstance(value, str))
    numbers = frozenset(value for value in node.values if not isinstance(value, str))

    def evaluate(headers: Headers) -> Truth:
        value = headers.get(name)
        if value is None:
            return None
        return value in strings or (bool(numbers) and _as_number(value) in numbers)

    return evaluate


class LikePattern:
    """A compiled LIKE pattern, matched without backtracking.

    The pattern is cut at its ``%`` into segments of fixed length (``_`` is one
    character, everything else itself). The first segment must match at the
    start, the last at the end, and each one between at its leftmost place
    after the previous one: taking the leftmost place never loses a match (it
    leaves the most room for the rest), so nothing is ever tried twice. A
    segment without ``_`` is found with ``str.find``, one with ``_`` with a
    quantifier-free regex; either way a match costs at most O(len(value) ×
    len(pattern)) steps in C, whatever the pattern.
    """

    __slots__ = ("_segments",)

    def __init__(self, pattern: str, escape: str | None = None) -> None:
        """Raises ValueError for an escape that precedes anything but '%', '_' or itself."""
        segments: list[list[str | None]] = [[]]  # None stands for '_'
        chars = iter(pattern)
        for char in chars:
            if char == escape:
                following = next(chars, None)
                if following not in ("%", "_", escape):
                    raise ValueError(f"escape {escape!r} must precede '%', '_' or itself")
                segments[-1].append(following)
            elif char == "%":
                segments.append([])
            else:
                segments[-1].append(None if char == "_" else char)
        self._segments = tuple(_Segment(parts) for parts in segments)

    def matches(self, value: str) -> bool:
        if len(self._segments) == 1:  # no '%': the whole value, exactly
            [only] = self._segments
            return len(value) == only.length and only.match_at(value, 0)
        first, *middle, last = self._segments
        end = len(value) - last.length  # where the last segment must start
        if end < first.length or not first.match_at(value, 0):
            return False
        position = first.length
        for segment in middle:
            found = segment.find(value, position, end)
            if found < 0:
                return False
            position = found + segment.length
        return last.match_at(value, end)


class _Segment:
    """Text between two '%' of a LIKE pattern: literal characters and '_'."""

    __slots__ = ("length", "_text", "_regex")

    def __init__(self, parts: list[str | None]) -> None:
        self.length = len(parts)
        self._text = "".join(part or "" for part in parts)
        self._regex: re.Pattern[str] | None = None
        if None in parts:
            literal = (re.escape(part) if part is not None else "." for part in parts)
            self._regex = re.compile("".join(literal), re.DOTALL)

    def match_at(self, value: str, position: int) -> bool:
        if self._regex is None:
            return value.startswith(self._text, position)
        return self._regex.match(value, position) is not None

    def find(self, value: str, start: int, end: int) -> int:
        """The leftmost place in value[start:end] where the whole segment fits, or -1."""
        if self._regex is None:
            return value.find(self._text, start, end)
        found = self._regex.search(value, start, end)
        return -1 if found is None else found.start()


def _compile_like(node: Like) -> _Evaluator:
    name, pattern = node.header.name, LikePattern(node.pattern, node.escape)
    like = pattern.matches

    def evaluate(headers: Headers) -> Truth:
        value = headers.get(name)
        return None if value is None else like(value)

    return evaluate


def _compile_is_null(node: IsNull) -> _Evaluator:
    name = node.header.name
    if node.negated:
        return lambda headers: name in headers
    return lambda headers: name not in headers


def _not(inner: _Evaluator) -> _Evaluator:
    def evaluate(headers: Headers) -> Truth:
        value = inner(headers)
        return None if value is None else not value

    return evaluate


def _and(parts: list[_Evaluator]) -> _Evaluator:
    def evaluate(headers: Headers) -> Truth:
        result: Truth = True
        for part in parts:
            value = part(headers)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    return evaluate


def _or(parts: list[_Evaluator]) -> _Evaluator:
    def evaluate(headers: Headers) -> Truth:
        result: Truth = False
        for part in parts:
            value = part(headers)
            if value is True:
                return True
            if value is None:
                result = None
        return result

    return evaluate


def _negated(node: In | Like, inner: _Evaluator) -> _Evaluator:
    return _not(inner) if node.negated else inner


def _compile(node: Condition) -> _Evaluator:
    match node:
        case Comparison():
            return _compile_comparison(node)
        case In():
            return _negated(node, _compile_in(node))
        case Like():
            return _negated(node, _compile_like(node))
        case IsNull():
            return _compile_is_null(node)
        case Not(operand):
            return _not(_compile(operand))
        case And(operands):
            return _and([_compile(operand) for operand in operands])
        case Or(operands):
            return _or([_compile(operand) for operand in operands])
    raise TypeError(f"not a selector condition: {node!r}")


# --- tokenizer and recursive-descent parser ---------------------------------

_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<string>'(?:[^']|'')*')"
    r"|(?P<number>-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)"
    r"|(?P<op><>|!=|<=|>=|[=<>(),])"
    r"|(?P<bad>.)",
    re.DOTALL,
)
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ESCAPE", "IS", "NULL"})
_COMPARISONS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}


def _token(kind: str, text: str, position: int) -> Token:
    """Strings and numbers carry their value; a keyword is its upper-cased text."""
    if kind == "string":
        return Token(kind, text, position, text[1:-1].replace("''", "'"))
    if kind == "number":
        return Token(kind, text, position, _parse_number(text))
    if kind == "name" and text.upper() in _KEYWORDS:
        return Token("keyword", text.upper(), position)
    return Token(kind, text, position)


def _join(kind: type[And] | type[Or], parts: list[Condition]) -> Condition:
    if len(parts) == 1:
        return parts[0]
    flat: list[Condition] = []
    for part in parts:
        flat.extend(part.operands if isinstance(part, kind) else (part,))
    return kind(tuple(flat))


class _Parser(TokenCursor):
    reason = INVALID_SELECTOR
    end_name = "end of selector"
    max_depth = MAX_DEPTH

    def __init__(self, text: str, field: str) -> None:
        super().__init__(tokenize(_TOKEN, text, _token), field)

    def parse(self) -> Condition:
        condition = self._or()
        self.expect("end", "", "AND, OR or end of selector")
        return condition

    def _or(self) -> Condition:
        parts = [self._and()]
        while self.accept("keyword", "OR"):
            parts.append(self._and())
        return _join(Or, parts)

    def _and(self) -> Condition:
        parts = [self._negation()]
        while self.accept("keyword", "AND"):
            parts.append(self._negation())
        return _join(And, parts)

    def _negation(self) -> Condition:
        token = self.peek()
        if self.accept("keyword", "NOT"):
            return self.nested(token, lambda: Not(self._negation()))
        if self.accept("op", "("):
            return self.nested(token, self._group)
        return self._predicate()

    def _group(self) -> Condition:
        condition = self._or()
        self.expect("op", ")", "AND, OR or ')'")
        return condition

    def _predicate(self) -> Condition:
        start = self.peek()
        left = self._operand("a header name, string, number, NOT or '('")
        token = self.next()
        if token.kind == "op" and token.text in _COMPARISONS:
            right = self._operand("a header name, string or number")
            return Comparison(_COMPARISONS[token.text], left, right)
        if token.kind == "keyword" and token.text in ("IS", "NOT", "IN", "LIKE"):
            return self._header_predicate(self._header(left, start, token), token)
        raise self.fail(token, "a comparison operator, IN, LIKE or IS")

    def _header_predicate(self, header: Header, token: Token) -> Condition:
        if token.text == "IS":
            negated = self.accept("keyword", "NOT")
            self.expect("keyword", "NULL", "NULL or NOT NULL")
            return IsNull(header, negated)
        negated = token.text == "NOT"
        if negated:
            token = self.next()
        if token.kind == "keyword" and token.text == "IN":
            return self._in(header, negated)
        if token.kind == "keyword" and token.text == "LIKE":
            return self._like(header, negated)
        raise self.fail(token, "IN or LIKE")

    def _in(self, header: Header, negated: bool) -> In:
        self.expect("op", "(", "'('")
        values = [self._literal()]
        while self.accept("op", ","):
            values.append(self._literal())
        self.expect("op", ")", "',' or ')'")
        return In(header, tuple(values), negated)

    def _like(self, header: Header, negated: bool) -> Like:
        pattern = self._string("a quoted LIKE pattern")
        escape = None
        if self.accept("keyword", "ESCAPE"):
            escape = self._escape()
        try:
            LikePattern(str(pattern.value), escape)
        except ValueError as error:
            message = f"{error} in the LIKE pattern at position {pattern.position}"
            raise self.error(message, pattern.position) from None
        return Like(header, str(pattern.value), escape, negated)

    def _escape(self) -> str:
        token = self._string("a quoted escape character")
        if len(str(token.value)) != 1:
            message = f"the ESCAPE at position {token.position} must be one character"
            raise self.error(message, token.position)
        return str(token.value)

    def _operand(self, expected: str) -> Operand:
        token = self.next()
        if token.kind == "name":
            return Header(token.text)
        if token.kind in ("string", "number"):
            return Literal(token.value)
        raise self.fail(token, expected)

    def _literal(self) -> Value:
        token = self.next()
        if token.kind not in ("string", "number"):
            raise self.fail(token, "a string or number")
        return token.value

    def _string(self, expected: str) -> Token:
        token = self.next()
        if token.kind != "string":
            raise self.fail(token, expected)
        return token

    def _header(self, operand: Operand, start: Token, keyword: Token) -> Header:
        if isinstance(operand, Header):
            return operand
        message = f"expected a header name before {keyword.text} at position {start.position}"
        raise self.error(message, start.position)

    def describe(self, token: Token) -> str:
        quoted = token.text if token.kind == "string" else f"'{token.text}'"
        if token.kind == "keyword" and token.text == "NULL":
            return f"{quoted} (test for NULL with IS NULL)"
        return quoted

    def bad_character(self, token: Token) -> PushHubError:
        if token.text != "'":
            return super().bad_character(token)
        message = f"unterminated string starting at position {token.position}"
        return self.error(message, token.position)
