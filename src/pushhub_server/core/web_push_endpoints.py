"""Which Web Push endpoints PushHub will POST to: the static half of the rules.

A Web Push ``device_token`` is the subscription's endpoint, a URL that a device
key chooses. PushHub POSTs to it from the operator's network, so it must not be a
way in there. This module holds the rules that need no DNS; they apply at
registration (INVALID_ARGUMENT) and again at send time (rules or the allow-list may
have changed since the row was written). The address a name resolves to is
checked at send time, on the address actually connected to
(delivery.address_guard). What is not specific to Web Push (host names, the
allow-list, addresses) is core.outbound's, shared with callback URLs.

- ``https`` only, on the default port; no user info, no fragment, visible ASCII,
  at most 4,096 characters.
- The host is a DNS name, never an IP literal (nor the numeric forms URL parsers
  read as one, such as ``2130706433``), and matches a push service:
  ``fcm.googleapis.com`` (Chrome, Edge on Android), ``*.push.services.mozilla.com``
  (Firefox: ``updates.push.services.mozilla.com``), ``*.push.apple.com`` (Safari:
  ``web.push.apple.com``) or ``*.notify.windows.com`` (Edge on Windows, WNS hosts
  such as ``wns2-par02p.notify.windows.com``).
- ``PUSHHUB_WEB_PUSH_ALLOWED_HOSTS``, comma-separated ``host[:port]``
  (core.outbound.AllowedHosts), adds hosts (a port-less entry means the
  scheme's default port). For a listed host and
  port every rule above but the syntax ones is lifted: plain ``http``, an IP
  literal, and (at send time) a loopback or private address are allowed. That is
  how tests and relays reach a push service, and it applies to that host only.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from .errors import PushHubError, invalid_field, value_too_long
from .outbound import DEFAULT_PORTS, AllowedHosts, is_dns_name, is_ip_literal

ENDPOINT_LENGTH = 4096
INVALID_ENDPOINT = "INVALID_WEB_PUSH_ENDPOINT"
# The push services' hosts; "*." matches one or more labels before the rest.
PUSH_SERVICE_HOSTS = (
    "fcm.googleapis.com",
    "*.push.services.mozilla.com",
    "*.push.apple.com",
    "*.notify.windows.com",
)
ALLOWED_HOSTS_VARIABLE = "PUSHHUB_WEB_PUSH_ALLOWED_HOSTS"
_NOBODY = AllowedHosts()
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_FIELD = "device_token"
# Hosts whose verdict an EndpointPolicy keeps; past this it starts over.
_VERDICTS = 4096


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A checked endpoint, with what sending to it needs."""

    scheme: str
    # Lower case; an IPv6 literal (listed hosts only) without brackets.
    host: str
    port: int
    # The path and query, "/" at least.
    target: str
    # Named in PUSHHUB_WEB_PUSH_ALLOWED_HOSTS: any address is allowed at send time.
    listed: bool

    @property
    def host_port(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        """The URL to POST to, rebuilt from the checked parts: the HTTP client then
        sees exactly the host that was checked (and pinned), whatever its own URL
        parser would have made of the text the device sent."""
        return self.origin + self.target

    @property
    def origin(self) -> str:
        """RFC 6454's serialization, the VAPID ``aud``: no default port, brackets for IPv6."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return f"{self.scheme}://{host}"
        return f"{self.scheme}://{host}:{self.port}"


class EndpointPolicy:
    """The push-service allow-list, plus the operator's listed hosts."""

    def __init__(self, listed: AllowedHosts = _NOBODY) -> None:
        self._listed = listed
        # (scheme, netloc) -> (host, port, listed), or why it is refused. The provider
        # checks every recipient's endpoint at send time; a broadcast has few hosts.
        self._verdicts: dict[tuple[str, str], tuple[str, int, bool] | str] = {}

    @classmethod
    def from_env(cls, text: str | None) -> EndpointPolicy:
        """From PUSHHUB_WEB_PUSH_ALLOWED_HOSTS; ValueError names a malformed entry."""
        return cls(parse_allowed_hosts(text or ""))

    def check(self, endpoint: str) -> Endpoint:
        """The endpoint, once it may be sent to; PushHubError INVALID_ARGUMENT otherwise."""
        if len(endpoint) > ENDPOINT_LENGTH:
            raise value_too_long(_FIELD, ENDPOINT_LENGTH)
        if not _VISIBLE_ASCII.fullmatch(endpoint):
            raise _refused("must be a URL in visible ASCII")
        url = urllib.parse.urlsplit(endpoint)
        # User info would make the host ambiguous to a reader; a fragment is never sent.
        if "@" in url.netloc or "#" in endpoint:
            raise _refused("may not carry user info or a fragment")
        scheme = url.scheme.lower()
        key = (scheme, url.netloc)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._judge(scheme, url)
            if len(self._verdicts) >= _VERDICTS:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        if isinstance(verdict, str):
            raise _refused(verdict)
        host, port, listed = verdict
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        return Endpoint(scheme, host, port, target, listed)

    def _judge(self, scheme: str, url: urllib.parse.SplitResult) -> tuple[str, int, bool] | str:
        """(host, port, listed) for an allowed scheme and authority, else the problem."""
        if scheme not in DEFAULT_PORTS:
            return "must be an https URL"
        try:
            host, port = url.hostname, url.port
        except ValueError:  # an unparsable host, or a port out of range
            return "is not a URL"
        if not host or port == 0:
            return "has no host"
        literal = is_ip_literal(host)
        if not (literal or is_dns_name(host)):
            return "has a malformed host"
        port = port if port is not None else DEFAULT_PORTS[scheme]
        if self._listed.lists(scheme, host, port):
            return host, port, True
        if scheme != "https":
            return "must be an https URL"
        if literal:
            return "must name a push service's host, not an IP address"
        if port != 443 or not _is_push_service(host):
            return "is not a known push service (see PUSHHUB_WEB_PUSH_ALLOWED_HOSTS)"
        return host, port, False


def parse_allowed_hosts(text: str) -> AllowedHosts:
    """PUSHHUB_WEB_PUSH_ALLOWED_HOSTS: ``host[:port]`` entries, comma-separated."""
    return AllowedHosts.parse(text, ALLOWED_HOSTS_VARIABLE)


def _is_push_service(host: str) -> bool:
    for pattern in PUSH_SERVICE_HOSTS:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def _refused(problem: str) -> PushHubError:
    return invalid_field(_FIELD, INVALID_ENDPOINT, f"a Web Push device_token {problem}")
