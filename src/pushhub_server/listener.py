"""Where the server listens, and how: the address, TLS, and what is refused at start.

Device keys ship in apps and travel with every call, so a listener other than
loopback speaks TLS unless the operator says a proxy in front does
(PUSHHUB_ALLOW_PLAINTEXT): refusing to start is cheaper than a key in clear
text on a network. Loopback stays plaintext by default for `make serve`.

Every problem found here is one line for the operator (StartupError), found
before the database is touched: an unreadable or mismatched PEM file (gRPC
would only fail each handshake later), or an address already taken.
SO_REUSEPORT is off: with it, a second server on the same port starts, and the
kernel splits connections between two servers with different databases.

The one exception is `pushhub serve --workers N` (supervisor.py): its workers
share the port on purpose, with SO_REUSEPORT. Its supervisor first claims the
port with a plain bind, which fails if anything holds it, and keeps that socket,
turned reuseport but never listening, while it runs: the workers can join it,
and any other bind without SO_REUSEPORT (another `pushhub serve`, with workers
or not, or most servers) still fails. Linux lets a process of the same user
that sets SO_REUSEPORT itself join any group; PushHub never does without a claim.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .config import Config

_log = logging.getLogger(__name__)


class StartupError(Exception):
    """The server cannot start as configured; the message is the whole story."""


@dataclass(frozen=True)
class Listener:
    address: str
    # None: plaintext.
    credentials: grpc.ServerCredentials | None
    # One of --workers N processes: the supervisor claimed the port for them all.
    shared: bool = False

    @property
    def tls(self) -> bool:
        return self.credentials is not None

    @property
    def server_options(self) -> list[tuple[str, Any]]:
        """Channel options of the server that concern its listening socket."""
        return [("grpc.so_reuseport", 1 if self.shared else 0)]

    @classmethod
    def from_config(cls, config: Config) -> Listener:
        """The checked listener of config; StartupError for anything that cannot work."""
        credentials = _credentials(config)
        if credentials is None and not (config.allow_plaintext or is_loopback(config.listen)):
            raise StartupError(
                f"refusing plaintext on {config.listen}, which is not a loopback address: "
                "API keys would cross the network in clear text. Set PUSHHUB_TLS_CERT and "
                "PUSHHUB_TLS_KEY (--tls-cert, --tls-key), or PUSHHUB_ALLOW_PLAINTEXT=1 "
                "(--allow-plaintext) when a TLS-terminating proxy is in front"
            )
        if config.workers > 1:
            return cls(config.listen, credentials, shared=True)  # claim_port checked it
        _check_free(config.listen)
        return cls(config.listen, credentials)

    def bind(self, server: grpc.aio.Server) -> int:
        """Adds the port to server; its number (the one chosen, for port 0)."""
        try:
            if self.credentials is None:
                port = server.add_insecure_port(self.address)
            else:
                port = server.add_secure_port(self.address, self.credentials)
        except RuntimeError:
            port = 0  # grpcio raises where older versions returned 0
        if port == 0:
            raise StartupError(f"cannot listen on {self.address}: gRPC could not bind it")
        return port


def is_loopback(address: str) -> bool:
    if address.startswith("unix:"):
        return True
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "" (every interface) or a host name: assume reachable from outside


def _check_free(address: str) -> None:
    """StartupError when another process listens there, or no address of this machine is
    meant: a plain bind tells at once, where gRPC would log its own lines first."""
    if address.startswith("unix:") or _port(address) == 0:
        return
    for probe in _bind_all(address):
        probe.close()


@dataclass
class PortClaim:
    """The port of --workers N, held by their supervisor for as long as it runs."""

    # The claimed address, with the port the kernel chose for port 0.
    address: str
    _sockets: list[socket.socket]

    def close(self) -> None:
        for held in self._sockets:
            held.close()


def claim_port(address: str) -> PortClaim:
    """Binds address exclusively (StartupError when taken), then lets only sockets that
    ask for SO_REUSEPORT join: the workers' gRPC servers (grpc.so_reuseport=1)."""
    if address.startswith("unix:") or _port(address) is None:
        raise StartupError(f"--workers needs a host:port address to share, not {address}")
    held = _bind_all(address)
    for sock in held:
        # Off once bound: a later SO_REUSEADDR bind must not slip in beside it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    port = held[0].getsockname()[1]
    return PortClaim(f"{address.rpartition(':')[0]}:{port}", held)


def _port(address: str) -> int | None:
    port = address.rpartition(":")[2]
    return int(port) if port.isdigit() else None


def _bind_all(address: str) -> list[socket.socket]:
    """Sockets bound to every address `address` names, without SO_REUSEPORT; the
    StartupError of the first failure that matters."""
    host, _, port = address.rpartition(":")
    try:
        candidates = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise StartupError(f"cannot listen on {address}: {error.strerror}") from None
    # "" names 0.0.0.0 and ::, each bound on its own: :: must not cover IPv4 too. A
    # lone "::" covers both, as gRPC's socket will.
    v6only = {socket.AF_INET, socket.AF_INET6} <= {candidate[0] for candidate in candidates}
    bound: list[socket.socket] = []
    errors: list[OSError] = []
    for family, kind, proto, _, sockaddr in candidates:
        if bound:  # port 0: the others take the port the first one got
            sockaddr = (sockaddr[0], bound[0].getsockname()[1], *sockaddr[2:])
        try:
            bound.append(_bound(family, kind, proto, sockaddr, v6only))
        except OSError as error:
            errors.append(error)
    if any(error.errno == errno.EADDRINUSE for error in errors) or not bound:
        for sock in bound:
            sock.close()
        _refuse(address, errors)
    return bound  # one may fail: "localhost" without IPv6


def _bound(
    family: int, kind: int, proto: int, sockaddr: tuple[Any, ...], v6only: bool
) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        # Like gRPC's own socket: connections in TIME_WAIT do not block a restart.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


def _refuse(address: str, errors: list[OSError]) -> None:
    if any(error.errno == errno.EADDRINUSE for error in errors):
        raise StartupError(
            f"cannot listen on {address}: the address is already in use (another pushhub serve?)"
        )
    reason = str(errors[0].strerror)
    if errors[0].errno == errno.EACCES:
        reason += " (ports below 1024 need privileges)"
    raise StartupError(f"cannot listen on {address}: {reason}")


def _credentials(config: Config) -> grpc.ServerCredentials | None:
    if config.tls_cert is None and config.tls_key is None:
        if config.tls_client_ca is not None:
            raise StartupError(
                "PUSHHUB_TLS_CLIENT_CA (--tls-client-ca) needs PUSHHUB_TLS_CERT and "
                "PUSHHUB_TLS_KEY (--tls-cert, --tls-key): mutual TLS is TLS first"
            )
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise StartupError(
            "PUSHHUB_TLS_CERT and PUSHHUB_TLS_KEY (--tls-cert, --tls-key) go together: "
            "set both, or neither"
        )
    chain = _read("PUSHHUB_TLS_CERT (--tls-cert)", config.tls_cert, _certificates)
    key = _read("PUSHHUB_TLS_KEY (--tls-key)", config.tls_key, _private_key)
    if _public_der(chain.parsed[0].public_key()) != _public_der(key.parsed.public_key()):
        raise StartupError(
            f"the key in {config.tls_key} does not belong to the certificate in {config.tls_cert}"
        )
    if chain.parsed[0].not_valid_after_utc < datetime.now(UTC):
        _log.warning("the certificate in %s has expired: clients will refuse it", config.tls_cert)
    client_ca = None
    if config.tls_client_ca is not None:
        client_ca = _read(
            "PUSHHUB_TLS_CLIENT_CA (--tls-client-ca)", config.tls_client_ca, _certificates
        ).pem
    return grpc.ssl_server_credentials(
        [(key.pem, chain.pem)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


@dataclass(frozen=True)
class _Pem:
    pem: bytes
    parsed: Any


def _read(setting: str, path: str, parse: Callable[[bytes], Any]) -> _Pem:
    try:
        pem = Path(path).read_bytes()
    except OSError as error:
        raise StartupError(f"{setting}: cannot read {path}: {error.strerror}") from None
    try:
        return _Pem(pem, parse(pem))
    except (ValueError, TypeError) as error:
        raise StartupError(f"{setting}: {path} is not usable: {error}") from None


def _certificates(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ValueError("it holds no PEM certificate") from None


def _private_key(pem: bytes) -> Any:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise ValueError("the key is encrypted; give it without a passphrase") from None
    except ValueError:
        raise ValueError("it holds no PEM private key") from None


def _public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
