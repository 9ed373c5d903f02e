"""Notification templates: Azure-style registration templates and Kinvey-style ``{{name}}``.

Azure templates
---------------
A registration may store named JSON templates. A publish that names one sends
each registration its own template, filled with the publish's
``template_properties``. The expression language is a subset of Azure's:

``$(prop)``
    The property's text. Inside a JSON string it is JSON-escaped, so quotes,
    backslashes and control characters in values cannot break the document.
    Outside a string it is inserted as a whole JSON string (``"..."``).
``$(prop, n)``
    The same, clipped to at most ``n`` characters.
``%(prop)``
    The property's text, URI-encoded (RFC 3986, nothing kept as "safe").
``#(prop)``
    A JSON number. Written as a whole JSON string value, ``"badge": "#(count)"``
    (the form that keeps the stored template valid JSON, as Azure writes it), it
    renders as the bare number ``"badge": 5`` when the value looks like a number
    (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?``); otherwise it behaves
    exactly like ``$(prop)`` and stays a string, as in Azure. Written bare,
    ``"badge": #(count)``, a missing or non-numeric value cannot produce valid
    JSON, so that recipient fails with reason ``TEMPLATE_RENDER_FAILED``. Inside
    a longer string (``"n=#(count)"``) or as an object key it is plain text.

Property names are matched exactly first and then case-insensitively (Azure
treats them as case-insensitive). A missing property renders as empty text.
Azure's ``.(prop, n)``, literals and ``{... + ...}`` concatenation are not
supported; such text is kept verbatim.

A template is compiled once (``compile_template``) into literal text and
placeholders; rendering walks that list. Rendering never parses JSON: the
caller (``delivery.payloads``) parses the result once per distinct template and
reports ``TEMPLATE_RENDER_FAILED`` if it is not valid JSON.

Kinvey messages
---------------
``{{name}}`` (spaces inside the braces allowed) in a publish's ``message`` is
filled per recipient from the registration's ``metadata``; a missing key renders
as empty text. ``compile_message`` splits the text once so each recipient costs
one join.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring  # C-accelerated when available
from urllib.parse import quote

from .errors import PushHubError, invalid_field

TEMPLATE_RENDER_FAILED = "TEMPLATE_RENDER_FAILED"

# $(name), $(name, 12), #(name), %(name). Names: anything but parentheses, commas
# and whitespace, so "$(user.first-name)" works.
_PLACEHOLDER = re.compile(r"([$#%])\(\s*([^()\s,]+)\s*(?:,\s*(\d+)\s*)?\)")
# "#(name)" as a whole JSON string.
_QUOTED_NUMBER = re.compile(r'"#\(\s*([^()\s,"\\]+)\s*\)"')
_AFTER_KEY = re.compile(r"\s*:")
# Azure's "number in JavaScript format", plus an optional minus sign (JSON allows it).
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTERESTING = re.compile(r'["\\$#%]')


class PlaceholderKind(enum.Enum):
    TEXT_IN_STRING = "text_in_string"  # $(p) inside a JSON string: escaped text
    TEXT_BARE = "text_bare"  # $(p) outside strings: a whole JSON string
    URI_IN_STRING = "uri_in_string"  # %(p) inside a JSON string
    URI_BARE = "uri_bare"  # %(p) outside strings: a whole JSON string
    NUMBER_QUOTED = "number_quoted"  # "#(p)": a number if numeric, else a string
    NUMBER_BARE = "number_bare"  # #(p) outside strings: must be numeric


@dataclass(frozen=True, slots=True)
class Placeholder:
    kind: PlaceholderKind
    name: str
    clip: int | None = None

    def value(self, properties: Mapping[str, str], folded: Mapping[str, str]) -> str | None:
        value = properties.get(self.name)
        if value is None:
            value = folded.get(self.name.casefold())
        if value is not None and self.clip is not None:
            value = value[: self.clip]
        return value

    def render(self, properties: Mapping[str, str], folded: Mapping[str, str]) -> str:
        value = self.value(properties, folded)
        kind = self.kind
        if kind is PlaceholderKind.TEXT_IN_STRING:
            return encode_basestring(value or "")[1:-1]
        if kind is PlaceholderKind.TEXT_BARE:
            return encode_basestring(value or "")
        if kind is PlaceholderKind.URI_IN_STRING:
            return quote(value or "", safe="")
        if kind is PlaceholderKind.URI_BARE:
            return '"' + quote(value or "", safe="") + '"'
        if kind is PlaceholderKind.NUMBER_QUOTED:
            if value is not None and _NUMBER.fullmatch(value):
                return value
            return encode_basestring(value or "")
        # NUMBER_BARE
        if value is not None and _NUMBER.fullmatch(value):
            return value
        problem = "is missing" if value is None else f"is not a number ({value[:40]!r})"
        raise template_error(f"template property {self.name!r} used as #({self.name}) {problem}")


def template_error(message: str, field_name: str = "template_properties") -> PushHubError:
    return invalid_field(field_name, TEMPLATE_RENDER_FAILED, message)


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A template split into literal text (``str``) and ``Placeholder`` parts."""

    parts: tuple[str | Placeholder, ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parts if isinstance(p, Placeholder))

    @property
    def is_static(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def render(self, properties: Mapping[str, str] | None = None) -> str:
        """The filled template text. Raises PushHubError(TEMPLATE_RENDER_FAILED)."""
        properties = properties or {}
        folded = {key.casefold(): value for key, value in properties.items()}
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(part.render(properties, folded))
        return "".join(out)


def compile_template(body: str) -> CompiledTemplate:
    """Split a JSON template into literal text and placeholders, tracking JSON strings."""
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    in_string = False
    i = 0
    n = len(body)
    while i < n:
        match = _INTERESTING.search(body, i)
        if match is None:
            literal.append(body[i:])
            break
        start = match.start()
        if start > i:
            literal.append(body[i:start])
        char = body[start]
        if char == "\\":
            # Escapes only matter inside strings; keep the pair verbatim either way.
            literal.append(body[start : start + 2])
            i = start + 2
            continue
        if char == '"':
            if not in_string:
                quoted = _QUOTED_NUMBER.match(body, start)
                if quoted is not None and not _AFTER_KEY.match(body, quoted.end()):
                    _flush(literal, parts)
                    parts.append(Placeholder(PlaceholderKind.NUMBER_QUOTED, quoted.group(1)))
                    i = quoted.end()
                    continue
            in_string = not in_string
            literal.append(char)
            i = start + 1
            continue
        placeholder = _PLACEHOLDER.match(body, start)
        if placeholder is None:
            literal.append(char)
            i = start + 1
            continue
        sigil, name, clip_text = placeholder.groups()
        clip = int(clip_text) if clip_text is not None else None
        if sigil == "$":
            kind = PlaceholderKind.TEXT_IN_STRING if in_string else PlaceholderKind.TEXT_BARE
        elif sigil == "%":
            kind = PlaceholderKind.URI_IN_STRING if in_string else PlaceholderKind.URI_BARE
        elif in_string:
            # "#(p)" within longer text, or as a key: plain text, as in Azure.
            kind = PlaceholderKind.TEXT_IN_STRING
        else:
            kind = PlaceholderKind.NUMBER_BARE
        _flush(literal, parts)
        parts.append(Placeholder(kind, name, clip))
        i = placeholder.end()
    _flush(literal, parts)
    return CompiledTemplate(tuple(parts))


def _flush(literal: list[str], parts: list[str | Placeholder]) -> None:
    if literal:
        parts.append("".join(literal))
        literal.clear()


def render_template(body: str, properties: Mapping[str, str] | None = None) -> str:
    """Compile and render in one go (tests, one-off use). Prefer compile_template + render."""
    return compile_template(body).render(properties)


# ---------------------------------------------------------------- Kinvey {{name}}

_MUSTACHE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """``message`` text split at ``{{name}}``: literals at even, names at odd positions."""

    pieces: tuple[str, ...]

    @property
    def has_placeholders(self) -> bool:
        return len(self.pieces) > 1

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.pieces[1::2])

    def render(self, metadata: Mapping[str, str] | None = None) -> str:
        pieces = self.pieces
        if len(pieces) == 1:
            return pieces[0]
        get = (metadata or {}).get
        out = list(pieces)
        for index in range(1, len(out), 2):
            out[index] = get(pieces[index]) or ""
        return "".join(out)


def compile_message(text: str) -> MessageTemplate:
    return MessageTemplate(tuple(_MUSTACHE.split(text)))


def fill_message(text: str, metadata: Mapping[str, str] | None = None) -> str:
    """``text`` with each ``{{name}}`` replaced by ``metadata[name]`` (missing → empty)."""
    return compile_message(text).render(metadata)
