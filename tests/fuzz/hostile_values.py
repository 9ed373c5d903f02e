"""Plausible and hostile values for request fields: strings, JSON, selectors, times.

A string field has a *kind* (request_strategies names it from the field), and
each kind has plausible values, so a request gets past the first check and
reaches deeper code, and hostile ones. Values never contain lone surrogates:
protobuf refuses them on the wire, so no client can send one (a JSON document
can still spell one as an escape, and does here).

Nothing here points at a host outside 127.0.0.0/8: URLs are loopback ports where
nothing listens, or schemes nothing connects to.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from .budget import HUGE_LENGTHS, LENGTHS

Known = Sequence[str]

INT32 = (0, 1, -1, 2, 99, 100, 1000, 1001, 65_535, 2**31 - 1, -(2**31))
INT64 = (*INT32, 2**53 + 1, 2**63 - 1, -(2**63))
UINT32 = (0, 1, 2, 1000, 2**31, 2**32 - 1)
UINT64 = (*UINT32, 2**63, 2**64 - 1)
FLOATS = (0.0, -0.0, 1.0, -1.0, 1e308, -1e308, 5e-324, float("nan"), float("inf"), float("-inf"))

# Odd but valid Unicode and control characters, each a whole string or a part.
ODD_PIECES = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\r\n",
    "\n",
    "\t",
    "\x01\x1b[31m\x7f",
    "line\r\nX-Injected: 1",
    "\u202eevil",  # right-to-left override
    "\u200b",  # zero-width space
    "\ufeff",  # byte-order mark
    "\uffff",
    "\U0010ffff",
    "e\u0301\u0301\u0301",
    "💥",
    "%",
    "_",
    "\\",
    "'",
    '"',
    "%_%",
    "'; DROP TABLE registrations; --",
    "../../etc/passwd",
    "{{name}}",
    "$(name)",
    "#(name)",
    "${jndi:ldap://127.0.0.1:9/a}",
    "a b",
    "a:b/c?d#e",
)

CHANNELS = ("default", "news", "sports")
TAGS = ("lang:en", "beta", "tier-1")
USERS = ("u1", "u2")
TEMPLATE_NAMES = ("t1", "t2")
# Two APNs tokens shared by every example, so a later call can name an earlier device.
APNS_TOKENS = ("ab" * 32, "0123456789abcdef" * 4)
FCM_TOKENS = ("fcm-token_1:APA91b" + "x" * 100, "dGVzdA:APA91bH-" + "Q" * 140)


@dataclass(frozen=True)
class Kind:
    """What a string field holds: plausible values, and hostile ones (both may use
    the ids the server handed out earlier in the example)."""

    plausible: Callable[[Known], SearchStrategy[str]]
    hostile: Callable[[Known], SearchStrategy[str]]


def _fixed(*values: str) -> Callable[[Known], SearchStrategy[str]]:
    return lambda _known: st.sampled_from(values)


def _with_generic(*values: str) -> Callable[[Known], SearchStrategy[str]]:
    """Hostile values of a kind three times as often as generic hostile strings."""
    specific = st.sampled_from(values)
    return lambda _known: st.one_of(specific, specific, specific, generic_strings())


# ------------------------------------------------------------------ strings


def long_strings(lengths: Sequence[int] = LENGTHS) -> SearchStrategy[str]:
    """A long string built by repetition: cheap to draw whatever its length."""
    return st.builds(
        lambda unit, length: (unit * length)[:length],
        st.sampled_from(("x", "é", "💥", "a\x00", "%_")),
        st.sampled_from(lengths),
    )


def generic_strings() -> SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(ODD_PIECES),
        st.text(max_size=24),
        st.lists(st.sampled_from(ODD_PIECES), min_size=2, max_size=4).map("".join),
        # One long string in ~50 near the message limit (deep runs).
        st.integers(0, 49).flatmap(
            lambda n: long_strings(HUGE_LENGTHS) if n == 0 and HUGE_LENGTHS else long_strings()
        ),
    )


GENERIC = Kind(_fixed("hello", "Hello, world", "Grüße 👋", "x"), lambda _k: generic_strings())


def _ids(known: Known) -> SearchStrategy[str]:
    """One of the ids the server handed out, else a new UUID. The draw is the same
    whatever `known` holds, so hypothesis can replay it after different answers."""
    return st.tuples(st.integers(0, 63), st.uuids()).map(
        lambda pick: known[pick[0] % len(known)] if known else str(pick[1])
    )


def _made_up_ids(_known: Known) -> SearchStrategy[str]:
    return st.one_of(
        st.uuids().map(str),
        st.sampled_from(("0", "-1", "00000000-0000-0000-0000-000000000000", "phs_x", "é")),
        generic_strings(),
    )


IDS = Kind(_ids, _made_up_ids)
USER_IDS = Kind(_fixed(*USERS), lambda _k: generic_strings())


def _device_tokens(_known: Known) -> SearchStrategy[str]:
    return st.one_of(
        st.sampled_from((*APNS_TOKENS, *FCM_TOKENS)),
        st.binary(min_size=32, max_size=32).map(bytes.hex),  # APNs: 64 lowercase hex
        st.binary(min_size=100, max_size=100).map(bytes.hex),  # APNs: 200 hex
        # The simulator's failure prefixes (README).
        st.sampled_from(("invalid-", "flaky-", "rejected-")).map(lambda p: p + "a" * 64),
    )


DEVICE_TOKENS = Kind(
    _device_tokens,
    _with_generic(
        "ab cd" * 13,
        "ab\r\ncd" * 11,
        "ab/../cd" * 8,
        "ab?x=1#frag" * 6,
        "ABCDEF" * 11,
        "a" * 201,
        "0" * 4097,
    ),
)
CHANNEL_NAMES = Kind(_fixed(*CHANNELS), lambda _k: generic_strings())
TAG_NAMES = Kind(_fixed(*TAGS), _with_generic("a b", "a\x00", "a" * 121, "&&", "!"))
TEMPLATES = Kind(_fixed(*TEMPLATE_NAMES), lambda _k: generic_strings())
# `kind` is what the selectors test; a 40-character value makes the issue's
# pathological selector backtrack.
HEADER_KEYS = Kind(_fixed("kind", "kind", "kind2"), lambda _k: generic_strings())
HEADER_VALUES = Kind(_fixed("a", "news", "1", "a" * 40), _with_generic("1e400", "NaN", "%" * 40))
METADATA_KEYS = Kind(_fixed("name", "locale"), lambda _k: generic_strings())
PROPERTY_KEYS = Kind(_fixed("name", "prop", "num"), lambda _k: generic_strings())
PROPERTY_VALUES = Kind(
    _fixed("Ann", "7", "x y"), _with_generic('"}', '\\"', "\\udc00", "$(name)", "#(num)")
)
HTTP_HEADER_NAMES = Kind(
    _fixed("X-Request", "x-api-key"),
    _with_generic("X Space", "X:Colon", "X\r\nInjected", "", "Host", "é", "X\x00"),
)
HTTP_HEADER_VALUES = Kind(_fixed("1", "abc def"), _with_generic("a\r\nX: 1", "a\nb", "\x00"))
URLS = Kind(
    _fixed("http://127.0.0.1:9/hook", "https://127.0.0.1:9/a.png"),
    _with_generic(
        "https://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://0.0.0.0:9/",
        "http://127.0.0.1:9/" + "a" * 3000,
        "http://user:pass@127.0.0.1:9/",
        "http://127.0.0.1:9/\r\nHost: x",
        "file:///etc/passwd",
        "gopher://127.0.0.1:9/_",
        "javascript:alert(1)",
        "ftp://127.0.0.1:9/",
        "http://",
        "://",
        "http://127.0.0.1:99999/",
        "http://[::ffff:127.0.0.1]:9/",
    ),
)


def _forged_page_tokens(_known: Known) -> SearchStrategy[str]:
    forged = (
        base64.urlsafe_b64encode(b'{"after": "\\udc00"}').decode(),
        base64.urlsafe_b64encode(b'{"after": 1e400}').decode(),
        base64.urlsafe_b64encode(b"[" * 5000).decode(),
        base64.urlsafe_b64encode(b"\x00\xff" * 10).decode(),
        "=",
        "!!!",
    )
    return st.one_of(st.sampled_from(forged), generic_strings())


PAGE_TOKENS = Kind(lambda known: st.one_of(st.just(""), _ids(known)), _forged_page_tokens)


# -------------------------------------------------------------- structured


def _nest(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# JSON documents a client supplies (apns_json, fcm_json, service accounts, template
# bodies): what the JSON parser lets through but the encoder or Python chokes on...
JSON_VALUES = (
    '{"aps":{"alert":"\\udc00"}}',
    '{"a":"\\ud800"}',
    '{"a": NaN}',
    '{"a": Infinity}',
    '{"a": -1e400}',
    '{"a": ' + "9" * 5000 + "}",
    _nest(5000),
    "[" * 100_000 + "]" * 100_000,
    '{"\\u0000": "\\u0000"}',
    '{"a": "' + "x" * 100_000 + '"}',
)
# ...and documents of the wrong shape.
JSON_SHAPES = (
    '{"a": 1, "a": 2}',
    "[]",
    "1",
    "null",
    "",
    "{",
    "{'a': 1}",
    '{"aps": "not an object"}',
    '{"aps": {"alert": {"title": 5}}}',
    '{"message": {"token": "someone-else"}}',
)


def _hostile_json(_known: Known) -> SearchStrategy[str]:
    return st.one_of(st.sampled_from(JSON_VALUES), st.sampled_from(JSON_SHAPES), generic_strings())


JSON = Kind(
    _fixed(
        '{"aps":{"sound":"x"}}', '{"message":{"data":{"k":"v"}}}', "{}", '{"a":"\\ud83d\\udca5"}'
    ),
    _hostile_json,
)
TEMPLATE_BODIES = Kind(
    _fixed(
        '{"aps":{"alert":"$(name)"}}',
        '{"aps":{"alert":"#(name)"}}',
        '{"message":{"notification":{"title":"$(prop)","body":"#(num)"}}}',
    ),
    lambda known: st.one_of(
        st.sampled_from(
            (
                '{"aps":{"alert":"\\udc00 $(name)"}}',
                '{"aps":{"badge": $(num)}}',
                '{"aps":{"alert":"$(' + "(" * 1000 + ')"}}',
                '{"aps":{"alert":"' + "$(name)" * 500 + '"}}',
            )
        ),
        _hostile_json(known),
    ),
)

# The selector: `%_` pairs backtrack exponentially in a regex LIKE.
PATHOLOGICAL_SELECTORS = (
    "kind LIKE '%_%_%_%_%_%_%_%_%_%_%_%_%_%_%x'",
    "kind LIKE '" + "%_" * 30 + "x'",
    "kind LIKE '" + "%" * 1000 + "x'",
    "kind LIKE '" + "_%" * 300 + "x'",
)
SELECTORS = Kind(
    _fixed(
        "kind = 'a'",
        "kind <> 'news' AND kind2 IS NULL",
        "kind LIKE 'a%'",
        "kind LIKE '!%' ESCAPE '!'",
        "kind IN ('a', 'news')",
        "kind > 3",
    ),
    _with_generic(
        *PATHOLOGICAL_SELECTORS,
        *PATHOLOGICAL_SELECTORS,
        "kind = 1e400",
        "kind = -1e400",
        "kind > NaN",
        "kind = 99999999999999999999999999999999",
        "kind BETWEEN 1 AND 2",
        "kind LIKE 'a' ESCAPE ''",
        "kind LIKE 'a' ESCAPE 'ab'",
        "kind LIKE '\\'",
        "kind LIKE NULL",
        "kind IN (" + ", ".join(["'a'"] * 300) + ")",
        "(" * 70 + "kind = 'a'" + ")" * 70,
        "NOT " * 300 + "kind = 'a'",
        " AND ".join(["kind = 'a'"] * 120),
        "'unterminated",
        "kind",
        "kind = '\x00'",
        "1 = 1",
    ),
)
TAG_EXPRESSIONS = Kind(
    _fixed("lang:en && beta", "!(lang:en || tier-1)", "beta"),
    _with_generic(
        "(" * 5000 + "beta" + ")" * 5000,
        "!" * 5000 + "beta",
        " || ".join(f"t{i}" for i in range(65)),
        " && ".join(["beta"] * 2000),
        "&&",
        "(",
        "beta &&",
        "a b",
    ),
)
APPLE_IDS = Kind(_fixed("ABC123DEFG", "TEAM123456"), _with_generic("abc123defg", "ABC123DEF"))
TOPICS = Kind(_fixed("com.example.app"), _with_generic("com.example.app\r\nX: 1", "a b"))


def _private_keys(_known: Known) -> SearchStrategy[str]:
    return st.sampled_from((_pems()[2],))


def _hostile_private_keys(_known: Known) -> SearchStrategy[str]:
    hostile = (
        _pems()[0],  # RSA, not EC
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\n" + "A" * 100_000 + "\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
    )
    return st.one_of(st.sampled_from(hostile), generic_strings())


PRIVATE_KEYS = Kind(_private_keys, _hostile_private_keys)


def _account() -> dict[str, object]:
    return {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": "k1",
        "private_key": _pems()[0],
        "client_email": "a@demo.iam.gserviceaccount.com",
        "token_uri": "https://127.0.0.1:9/token",
    }


def _service_accounts(_known: Known) -> SearchStrategy[str]:
    return st.just(json.dumps(_account()))


def _hostile_service_accounts(_known: Known) -> SearchStrategy[str]:
    base = _account()
    variants: list[dict[str, object]] = [
        {**base, "private_key": _pems()[1]},  # RSA 1024: too weak
        {**base, "private_key": _pems()[2]},  # an EC key, not RSA
        {**base, "project_id": "/../other"},
        {**base, "project_id": "a\r\nb"},
        {**base, "token_uri": "http://127.0.0.1:9/token"},
        {**base, "token_uri": "file:///etc/passwd"},
        {**base, "client_email": 5},
        {**base, "type": None},
        {key: value for key, value in base.items() if key != "private_key"},
    ]
    documents = st.sampled_from([json.dumps(variant) for variant in variants])
    return st.one_of(documents, documents, JSON.hostile(_known))


SERVICE_ACCOUNTS = Kind(_service_accounts, _hostile_service_accounts)


@cache
def _pems() -> tuple[str, str, str]:
    """An RSA 2048 key, an RSA 1024 key and an EC P-256 key (PKCS#8 PEM), made once."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    return (
        pem(rsa.generate_private_key(65537, 2048)),
        pem(rsa.generate_private_key(65537, 1024)),
        pem(ec.generate_private_key(ec.SECP256R1())),
    )


# ------------------------------------------------------------ well-known

# Timestamp seconds: the first and last valid second (0001-01-01, 9999-12-31) and beyond.
TIMESTAMP_EDGES = (0, -1, -62_135_596_800, -62_135_596_801, 253_402_300_799, 253_402_300_800)
# Duration seconds: beyond ten years, the largest valid Duration and beyond.
DURATION_EDGES = (0, -1, 86_400 * 3650 + 1, 315_576_000_000, 315_576_000_001)
INT64_EDGES = (2**63 - 1, -(2**63))
NANOS = (1_000_000_000, -1, 2_000_000_000, 2**31 - 1, -(2**31))


def timestamp_parts(hostile: bool) -> SearchStrategy[tuple[int, int]]:
    """(seconds, nanos) of a google.protobuf.Timestamp: within the next year, or odd.

    Times near now are drawn as offsets and added to the clock afterwards, so a
    replay draws the same choices later on."""
    plausible = st.tuples(st.integers(60, 86_400 * 365), st.integers(0, 999_999_999)).map(
        lambda p: (int(time.time()) + p[0], p[1])
    )
    if not hostile:
        return plausible
    near_now = st.sampled_from((-3600, 0)).map(lambda offset: int(time.time()) + offset)
    seconds = st.one_of(st.sampled_from((*TIMESTAMP_EDGES, *INT64_EDGES)), near_now)
    return st.one_of(
        st.tuples(seconds, st.integers(0, 999_999_999)),
        st.tuples(plausible.map(lambda p: p[0]), st.sampled_from(NANOS)),
    )


def duration_parts(hostile: bool) -> SearchStrategy[tuple[int, int]]:
    """(seconds, nanos) of a google.protobuf.Duration: a second to a day, or odd."""
    plausible = st.tuples(st.integers(1, 86_400), st.just(0))
    if not hostile:
        return plausible
    return st.one_of(
        st.tuples(st.sampled_from((*DURATION_EDGES, *INT64_EDGES)), st.just(0)),
        st.tuples(st.integers(1, 86_400), st.sampled_from(NANOS)),
        st.tuples(st.just(0), st.sampled_from((1, 999_999_999, -1))),
    )


# ------------------------------------------------------------ credentials


def _b64(document: bytes) -> str:
    return base64.urlsafe_b64encode(document).decode().rstrip("=")


def _jwt(header: dict[str, object], claims: str, signature: str = "c2ln") -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(claims.encode())}.{signature}"


def hostile_user_tokens(app_id: str) -> SearchStrategy[str]:
    """User tokens a device-key holder can forge: without the app's signing secret."""
    hs256 = {"alg": "HS256", "typ": "JWT"}
    claims = '{"sub": "u1", "iss": "%s", "exp": %s}'
    return st.sampled_from(
        (
            "x",
            "a.b.c",
            "..",
            _jwt({"alg": "none"}, claims % (app_id, "4102444800"), ""),
            _jwt(hs256, claims % (app_id, "1e400")),
            _jwt(hs256, claims % (app_id, "NaN")),
            _jwt(hs256, claims % (app_id, '"soon"')),
            _jwt(hs256, claims % (app_id, "9" * 5000)),
            _jwt(hs256, _nest(5000)),
            _jwt({"alg": "HS256", "kid": "k" * 3000}, claims % (app_id, "1")),
            _jwt({"alg": "RS256"}, claims % (app_id, "4102444800")),
            "e30." * 1000,
        )
    )


def invalid_keys() -> SearchStrategy[str]:
    """Authorization values that are not a valid key (printable ASCII: gRPC metadata)."""
    return st.one_of(
        st.sampled_from(
            (
                "Bearer phs_not-a-key",
                "Bearer phd_not-a-key",
                "Bearer ",
                "Bearer",
                "Basic dXNlcjpwYXNz",
                "bearer test-admin-token ",
                "Bearer " + "k" * 4000,
            )
        ),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
            lambda text: "Bearer " + text
        ),
    )
