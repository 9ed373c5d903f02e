"""Tokens and a cursor over them: the scaffold of the selector and tag-expression parsers.

Each grammar brings its token regex (named groups: ``space`` is skipped, ``bad``
matches any other single character) and its wording. The tokenizer stops at
the first bad character and leaves it as a token, so the parser reports errors
in the order it meets them; the cursor reports every syntax error as an
INVALID_ARGUMENT with the 1-based ``position`` in its metadata.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar, NamedTuple, TypeVar

from .errors import PushHubError, invalid_field

T = TypeVar("T")


class Token(NamedTuple):  # a tuple: a 1,024-character selector has hundreds
    kind: str  # the regex group that matched, a grammar's own kind, or "end"
    text: str  # source text (a grammar may normalise it, as keywords are upper-cased)
    position: int  # 1-based
    value: str | int | float = ""  # a literal's value, for grammars that have literals


MakeToken = Callable[[str, str, int], Token]


def tokenize(pattern: re.Pattern[str], text: str, make: MakeToken = Token) -> list[Token]:
    """The tokens of ``text``, ending with an "end" token or at the first "bad" one."""
    tokens = []
    for match in pattern.finditer(text):
        kind = str(match.lastgroup)
        if kind != "space":
            tokens.append(make(kind, match.group(), match.start() + 1))
        if kind == "bad":  # reported when the parser reaches it, so errors come in order
            return tokens
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def syntax_error(field: str, reason: str, message: str, position: int) -> PushHubError:
    error = invalid_field(field, reason, f"{field}: {message}")
    error.metadata["position"] = str(position)
    return error


class TokenCursor:
    """A recursive-descent parser's position in its tokens. Subclasses set the
    class attributes and parse; ``describe`` and ``bad_character`` word errors."""

    reason: ClassVar[str]  # the reason of every syntax error
    end_name: ClassVar[str]  # what "end" is called in messages: "end of selector"
    max_depth: ClassVar[int]  # how deep ``nested`` may go

    def __init__(self, tokens: list[Token], field: str) -> None:
        self.field = field
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self) -> Token:
        token = self.tokens[self.index]
        if token.kind == "bad":
            raise self.bad_character(token)
        return token

    def next(self) -> Token:
        token = self.peek()
        if token.kind != "end":
            self.index += 1
        return token

    def accept(self, kind: str, text: str) -> bool:
        token = self.peek()
        if token.kind == kind and token.text == text:
            self.index += 1
            return True
        return False

    def expect(self, kind: str, text: str, expected: str) -> None:
        if not self.accept(kind, text):
            raise self.fail(self.peek(), expected)

    def nested(self, token: Token, parse_inner: Callable[[], T]) -> T:
        """parse_inner() one level deeper, refused past max_depth: parsing and
        every walk of the tree recurse, and must stay far from Python's limit."""
        self.depth += 1
        if self.depth > self.max_depth:
            message = f"nesting deeper than {self.max_depth} levels at position {token.position}"
            raise self.error(message, token.position)
        inner = parse_inner()
        self.depth -= 1
        return inner

    def fail(self, token: Token, expected: str) -> PushHubError:
        found = self.end_name if token.kind == "end" else self.describe(token)
        message = f"expected {expected} at position {token.position}, found {found}"
        return self.error(message, token.position)

    def error(self, message: str, position: int) -> PushHubError:
        return syntax_error(self.field, self.reason, message, position)

    def describe(self, token: Token) -> str:
        """How a message quotes a token the parser did not expect."""
        return repr(token.text)

    def bad_character(self, token: Token) -> PushHubError:
        message = f"unexpected character {token.text!r} at position {token.position}"
        return self.error(message, token.position)
