"""Random and hostile request messages for any RPC, built from the protobuf descriptors.

`messages(descriptor, known)` walks a message's fields generically. Each field
value is plausible or hostile: scalars get edge values (unknown enum numbers,
the extremes of each integer type, NaN and infinities), strings get a kind from
the field's name (hostile_values), nested messages recurse, Timestamp and
Duration get out-of-range parts, and repeated fields and maps get hostile
entries or one entry repeated up to 100,000 times (cheap to draw, within a byte
budget). A field the tables below do not name still gets generic hostile
strings, so a new RPC or field is fuzzed the day it is added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import duration_pb2, message_factory, timestamp_pb2
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    FileDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.message import Message
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from . import hostile_values as hv
from .budget import MANY
from .hostile_values import Kind

Known = Sequence[str]

# String fields by name; the kind decides which plausible and hostile values they get.
FIELD_KINDS: dict[str, Kind] = {
    **dict.fromkeys(
        (
            "app_id",
            "registration_id",
            "registration_ids",
            "message_id",
            "key_id",
            "request_id",
            "request_ids",
        ),
        hv.IDS,
    ),
    **dict.fromkeys(("user_id", "user_ids"), hv.USER_IDS),
    "device_token": hv.DEVICE_TOKENS,
    **dict.fromkeys(("channel", "channels"), hv.CHANNEL_NAMES),
    **dict.fromkeys(("tag", "tags", "add_tags", "remove_tags"), hv.TAG_NAMES),
    "selector": hv.SELECTORS,
    "tag_expression": hv.TAG_EXPRESSIONS,
    **dict.fromkeys(("apns_json", "fcm_json"), hv.JSON),
    "service_account_json": hv.SERVICE_ACCOUNTS,
    "private_key_pem": hv.PRIVATE_KEYS,
    **dict.fromkeys(("callback_url", "image_url"), hv.URLS),
    "template_name": hv.TEMPLATES,
    "page_token": hv.PAGE_TOKENS,
}
# The same name means something else in these messages.
SCOPED_KINDS: dict[tuple[str, str], Kind] = {
    ("pushhub.v1.Template", "body"): hv.TEMPLATE_BODIES,
    ("pushhub.v1.SetApnsCredentialsRequest", "key_id"): hv.APPLE_IDS,
    ("pushhub.v1.SetApnsCredentialsRequest", "team_id"): hv.APPLE_IDS,
    ("pushhub.v1.SetApnsCredentialsRequest", "topic"): hv.TOPICS,
}
# Map fields by name: (keys, string values). Other maps get generic strings.
MAP_KINDS: dict[str, tuple[Kind, Kind]] = {
    "headers": (hv.HEADER_KEYS, hv.HEADER_VALUES),
    "data": (hv.HEADER_KEYS, hv.HEADER_VALUES),
    "metadata": (hv.METADATA_KEYS, hv.GENERIC),
    "template_properties": (hv.PROPERTY_KEYS, hv.PROPERTY_VALUES),
    "callback_headers": (hv.HTTP_HEADER_NAMES, hv.HTTP_HEADER_VALUES),
    "templates": (hv.TEMPLATES, hv.GENERIC),
}

# How a message is drawn: every field plausible; plausible but for one or two
# hostile fields (deep code sees one bad value at a time); or anything anywhere.
MODES = ("plausible", "mutant", "mutant", "mutant", "chaos")
UNKNOWN_ENUM_NUMBERS = (-1, 3, 99, 2**31 - 1, -(2**31))
# A repeated field or map amplified to many entries stays under this many bytes.
AMPLIFY_BUDGET = 8 * 1024 * 1024
MAX_DEPTH = 4

_INT_RANGES: dict[int, tuple[tuple[int, ...], int, int]] = {
    FieldDescriptor.TYPE_INT32: (hv.INT32, -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (hv.INT32, -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (hv.INT32, -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (hv.INT64, -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (hv.INT64, -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (hv.INT64, -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (hv.UINT32, 0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (hv.UINT32, 0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (hv.UINT64, 0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (hv.UINT64, 0, 2**64 - 1),
}


def services(*files: FileDescriptor) -> list[ServiceDescriptor]:
    """Every service of the given .proto files (their DESCRIPTOR.services_by_name)."""
    return [service for file in files for service in file.services_by_name.values()]


def methods(*files: FileDescriptor) -> list[MethodDescriptor]:
    return [method for service in services(*files) for method in service.methods]


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def messages(
    descriptor: Descriptor,
    known: Known,
    depth: int = 0,
    mode: str | None = None,
    focus: Sequence[str] = (),
) -> SearchStrategy[Message]:
    """Messages of the descriptor's type; `known` are ids the server handed out so far.
    `mode` (see MODES) is drawn when not given; `focus` limits which top-level fields a
    mutant spoils."""
    hostile = mode != "plausible"
    if descriptor.full_name == timestamp_pb2.Timestamp.DESCRIPTOR.full_name:
        parts = hv.timestamp_parts(hostile)
        return parts.map(lambda p: timestamp_pb2.Timestamp(seconds=p[0], nanos=p[1]))
    if descriptor.full_name == duration_pb2.Duration.DESCRIPTOR.full_name:
        parts = hv.duration_parts(hostile)
        return parts.map(lambda p: duration_pb2.Duration(seconds=p[0], nanos=p[1]))
    if depth > MAX_DEPTH:
        return st.builds(message_class(descriptor))
    return _message(descriptor, known, depth, mode, tuple(focus))


class Drawn:
    """A drawn request. Its repr is a sketch: hypothesis prints the draws of a failing
    example, and a message's own repr would print a 15 MB string in full. (Not a
    dataclass: hypothesis prints a dataclass field by field, ignoring its repr.)"""

    __slots__ = ("message",)

    def __init__(self, message: Message) -> None:
        self.message = message

    def __repr__(self) -> str:
        return sketch(self.message)


@st.composite
def requests(
    draw: st.DrawFn,
    descriptor: Descriptor,
    known: Known,
    mode: str | None = None,
    focus: Sequence[str] = (),
) -> Drawn:
    """A request message of the descriptor's type (see messages)."""
    return Drawn(draw(messages(descriptor, known, mode=mode, focus=focus)))


@st.composite
def _message(
    draw: st.DrawFn,
    descriptor: Descriptor,
    known: Known,
    depth: int,
    mode: str | None,
    focus: tuple[str, ...] = (),
) -> Message:
    mode = mode or draw(st.sampled_from(MODES))
    names = [name for name in _mutation_targets(descriptor) if not focus or name in focus]
    bad: set[str] = set()
    if mode == "mutant" and names:
        bad = set(draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)))
    values: dict[str, Any] = {}
    for field in descriptor.fields:
        if field.name in bad:
            values[field.name] = draw(_field(descriptor, field, known, depth, hostile=True))
        elif mode == "chaos":
            choice = draw(st.sampled_from(("unset", "plausible", "hostile")))
            if choice != "unset":
                hostile = choice == "hostile"
                values[field.name] = draw(_field(descriptor, field, known, depth, hostile))
        elif draw(st.integers(0, 3)):  # three fields in four are set
            values[field.name] = draw(_field(descriptor, field, known, depth, hostile=False))
    return _build(message_class(descriptor), values)


def _mutation_targets(descriptor: Descriptor) -> list[str]:
    """Field names a mutant may spoil; a field with values of its own kind (or with
    structure: a message, a list, a map) twice, as it has more ways to be wrong."""
    names = []
    for field in descriptor.fields:
        special = (
            field.type == FieldDescriptor.TYPE_MESSAGE
            or field.is_repeated
            or (descriptor.full_name, field.name) in SCOPED_KINDS
            or field.name in FIELD_KINDS
        )
        names += [field.name] * (2 if special else 1)
    return names


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        if _is_map(field):
            entries = getattr(message, name)
            if _map_value(field).message_type is not None:
                for key, item in value.items():
                    entries[key].CopyFrom(item)
            else:
                entries.update(value)
        elif field.is_repeated:
            getattr(message, name).extend(value)
        elif field.message_type is not None:
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def _field(
    parent: Descriptor, field: FieldDescriptor, known: Known, depth: int, hostile: bool
) -> SearchStrategy[Any]:
    if _is_map(field):
        return _map(field, known, depth, hostile)
    if not field.is_repeated:
        return _single(parent, field, known, depth, hostile)
    plausible = _single(parent, field, known, depth, hostile=False)
    if not hostile:
        return st.lists(plausible, max_size=3)
    bad = _single(parent, field, known, depth, hostile=True)
    return st.one_of(
        st.lists(st.one_of(plausible, bad), min_size=1, max_size=4),
        _amplified(plausible),
        _amplified(bad),
    )


def _amplified(element: SearchStrategy[Any]) -> SearchStrategy[list[Any]]:
    """One entry repeated many times (within the byte budget): cheap to draw."""
    return st.tuples(element, st.sampled_from(MANY)).map(
        lambda pair: [pair[0]] * _affordable(pair[1], _size(pair[0]))
    )


def _single(
    parent: Descriptor, field: FieldDescriptor, known: Known, depth: int, hostile: bool
) -> SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        mode = None if hostile else "plausible"
        return messages(field.message_type, known, depth + 1, mode)
    if kind == FieldDescriptor.TYPE_STRING:
        strings = _kind(parent, field.name)
        return strings.hostile(known) if hostile else strings.plausible(known)
    if kind == FieldDescriptor.TYPE_BYTES:
        return hv.long_strings().map(str.encode) if hostile else st.binary(max_size=16)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        numbers = [value.number for value in field.enum_type.values]
        if hostile:
            return st.sampled_from((0, *UNKNOWN_ENUM_NUMBERS))
        return st.sampled_from([number for number in numbers if number] or numbers)
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        width = 32 if kind == FieldDescriptor.TYPE_FLOAT else 64
        if hostile:
            return st.one_of(st.sampled_from(hv.FLOATS), st.floats(width=width))
        return st.floats(0, 100, width=width)
    edges, low, high = _INT_RANGES[kind]
    if hostile:
        return st.one_of(st.sampled_from(edges), st.integers(low, high))
    return st.integers(0, 100)


def _kind(parent: Descriptor, name: str) -> Kind:
    return SCOPED_KINDS.get((parent.full_name, name)) or FIELD_KINDS.get(name, hv.GENERIC)


def _map(
    field: FieldDescriptor, known: Known, depth: int, hostile: bool
) -> SearchStrategy[dict[Any, Any]]:
    entry = field.message_type
    value_field = entry.fields_by_name["value"]
    keys_kind, values_kind = MAP_KINDS.get(field.name, (hv.GENERIC, hv.GENERIC))

    def keys(bad: bool) -> SearchStrategy[Any]:
        if entry.fields_by_name["key"].type != FieldDescriptor.TYPE_STRING:
            return _single(entry, entry.fields_by_name["key"], known, depth, bad)
        return keys_kind.hostile(known) if bad else keys_kind.plausible(known)

    def values(bad: bool) -> SearchStrategy[Any]:
        if value_field.type != FieldDescriptor.TYPE_STRING:
            return _single(entry, value_field, known, depth, bad)
        return values_kind.hostile(known) if bad else values_kind.plausible(known)

    if not hostile:
        return st.dictionaries(keys(False), values(False), max_size=3)
    return st.one_of(
        st.dictionaries(keys(True), values(False), min_size=1, max_size=3),
        st.dictionaries(keys(False), values(True), min_size=1, max_size=3),
        st.tuples(keys(False), values(False), st.sampled_from(MANY)).map(_many_entries),
        st.tuples(keys(False), values(True), st.sampled_from(MANY)).map(_many_entries),
    )


def _many_entries(template: tuple[Any, Any, int]) -> dict[Any, Any]:
    key, value, count = template
    return {_nth_key(key, n): value for n in range(_affordable(count, _size(key) + _size(value)))}


def _nth_key(key: Any, n: int) -> Any:
    return f"{key}{n}" if isinstance(key, str) else key + n if isinstance(key, int) else key


def _affordable(count: int, size: int) -> int:
    return max(1, min(count, AMPLIFY_BUDGET // max(size, 1)))


def _size(value: Any) -> int:
    if isinstance(value, Message):
        return value.ByteSize() + 3
    if isinstance(value, str):
        return len(value.encode()) + 2
    if isinstance(value, bytes):
        return len(value) + 2
    return 10


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _map_value(field: FieldDescriptor) -> FieldDescriptor:
    return field.message_type.fields_by_name["value"]


# ---------------------------------------------------------------- sketch

SKETCH_TEXT = 48
SKETCH_TOTAL = 1500


def sketch(message: Message) -> str:
    """A short, readable picture of a request: long strings and long lists abbreviated."""
    text = _sketch(message)
    return text if len(text) <= SKETCH_TOTAL else text[: SKETCH_TOTAL - 1] + "…"


def _sketch(message: Message) -> str:
    parts = []
    for descriptor, value in message.ListFields():
        if _is_map(descriptor):
            entries = [f"{_value(k)}: {_value(v)}" for k, v in list(value.items())[:3]]
            more = f", … {len(value)} entries" if len(value) > 3 else ""
            parts.append(f"{descriptor.name}={{{', '.join(entries)}{more}}}")
        elif descriptor.is_repeated:
            parts.append(f"{descriptor.name}={_list(list(value))}")
        else:
            parts.append(f"{descriptor.name}={_value(value)}")
    return f"{message.DESCRIPTOR.name}({', '.join(parts)})"


def _list(values: Sequence[object]) -> str:
    if len(values) > 3:
        same = all(v == values[0] for v in values)
        return f"[{_value(values[0])} {'×' if same else '… of'} {len(values)}]"
    return "[" + ", ".join(_value(v) for v in values) + "]"


def _value(value: object) -> str:
    if isinstance(value, Message):
        return _sketch(value)
    if isinstance(value, str) and len(value) > SKETCH_TEXT:
        return f"{value[:SKETCH_TEXT]!r}…(len {len(value)})"
    return repr(value)
