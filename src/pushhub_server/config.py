"""Server configuration: environment variables, each with a CLI flag."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from .core.limits import Limits

DEFAULT_DATABASE_URL = f"sqlite+aiosqlite:///{Path.cwd() / 'pushhub.db'}"
DEFAULT_LISTEN = "127.0.0.1:50051"
# Recipients per partition of a run on PostgreSQL: a 1,000,000-recipient
# broadcast is twenty partitions, enough for a few processes to share; one is
# half a second to two seconds of one process's work, so the last one to finish
# is not long alone, and the switch from one partition to the next (a claim, a
# new pipeline) stays a small part of it (docs/fleet.md).
PARTITION_SIZE = 50_000


class Role(StrEnum):
    """What one process does (docs/processes.md); processes share only the database."""

    # Answers RPCs; runs no scheduler, dispatcher or sweeper.
    API = "api"
    # Runs the scheduler, dispatcher and sweeper; serves gRPC health only.
    DELIVERY = "delivery"
    ALL = "all"

    @property
    def serves_api(self) -> bool:
        return self is not Role.DELIVERY

    @property
    def delivers(self) -> bool:
        return self is not Role.API


@dataclass(frozen=True)
class Config:
    database_url: str = DEFAULT_DATABASE_URL
    listen: str = DEFAULT_LISTEN
    admin_token: str | None = None
    secret_key: str | None = None
    # Seconds between sweeps of expired and long-invalidated registrations.
    sweep_interval: float = 60.0
    # Seconds in-flight RPCs get to finish on SIGTERM/SIGINT.
    grace_period: float = 10.0
    # Seconds an authenticated API key stays cached in process.
    key_cache_seconds: float = 5.0
    webhook_timeout: float = 5.0
    webhook_attempts: int = 4
    # Comma-separated host or host:port that callback URLs may reach although
    # private, loopback or plain http (core.outbound); empty: none.
    webhook_allowed_hosts: str = ""
    # Recipients per dispatcher chunk: one checkpoint transaction each.
    chunk_size: int = 1000
    # Seconds a claimed run stays its dispatcher's without a renewal; after a crash
    # another process (or the restarted one) resumes the run once it runs out.
    lease_seconds: float = 60.0
    # Longest the scheduler sleeps without a wake-up (another process may publish,
    # or start a run whose partitions this one can share).
    scheduler_poll_interval: float = 5.0
    # Seconds between a WatchMessageStatus stream's reads when nothing wakes it
    # (the change feed wakes it on every change, docs/fleet.md).
    watch_poll_interval: float = 2.0
    # Recipients per partition of a run (docs/fleet.md); 0: one partition per run.
    # None: PARTITION_SIZE on PostgreSQL, 0 on SQLite (one process, one writer).
    partition_size: int | None = None
    # False discards simulated deliveries instead of recording them (benchmarks).
    simulator_records: bool = True
    # Overrides of Apple's and Google's hosts, for a staging relay or a test sink.
    apns_endpoint: str | None = None
    apns_ca_file: str | None = None
    apns_connections: int = 1
    fcm_endpoint: str | None = None
    fcm_ca_file: str | None = None
    # Huawei Push Kit and its OAuth token endpoint, and the CA for both (a relay, a fake).
    hms_endpoint: str | None = None
    hms_token_endpoint: str | None = None
    hms_ca_file: str | None = None
    # Trust store for Web Push services (tests, relays with their own CA).
    web_push_ca_file: str | None = None
    # Comma-separated host or host:port added to the Web Push services' allow-list,
    # which may be private, loopback or plain http (core.web_push_endpoints).
    web_push_allowed_hosts: str = ""
    # Threads encrypting Web Push payloads; 0 encrypts on the event loop in slices.
    web_push_encryption_threads: int = 2
    # Python logging level name; INFO writes one JSON line per RPC, WARNING drops them.
    log_level: str = "INFO"
    # TLS on the listener (PEM files); with a client CA, clients must present a
    # certificate it signed. Without TLS, only a loopback address is served,
    # unless allow_plaintext says a TLS-terminating proxy is in front (listener.py).
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    allow_plaintext: bool = False
    # Seconds between the health service's probes of the database.
    health_interval: float = 2.0
    # A WatchMessageStatus re-checks its key at least this often, changes or not.
    watch_key_check_seconds: float = 5.0
    # Admission control (docs/admission.md): calls over a limit are refused with
    # RESOURCE_EXHAUSTED and a RetryInfo, before their request is read.
    max_concurrent_rpcs: int = 64
    max_import_streams: int = 8
    max_import_items_in_flight: int = 10_000
    max_watches: int = 1_000
    max_device_rpcs: int = 64
    # Per client address, for device keys and calls without a key; 0: no rate limit.
    device_rate: float = 100.0
    device_burst: int = 200
    device_concurrency: int = 16
    # HOST:PORT serving /metrics (docs/observability.md); None: no metrics at all.
    metrics_listen: str | None = None
    role: Role = Role.ALL
    # Server processes sharing `listen` (supervisor.py); more than one needs PostgreSQL.
    workers: int = 1
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("PUSHHUB_DATABASE_URL", DEFAULT_DATABASE_URL),
            listen=env.get("PUSHHUB_LISTEN", DEFAULT_LISTEN),
            admin_token=env.get("PUSHHUB_ADMIN_TOKEN") or None,
            secret_key=env.get("PUSHHUB_SECRET_KEY") or None,
            sweep_interval=float(env.get("PUSHHUB_SWEEP_INTERVAL", "60")),
            grace_period=float(env.get("PUSHHUB_GRACE_PERIOD", "10")),
            chunk_size=int(env.get("PUSHHUB_CHUNK_SIZE", "1000")),
            lease_seconds=float(env.get("PUSHHUB_LEASE_SECONDS", "60")),
            scheduler_poll_interval=float(env.get("PUSHHUB_SCHEDULER_POLL_INTERVAL", "5")),
            watch_poll_interval=float(env.get("PUSHHUB_WATCH_POLL_INTERVAL", "2")),
            key_cache_seconds=float(env.get("PUSHHUB_KEY_CACHE_SECONDS", "5")),
            partition_size=_int_or_none(env.get("PUSHHUB_PARTITION_SIZE")),
            simulator_records=env.get("PUSHHUB_SIMULATOR_RECORDS", "1") != "0",
            apns_endpoint=env.get("PUSHHUB_APNS_ENDPOINT") or None,
            apns_ca_file=env.get("PUSHHUB_APNS_CA_FILE") or None,
            apns_connections=int(env.get("PUSHHUB_APNS_CONNECTIONS", "1")),
            fcm_endpoint=env.get("PUSHHUB_FCM_ENDPOINT") or None,
            fcm_ca_file=env.get("PUSHHUB_FCM_CA_FILE") or None,
            hms_endpoint=env.get("PUSHHUB_HMS_ENDPOINT") or None,
            hms_token_endpoint=env.get("PUSHHUB_HMS_TOKEN_ENDPOINT") or None,
            hms_ca_file=env.get("PUSHHUB_HMS_CA_FILE") or None,
            web_push_ca_file=env.get("PUSHHUB_WEB_PUSH_CA_FILE") or None,
            web_push_allowed_hosts=env.get("PUSHHUB_WEB_PUSH_ALLOWED_HOSTS", ""),
            web_push_encryption_threads=int(env.get("PUSHHUB_WEB_PUSH_ENCRYPTION_THREADS", "2")),
            log_level=env.get("PUSHHUB_LOG_LEVEL", "INFO"),
            tls_cert=env.get("PUSHHUB_TLS_CERT") or None,
            tls_key=env.get("PUSHHUB_TLS_KEY") or None,
            tls_client_ca=env.get("PUSHHUB_TLS_CLIENT_CA") or None,
            allow_plaintext=env.get("PUSHHUB_ALLOW_PLAINTEXT", "").lower() in ("1", "true", "yes"),
            webhook_allowed_hosts=env.get("PUSHHUB_WEBHOOK_ALLOWED_HOSTS", ""),
            max_concurrent_rpcs=int(env.get("PUSHHUB_MAX_CONCURRENT_RPCS", "64")),
            max_import_streams=int(env.get("PUSHHUB_MAX_IMPORT_STREAMS", "8")),
            max_import_items_in_flight=int(env.get("PUSHHUB_MAX_IMPORT_ITEMS_IN_FLIGHT", "10000")),
            max_watches=int(env.get("PUSHHUB_MAX_WATCHES", "1000")),
            max_device_rpcs=int(env.get("PUSHHUB_MAX_DEVICE_RPCS", "64")),
            device_rate=float(env.get("PUSHHUB_DEVICE_RATE", "100")),
            device_burst=int(env.get("PUSHHUB_DEVICE_BURST", "200")),
            device_concurrency=int(env.get("PUSHHUB_DEVICE_CONCURRENCY", "16")),
            metrics_listen=env.get("PUSHHUB_METRICS_LISTEN") or None,
            role=role(env.get("PUSHHUB_ROLE", Role.ALL)),
            workers=int(env.get("PUSHHUB_WORKERS", "1")),
        )


def role(name: str) -> Role:
    """The Role named name; ValueError naming the choices otherwise."""
    try:
        return Role(name.lower())
    except ValueError:
        choices = ", ".join(member.value for member in Role)
        message = f"unknown role {name!r} (PUSHHUB_ROLE, --role): one of {choices}"
        raise ValueError(message) from None


def _int_or_none(text: str | None) -> int | None:
    return None if text is None or text == "" else int(text)
