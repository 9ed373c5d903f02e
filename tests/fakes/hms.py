"""A fake Huawei Push Kit (REST v1) with its OAuth 2.0 token endpoint.

One TLS listener on 127.0.0.1 serves both, over HTTP/2 (ALPN ``h2``) or HTTP/1.1,
which Push Kit accepts too; the wire protocols are tests/fakes/fcm.py's. The
certificate chains to a CA the tests generate (tests/fakes/tls.py).

- ``POST /oauth2/v3/token``: the client-credentials grant. The form's
  ``client_id``/``client_secret`` must be a client from ``oauth_client()``.
  Answers ``{access_token, expires_in, token_type}`` or Huawei's numeric error
  object ``{error: 1101, sub_error, error_description}`` (HTTP 400).
- ``POST /v1/<clientId>/messages:send``: checks the bearer token (issued here for
  this client id, not expired by the fake's clock or ``expire_tokens()``), the
  request and message shape as Huawei documents it (``message.token`` a list of
  at most 1,000 tokens, ``data`` a string, ``android`` options and notification,
  the message at most 4,096 bytes without its tokens), then answers
  ``{"code", "msg", "requestId"}``:

  ==========  =====  =====================================================
  80000000    200    every token accepted
  80100000    200    some tokens illegal: ``msg`` is the JSON text
                     ``{"success": n, "failure": m, "illegal_tokens": [...]}``
  80300007    400    every token illegal
  80100003    400    the message is malformed (``msg`` says how)
  80100013    400    ``android.collapse_key`` outside -1..100
  80300008    400    the message is over 4,096 bytes
  80300010    400    more than 1,000 tokens
  80200001    401    no token, an unknown one, or one for another client
  80200003    401    the access token expired
  ==========  =====  =====================================================

  ``validate_only`` requests are checked the same way and recorded in
  ``validated`` only.

Huawei lists both ``title`` and ``body`` as required in a notification; whether
the service refuses one of them missing is not documented, so the fake asks for at
least one (PushHub sends a body without a title for a plain ``message``).

Knobs: ``invalid`` (tokens Push Kit deems illegal), ``expire_tokens()``,
``revoke_tokens()``,
``fail_next()`` (429/500/503 with ``Retry-After``), ``access_token_lifetime``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
import urllib.parse
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pushhub_server.core.clock import Clock
from tests.fakes.fcm import Response, json_response, serve_connection
from tests.fakes.tls import TlsFiles

TOKEN_PATH = "/oauth2/v3/token"
MAX_TOKENS = 1000
MESSAGE_LIMIT = 4096
MAX_TTL_SECONDS = 1_296_000  # 15 days

SUCCESS = "80000000"
PARTIAL = "80100000"
ILLEGAL_MESSAGE = "80100003"
BAD_COLLAPSE_KEY = "80100013"
AUTH_ERROR = "80200001"
TOKEN_EXPIRED = "80200003"
ALL_TOKENS_INVALID = "80300007"
MESSAGE_TOO_BIG = "80300008"
TOO_MANY_TOKENS = "80300010"
INTERNAL_ERROR = "81000001"

_SEND_PATH = re.compile(r"/v1/([^/]+)/messages:send")
_DURATION = re.compile(r"\d+|\d+[sS]|\d+\.\d{1,9}|\d+\.\d{1,9}[sS]")
_REQUEST_FIELDS = frozenset({"validate_only", "message", "review"})
_MESSAGE_FIELDS = frozenset(
    {"data", "notification", "android", "apns", "webpush", "token", "topic", "condition"}
)
_ANDROID_FIELDS = frozenset(
    {
        "collapse_key",
        "urgency",
        "category",
        "ttl",
        "bi_tag",
        "fast_app_target",
        "data",
        "notification",
        "receipt_id",
        "target_user_type",
    }
)
_NOTIFICATION_STRINGS = frozenset(
    {
        "title",
        "body",
        "icon",
        "color",
        "sound",
        "tag",
        "image",
        "channel_id",
        "notify_summary",
        "big_title",
        "big_body",
        "group",
        "ticker",
        "when",
        "importance",
        "visibility",
        "body_loc_key",
        "title_loc_key",
        "profile_id",
    }
)
_NOTIFICATION_FIELDS = _NOTIFICATION_STRINGS | {
    "default_sound",
    "click_action",
    "body_loc_args",
    "title_loc_args",
    "multi_lang_key",
    "style",
    "notify_id",
    "badge",
    "auto_clear",
    "auto_cancel",
    "use_default_vibrate",
    "use_default_light",
    "vibrate_config",
    "light_settings",
    "foreground_show",
    "inbox_content",
    "buttons",
}
# status code → body for fail_next(): Push Kit's own error for 500; 429 and 503
# (flow control) come from its gateway as plain text.
_TRANSIENT: dict[int, tuple[str, bytes]] = {
    429: ("text/plain", b"Too Many Requests"),
    500: ("application/json", b""),
    503: ("text/plain", b"Service Unavailable"),
}


@dataclass(frozen=True)
class _Grant:
    client_id: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None


class _Refusal(Exception):
    """A send Push Kit refuses: its HTTP status, result code and message."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


class FakeHms:
    """Push Kit and its token endpoint on 127.0.0.1; ``start()`` before use."""

    def __init__(
        self,
        clock: Clock,
        tls: TlsFiles,
        access_token_lifetime: int = 3600,
        alpn: tuple[str, ...] = ("h2", "http/1.1"),
    ) -> None:
        self.clock = clock
        self.tls = tls
        self.access_token_lifetime = access_token_lifetime
        self.alpn = alpn
        # Tokens Push Kit deems illegal (unregistered, or another app's).
        self.invalid: set[str] = set()
        # Whole request JSON of accepted sends, in arrival order; validate_only apart.
        self.requests: list[dict[str, Any]] = []
        self.validated: list[dict[str, Any]] = []
        self.token_requests = 0
        self.send_requests = 0
        # Connections accepted, by negotiated protocol ("h2", "http/1.1").
        self.connections: Counter[str] = Counter()
        self._clients: dict[str, str] = {}
        self._grants: dict[str, _Grant] = {}
        self._failures: deque[_Failure] = deque()
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._port = 0

    # ------------------------------------------------------------- control

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}{TOKEN_PATH}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self.tls.server_context(alpn=self.alpn)
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._connections.values():
                writer.close()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        self.connections[ssl_object.selected_alpn_protocol() or "http/1.1"] += 1
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await serve_connection(self.handle, reader, writer)
        finally:
            del self._connections[task]

    def oauth_client(self, client_id: str | None = None) -> tuple[str, str]:
        """A new AppGallery Connect OAuth client: (client id, client secret)."""
        client_id = client_id or str(100_000_000 + secrets.randbelow(900_000_000))
        secret = secrets.token_hex(32)
        self._clients[client_id] = secret
        return client_id, secret

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (Push Kit answers 80200003)."""
        now = self.clock.now()
        self._grants = {
            token: _Grant(grant.client_id, min(grant.expires_at, now))
            for token, grant in self._grants.items()
        }

    def revoke_tokens(self) -> None:
        """Push Kit forgets every access token issued so far (it answers 80200001)."""
        self._grants.clear()

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = "1") -> None:
        """The next ``count`` authenticated sends get this transient error."""
        if status not in _TRANSIENT:
            raise ValueError(f"fail_next supports {sorted(_TRANSIENT)}, not {status}")
        self._failures.extend(_Failure(status, retry_after) for _ in range(count))

    def delivered(self) -> list[str]:
        """Every token of accepted (not validate_only) sends, legal ones only, in order."""
        tokens = [token for request in self.requests for token in request["message"]["token"]]
        return [token for token in tokens if token not in self.invalid]

    # ------------------------------------------------------------- routing

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        if method == "POST" and path == TOKEN_PATH:
            self.token_requests += 1
            return self._issue_token(headers, body)
        match = _SEND_PATH.fullmatch(path)
        if method == "POST" and match:
            self.send_requests += 1
            try:
                return self._send(match.group(1), headers, body)
            except _Refusal as refusal:
                return push_answer(refusal.status, refusal.code, refusal.msg)
        return push_answer(404, "80100001", "UnSupported svc")

    # ------------------------------------------------------------- OAuth 2.0

    def _issue_token(self, headers: Mapping[str, str], body: bytes) -> Response:
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return oauth_error(None, "invalid request")
        form = urllib.parse.parse_qs(body.decode())
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != "client_credentials":
            return oauth_error(None, "unsupported grant_type")
        client_id = form.get("client_id", [""])[0]
        secret = form.get("client_secret", [""])[0]
        if client_id not in self._clients:
            return oauth_error(20001, "invalid client")
        if not secrets.compare_digest(self._clients[client_id], secret):
            return oauth_error(12304, "invalid client_secret")
        token = f"CF3X{secrets.token_urlsafe(48)}"
        expires_at = self.clock.now() + dt.timedelta(seconds=self.access_token_lifetime)
        self._grants[token] = _Grant(client_id, expires_at)
        answer = {
            "access_token": token,
            "expires_in": self.access_token_lifetime,
            "token_type": "Bearer",
        }
        return json_response(200, answer)

    # ------------------------------------------------------------- messages:send

    def _send(self, client_id: str, headers: Mapping[str, str], body: bytes) -> Response:
        self._authorize(client_id, headers)
        if self._failures:
            return _transient_error(self._failures.popleft())
        if not headers.get("content-type", "").startswith("application/json"):
            raise _Refusal(400, ILLEGAL_MESSAGE, "Illegal payload, content-type is not json")
        request = _parse_request(body)
        tokens: list[str] = request["message"]["token"]
        illegal = [token for token in tokens if token in self.invalid]
        if len(illegal) == len(tokens):
            raise _Refusal(400, ALL_TOKENS_INVALID, "All the tokens are invalid")
        if request.get("validate_only"):
            self.validated.append(request)
        else:
            self.requests.append(request)
        if not illegal:
            return push_answer(200, SUCCESS, "Success")
        counts = {"success": len(tokens) - len(illegal), "failure": len(illegal)}
        return push_answer(200, PARTIAL, json.dumps({**counts, "illegal_tokens": illegal}))

    def _authorize(self, client_id: str, headers: Mapping[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        grant = self._grants.get(token) if scheme == "Bearer" else None
        if grant is None or grant.client_id != client_id:
            raise _Refusal(401, AUTH_ERROR, "Oauth authentication error")
        if grant.expires_at <= self.clock.now():
            raise _Refusal(401, TOKEN_EXPIRED, "Oauth Token expired.")


# ----------------------------------------------------------------- request checks


def _parse_request(body: bytes) -> dict[str, Any]:
    try:
        request = json.loads(body)
    except ValueError:
        raise _Refusal(400, ILLEGAL_MESSAGE, "Illegal payload, request is not json") from None
    if not isinstance(request, dict) or not isinstance(request.get("message"), dict):
        raise _Refusal(400, ILLEGAL_MESSAGE, "Illegal payload, message is required")
    _illegal_if(sorted(request.keys() - _REQUEST_FIELDS), "unknown field")
    _illegal_if(not isinstance(request.get("validate_only", False), bool), "validate_only")
    _check_message(request["message"])
    return request


def _check_message(message: dict[str, Any]) -> None:
    _illegal_if(sorted(message.keys() - _MESSAGE_FIELDS), "unknown message field")
    targets = [name for name in ("token", "topic", "condition") if name in message]
    _illegal_if(targets != ["token"], "token, topic or condition must be choice one")
    tokens = message["token"]
    _illegal_if(
        not isinstance(tokens, list)
        or not tokens
        or not all(isinstance(t, str) and t for t in tokens),
        "token must be a list of strings",
    )
    if len(tokens) > MAX_TOKENS:
        raise _Refusal(400, TOO_MANY_TOKENS, "Too many tokens")
    without_tokens = {key: value for key, value in message.items() if key != "token"}
    if len(json.dumps(without_tokens, separators=(",", ":")).encode()) > MESSAGE_LIMIT:
        raise _Refusal(400, MESSAGE_TOO_BIG, "Message body size exceeds the default value")
    _illegal_if("data" in message and not isinstance(message["data"], str), "data must be string")
    _check_android(message.get("android"), message.get("notification"))


def _check_android(android: Any, notification: Any) -> None:
    if android is None:
        return
    _illegal_if(not isinstance(android, dict), "android must be an object")
    _illegal_if(sorted(android.keys() - _ANDROID_FIELDS), "unknown android field")
    collapse_key = android.get("collapse_key", -1)
    if isinstance(collapse_key, bool) or not isinstance(collapse_key, int):
        raise _Refusal(400, BAD_COLLAPSE_KEY, "Illegal collapse_key")
    if not -1 <= collapse_key <= 100:
        raise _Refusal(400, BAD_COLLAPSE_KEY, "collapse_key must be in interval [-1 - 100]")
    _illegal_if(android.get("urgency", "NORMAL") not in ("HIGH", "NORMAL"), "urgency")
    ttl = android.get("ttl", "86400s")
    _illegal_if(not isinstance(ttl, str) or not _DURATION.fullmatch(ttl), "malformed ttl")
    _illegal_if(float(ttl.rstrip("sS")) > MAX_TTL_SECONDS, "ttl is over 15 days")
    _illegal_if("data" in android and not isinstance(android["data"], str), "android.data")
    if "notification" in android:
        _check_notification(android["notification"], notification)


def _check_notification(android: Any, common: Any) -> None:
    _illegal_if(not isinstance(android, dict), "android.notification must be an object")
    _illegal_if(sorted(android.keys() - _NOTIFICATION_FIELDS), "unknown notification field")
    for name in _NOTIFICATION_STRINGS & android.keys():
        _illegal_if(not isinstance(android[name], str), f"notification.{name} must be string")
    texts = {**(common if isinstance(common, dict) else {}), **android}
    _illegal_if(not (texts.get("title") or texts.get("body")), "notification title is empty")
    _illegal_if(
        android.get("default_sound") is False and not android.get("sound"),
        "sound must not be empty when default_sound is false",
    )
    click = android.get("click_action")
    _illegal_if(not isinstance(click, dict), "click_action object must not be null")
    kind = click.get("type")
    _illegal_if(kind not in (1, 2, 3, 4), "click_action.type must be in [1 - 4]")
    _illegal_if(kind == 1 and not (click.get("intent") or click.get("action")), "intent or action")
    _illegal_if(kind == 2 and not click.get("url"), "url must not be empty when type is 2")


def _illegal_if(problem: object, what: str) -> None:
    if problem:
        raise _Refusal(400, ILLEGAL_MESSAGE, f"Illegal payload, {what}")


# ----------------------------------------------------------------- answers


def push_answer(status: int, code: str, msg: str, **headers: str) -> Response:
    """Push Kit's answer body: ``{"code", "msg", "requestId"}``."""
    request_id = f"{secrets.randbelow(10**18):018d}"
    return json_response(status, {"code": code, "msg": msg, "requestId": request_id}, **headers)


def oauth_error(sub_error: int | None, description: str) -> Response:
    answer: dict[str, Any] = {"error": 1101, "error_description": description}
    if sub_error is not None:
        answer["sub_error"] = sub_error
    return json_response(400, answer)


def _transient_error(failure: _Failure) -> Response:
    extra = {"retry-after": failure.retry_after} if failure.retry_after is not None else {}
    if failure.status == 500:
        return push_answer(500, INTERNAL_ERROR, "System internal error", **extra)
    content_type, body = _TRANSIENT[failure.status]
    return Response(failure.status, body, {"content-type": content_type, **extra})
