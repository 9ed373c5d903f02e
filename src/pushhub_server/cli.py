"""The `pushhub` command: run the server, migrate, and administer apps and keys.

Administration works directly on the database (migrated first), through the
same core use cases the AdminService uses.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import importlib.metadata
import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from .config import Config, Role, role
from .core.apps import AppService
from .core.clock import SystemClock
from .core.credentials import (
    ApnsEnvironment,
    SecretBox,
    apns_credentials,
    fcm_credentials,
    hms_credentials,
)
from .core.errors import PushHubError
from .core.messages import InboxEntry
from .core.models import KeyKind
from .core.outbound import OutboundPolicy
from .core.web_push import web_push_credentials
from .core.web_push_endpoints import EndpointPolicy
from .listener import StartupError
from .server import RunningServer, serve
from .store import Database, SqlAppRepository, SqlInbox, migrate
from .store.database_url import masked
from .supervisor import supervise

DEFAULT_APP = "default"


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    config = _config(args)
    # A bad URL, an unreachable database, a taken port, an unreadable PEM file:
    # one line saying what to fix, not a traceback.
    try:
        if args.command == "serve":
            logging.basicConfig(level=_log_level(config.log_level), format="%(message)s")
            _check_allowed_hosts(config.webhook_allowed_hosts)
            _check_web_push_hosts(config.web_push_allowed_hosts)
            if config.web_push_encryption_threads < 0:
                raise SystemExit("error: PUSHHUB_WEB_PUSH_ENCRYPTION_THREADS must be 0 or more")
            _check_intervals(config)
            _serve(config)
            return
        asyncio.run(args.run(args, config))
    except PushHubError as error:
        raise SystemExit(f"error: {error.message}") from None
    except StartupError as error:
        raise SystemExit(f"error: {error}") from None


def _check_intervals(config: Config) -> None:
    """A poll of 0 s would spin its loop; a negative cache time means nothing."""
    polls = (
        ("PUSHHUB_SCHEDULER_POLL_INTERVAL", config.scheduler_poll_interval),
        ("PUSHHUB_WATCH_POLL_INTERVAL", config.watch_poll_interval),
        ("PUSHHUB_SWEEP_INTERVAL", config.sweep_interval),
    )
    for variable, seconds in polls:
        if not seconds > 0:
            raise SystemExit(f"error: {variable} must be more than 0 seconds")
    if not config.key_cache_seconds >= 0:
        raise SystemExit("error: PUSHHUB_KEY_CACHE_SECONDS must be 0 or more")


def _serve(config: Config) -> None:
    # A delivery process serves no RPCs: no keys to show, no grpcurl to try.
    shows_keys = config.role is not Role.DELIVERY
    if config.workers > 1:
        prepare = functools.partial(_show_default_app, config=config) if shows_keys else None
        raise SystemExit(supervise(config, prepare))
    bootstrap = functools.partial(_bootstrap, config=config)
    serve(config, on_start=bootstrap if shows_keys else None)


def _log_level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    if not isinstance(level, int):
        raise SystemExit(f"error: unknown log level {name!r} (DEBUG, INFO, WARNING, ERROR)")
    return level


def _check_allowed_hosts(text: str) -> None:
    try:
        OutboundPolicy.from_list(text)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def _check_web_push_hosts(text: str) -> None:
    try:
        EndpointPolicy.from_env(text)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def _config(args: argparse.Namespace) -> Config:
    """Environment first; each flag given on the command line overrides its variable.

    A flag's destination is its Config field's name (--chunk-size: chunk_size)."""
    overrides = {
        setting.name: getattr(args, setting.name)
        for setting in dataclasses.fields(Config)
        if getattr(args, setting.name, None) is not None
    }
    try:
        return dataclasses.replace(Config.from_env(), **overrides)
    except ValueError as error:  # a PUSHHUB_* variable's value
        raise SystemExit(f"error: {error}") from None


def _parser() -> argparse.ArgumentParser:
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--database-url", help="overrides PUSHHUB_DATABASE_URL")
    database.add_argument("--secret-key", help="overrides PUSHHUB_SECRET_KEY")

    parser = argparse.ArgumentParser(prog="pushhub", description="PushHub push notifications")
    parser.add_argument(
        "--version", action="version", version=f"pushhub {importlib.metadata.version('pushhub')}"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", parents=[database], help="run the gRPC server")
    _add_serve_flags(serve_cmd)

    migrate_cmd = commands.add_parser("migrate", parents=[database], help="migrate the database")
    migrate_cmd.set_defaults(run=_migrate)

    _add_app_commands(commands, database)
    _add_key_commands(commands, database)
    inbox = commands.add_parser(
        "inbox", parents=[database], help="what the simulator delivered, newest first"
    )
    inbox.add_argument("--app", help="app id or name")
    inbox.add_argument("--registration", help="registration id")
    inbox.add_argument("--message", help="message id")
    inbox.add_argument("--limit", type=int, default=50)
    inbox.add_argument("--json", action="store_true", help="one JSON object per line")
    inbox.set_defaults(run=_inbox)
    return parser


def _add_serve_flags(serve_cmd: argparse.ArgumentParser) -> None:
    """One flag per PUSHHUB_* setting of the server (README: Command line)."""
    flag = serve_cmd.add_argument
    flag("--listen", help="host:port; overrides PUSHHUB_LISTEN")
    flag(
        "--workers",
        type=int,
        help="server processes sharing --listen (PostgreSQL only); overrides PUSHHUB_WORKERS",
    )
    flag(
        "--role",
        type=_role,
        help="api (RPCs only), delivery (scheduler, dispatcher, sweeper; gRPC health only) or"
        " all (default); overrides PUSHHUB_ROLE (docs/processes.md)",
    )
    flag("--admin-token", help="overrides PUSHHUB_ADMIN_TOKEN")
    flag("--grace-period", type=float, help="seconds; overrides PUSHHUB_GRACE_PERIOD")
    flag("--log-level", help="DEBUG, INFO, WARNING...; overrides PUSHHUB_LOG_LEVEL")
    flag("--sweep-interval", type=float, help="seconds; overrides PUSHHUB_SWEEP_INTERVAL")
    flag("--chunk-size", type=int, help="recipients per chunk; overrides PUSHHUB_CHUNK_SIZE")
    flag("--lease-seconds", type=float, help="overrides PUSHHUB_LEASE_SECONDS")
    flag(
        "--scheduler-poll-interval",
        type=float,
        help="seconds; overrides PUSHHUB_SCHEDULER_POLL_INTERVAL",
    )
    flag(
        "--watch-poll-interval",
        type=float,
        help="seconds; overrides PUSHHUB_WATCH_POLL_INTERVAL",
    )
    flag(
        "--key-cache-seconds",
        type=float,
        help="seconds an API key stays cached; overrides PUSHHUB_KEY_CACHE_SECONDS",
    )
    flag(
        "--partition-size",
        type=int,
        help="recipients per partition of a run, 0: one; overrides PUSHHUB_PARTITION_SIZE",
    )
    flag(
        "--simulator-records",
        action=argparse.BooleanOptionalAction,
        help="record simulated deliveries; overrides PUSHHUB_SIMULATOR_RECORDS",
    )
    flag("--apns-endpoint", help="overrides PUSHHUB_APNS_ENDPOINT")
    flag("--apns-ca-file", help="overrides PUSHHUB_APNS_CA_FILE")
    flag("--apns-connections", type=int, help="overrides PUSHHUB_APNS_CONNECTIONS")
    flag("--fcm-endpoint", help="overrides PUSHHUB_FCM_ENDPOINT")
    flag("--fcm-ca-file", help="overrides PUSHHUB_FCM_CA_FILE")
    flag("--hms-endpoint", help="overrides PUSHHUB_HMS_ENDPOINT")
    flag("--hms-token-endpoint", help="overrides PUSHHUB_HMS_TOKEN_ENDPOINT")
    flag("--hms-ca-file", help="overrides PUSHHUB_HMS_CA_FILE")
    flag("--web-push-ca-file", help="overrides PUSHHUB_WEB_PUSH_CA_FILE")
    flag(
        "--web-push-encryption-threads",
        type=int,
        help="threads encrypting Web Push payloads, 0: on the event loop;"
        " overrides PUSHHUB_WEB_PUSH_ENCRYPTION_THREADS",
    )
    flag(
        "--web-push-allowed-hosts",
        help="comma-separated host[:port] added to the Web Push services' allow-list, which"
        " may be private or plain http; overrides PUSHHUB_WEB_PUSH_ALLOWED_HOSTS",
    )
    flag("--tls-cert", help="PEM certificate chain: TLS only; overrides PUSHHUB_TLS_CERT")
    flag("--tls-key", help="PEM private key of --tls-cert; overrides PUSHHUB_TLS_KEY")
    flag(
        "--tls-client-ca",
        help="PEM CA: clients need a certificate it signed (mutual TLS); "
        "overrides PUSHHUB_TLS_CLIENT_CA",
    )
    flag(
        "--allow-plaintext",
        action="store_true",
        default=None,
        help="serve plaintext on a non-loopback address (a TLS proxy in front); "
        "overrides PUSHHUB_ALLOW_PLAINTEXT",
    )
    flag(
        "--webhook-allowed-hosts",
        help="comma-separated host[:port] callback URLs may reach although private or"
        " plain http; overrides PUSHHUB_WEBHOOK_ALLOWED_HOSTS",
    )
    flag(
        "--metrics-listen",
        help="HOST:PORT serving Prometheus /metrics (off by default);"
        " overrides PUSHHUB_METRICS_LISTEN",
    )
    _add_admission_flags(serve_cmd)


def _role(name: str) -> Role:
    try:
        return role(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_admission_flags(serve_cmd: argparse.ArgumentParser) -> None:
    """Admission control (docs/admission.md)."""
    flag = serve_cmd.add_argument
    flag("--max-concurrent-rpcs", type=int, help="overrides PUSHHUB_MAX_CONCURRENT_RPCS")
    flag("--max-import-streams", type=int, help="overrides PUSHHUB_MAX_IMPORT_STREAMS")
    flag(
        "--max-import-items-in-flight",
        type=int,
        help="overrides PUSHHUB_MAX_IMPORT_ITEMS_IN_FLIGHT",
    )
    flag("--max-watches", type=int, help="overrides PUSHHUB_MAX_WATCHES")
    flag("--max-device-rpcs", type=int, help="overrides PUSHHUB_MAX_DEVICE_RPCS")
    flag("--device-rate", type=float, help="calls/s per address; overrides PUSHHUB_DEVICE_RATE")
    flag("--device-burst", type=int, help="overrides PUSHHUB_DEVICE_BURST")
    flag("--device-concurrency", type=int, help="overrides PUSHHUB_DEVICE_CONCURRENCY")


def _add_app_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    database: argparse.ArgumentParser,
) -> None:
    apps = commands.add_parser("apps", help="apps and user tokens").add_subparsers(
        dest="action", required=True
    )
    create = apps.add_parser("create", parents=[database], help="create an app and its keys")
    create.add_argument("name")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(run=_apps_create)
    apps.add_parser("list", parents=[database], help="list apps").set_defaults(run=_apps_list)
    delete = apps.add_parser(
        "delete", parents=[database], help="delete an app with its keys and registrations"
    )
    delete.add_argument("app", help="app id or name")
    delete.set_defaults(run=_apps_delete)
    token = apps.add_parser("token", parents=[database], help="issue a user token")
    token.add_argument("app", help="app id or name")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=float, help="lifetime in seconds (default 3600)")
    token.set_defaults(run=_apps_token)
    rotate = apps.add_parser(
        "rotate-secret",
        parents=[database],
        help="replace an app's user-token signing secret: its tokens issued so far stop working",
    )
    rotate.add_argument("app", help="app id or name")
    rotate.set_defaults(run=_apps_rotate_secret)
    apns = apps.add_parser("set-apns", parents=[database], help="set an app's APNs .p8 key")
    apns.add_argument("app", help="app id or name")
    apns.add_argument("--key-id", required=True)
    apns.add_argument("--team-id", required=True)
    apns.add_argument("--topic", required=True, help="the app's bundle id")
    apns.add_argument("--p8", required=True, type=Path, help="the .p8 private key file")
    apns.add_argument("--sandbox", action="store_true", help="deliver through APNs sandbox")
    apns.set_defaults(run=_apps_set_apns)
    fcm = apps.add_parser("set-fcm", parents=[database], help="set an app's FCM service account")
    fcm.add_argument("app", help="app id or name")
    fcm.add_argument("--service-account", required=True, type=Path, help="the JSON file")
    fcm.set_defaults(run=_apps_set_fcm)
    webpush = apps.add_parser(
        "set-webpush",
        parents=[database],
        help="set an app's Web Push (VAPID) key and subject; prints the applicationServerKey",
    )
    webpush.add_argument("app", help="app id or name")
    webpush.add_argument(
        "--private-key",
        type=Path,
        help="a P-256 private key file, PEM or raw base64url (default: generate one)",
    )
    webpush.add_argument(
        "--subject", required=True, help="mailto: or https: URL push services may contact"
    )
    webpush.set_defaults(run=_apps_set_webpush)
    hms = apps.add_parser(
        "set-hms", parents=[database], help="set an app's Huawei Push Kit OAuth client"
    )
    hms.add_argument("app", help="app id or name")
    hms.add_argument("--client-id", required=True, help="the AppGallery Connect App ID")
    hms.add_argument(
        "--client-secret-file", required=True, type=Path, help="a file holding the App Secret"
    )
    hms.set_defaults(run=_apps_set_hms)


def _add_key_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    database: argparse.ArgumentParser,
) -> None:
    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", parents=[database], help="create an API key")
    create.add_argument("app", help="app id or name")
    create.add_argument("--kind", choices=["server", "device"], required=True)
    create.set_defaults(run=_keys_create)
    listing = keys.add_parser("list", parents=[database], help="list an app's API keys")
    listing.add_argument("app", help="app id or name")
    listing.set_defaults(run=_keys_list)
    revoke = keys.add_parser("revoke", parents=[database], help="revoke an API key")
    revoke.add_argument("app", help="app id or name")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=_keys_revoke)


@asynccontextmanager
async def _database(config: Config) -> AsyncIterator[Database]:
    await migrate(config.database_url)
    db = Database.from_url(config.database_url)
    try:
        yield db
    finally:
        await db.dispose()


def _apps(db: Database, config: Config) -> AppService:
    return AppService(SqlAppRepository(db), SystemClock(), secrets_box=SecretBox(config.secret_key))


@asynccontextmanager
async def _app_service(config: Config) -> AsyncIterator[AppService]:
    async with _database(config) as db:
        yield _apps(db, config)


async def _migrate(args: argparse.Namespace, config: Config) -> None:
    await migrate(config.database_url)
    print("database migrated")


async def _apps_create(args: argparse.Namespace, config: Config) -> None:
    async with _app_service(config) as apps:
        created = await apps.create_app(args.name)
    if args.json:
        keys = {"server_key": created.server_key, "device_key": created.device_key}
        print(json.dumps({"app_id": created.app.app_id, **keys}))
        return
    print(f"app_id:     {created.app.app_id}")
    print(f"server_key: {created.server_key}")
    print(f"device_key: {created.device_key}")


async def _apps_list(args: argparse.Namespace, config: Config) -> None:
    async with _app_service(config) as apps:
        after: str | None = None
        while page := await apps.list_apps(100, after):
            for app in page:
                print(f"{app.app_id}  {app.name}  {app.created_at.isoformat()}")
            after = page[-1].app_id


async def _apps_delete(args: argparse.Namespace, config: Config) -> None:
    async with _app_service(config) as apps:
        app = await apps.find_app(args.app)
        await apps.delete_app(app.app_id)
    print(f"deleted app {app.name} ({app.app_id})")


async def _apps_token(args: argparse.Namespace, config: Config) -> None:
    ttl = timedelta(seconds=args.ttl) if args.ttl is not None else None
    async with _app_service(config) as apps:
        app = await apps.find_app(args.app)
        token, _ = await apps.issue_user_token(app.app_id, args.user_id, ttl)
    print(token)


async def _apps_rotate_secret(args: argparse.Namespace, config: Config) -> None:
    async with _app_service(config) as apps:
        app = await apps.find_app(args.app)
        await apps.rotate_signing_secret(app.app_id)
    print(
        f"rotated the user-token signing secret of {app.name} ({app.app_id}): "
        "running servers refuse user tokens issued before within 5 seconds"
    )
    _warn_if_unsealed(config, "start `pushhub serve` with it to seal the secret")


async def _apps_set_apns(args: argparse.Namespace, config: Config) -> None:
    environment = ApnsEnvironment.SANDBOX if args.sandbox else ApnsEnvironment.PRODUCTION
    credentials = apns_credentials(
        args.key_id, args.team_id, args.topic, args.p8.read_text(), environment
    )
    async with _app_service(config) as apps:
        app = await apps.find_app(args.app)
        await apps.set_apns_credentials(app.app_id, credentials)
    print(f"APNs credentials set for {app.name} ({environment.name.lower()})")
    _warn_if_unsealed(config)


async def _apps_set_fcm(args: argparse.Namespace, config: Config) -> None:
    credentials = fcm_credentials(args.service_account.read_text())
    async with _app_service(config) as apps:
        app = await apps.find_app(args.app)
        await apps.set_fcm_credentials(app.app_id, credentials)
    print(f"FCM credentials set for {app.name} (project {credentials.project_id})")
    _warn_if_unsealed(config)


async def _apps_set_webpush(args: argparse.Namespace, config: Config) -> None:
    key = args.private_key.read_text() if args.private_key is not None else ""
    credentials = web_push_credentials(key, args.subject)
    async with _app_service(config) as apps:
        app = await apps.find_app(args.app)
        await apps.set_web_push_credentials(app.app_id, credentials)
    made = "generated" if not key.strip() else "set"
    print(f"Web Push credentials {made} for {app.name}")
    # What the page passes to pushManager.subscribe() as applicationServerKey.
    print(f"applicationServerKey: {credentials.public_key}")
    _warn_if_unsealed(config)


async def _apps_set_hms(args: argparse.Namespace, config: Config) -> None:
    # A file, not a flag: a secret on the command line is in every `ps` listing.
    secret = args.client_secret_file.read_text().strip()
    credentials = hms_credentials(args.client_id, secret)
    async with _app_service(config) as apps:
        app = await apps.find_app(args.app)
        await apps.set_hms_credentials(app.app_id, credentials)
    print(f"HMS credentials set for {app.name} (client {credentials.client_id})")
    _warn_if_unsealed(config)


def _warn_if_unsealed(config: Config, then: str = "run this command again to seal them") -> None:
    if config.secret_key is None:
        print(
            "warning: stored UNSEALED (plaintext) in the database: neither PUSHHUB_SECRET_KEY "
            f"nor --secret-key is set. Set one and {then}.",
            file=sys.stderr,
        )


async def _keys_create(args: argparse.Namespace, config: Config) -> None:
    async with _app_service(config) as apps:
        app = await apps.find_app(args.app)
        created = await apps.create_key(app.app_id, KeyKind[args.kind.upper()])
    print(f"key_id: {created.key.key_id}")
    print(f"key:    {created.secret}   (shown once)")


async def _keys_list(args: argparse.Namespace, config: Config) -> None:
    async with _app_service(config) as apps:
        app = await apps.find_app(args.app)
        keys = await apps.list_keys(app.app_id)
    for key in keys:
        state = f"revoked {key.revoked_at.isoformat()}" if key.revoked_at else "active"
        print(f"{key.key_id}  {key.kind.name.lower():6}  {key.prefix}…  {state}")


async def _keys_revoke(args: argparse.Namespace, config: Config) -> None:
    async with _app_service(config) as apps:
        app = await apps.find_app(args.app)
        revoked = await apps.revoke_key(app.app_id, args.key_id)
    print(f"revoked {revoked.key_id}")


async def _inbox(args: argparse.Namespace, config: Config) -> None:
    # The default database is a file in the current directory: say which one was read.
    print(f"inbox of {masked(config.database_url)}", file=sys.stderr)
    async with _database(config) as db:
        app_id = (await _apps(db, config).find_app(args.app)).app_id if args.app else None
        entries = await SqlInbox(db).list(app_id, args.registration, args.message, args.limit)
    for entry in entries:
        if args.json:
            print(json.dumps(_inbox_json(entry)))
        else:
            print(
                f"{entry.delivered_at.isoformat()}  {entry.platform.name:8}  "
                f"message {entry.message_id}  registration {entry.registration_id}\n"
                f"    {entry.payload}"
            )


def _inbox_json(entry: InboxEntry) -> dict[str, object]:
    return {
        "delivered_at": entry.delivered_at.isoformat(),
        "app_id": entry.app_id,
        "message_id": entry.message_id,
        "registration_id": entry.registration_id,
        "platform": entry.platform.name,
        "payload": json.loads(entry.payload),
    }


def _client_host(listen: str) -> str:
    """Where a local client reaches a server listening on `listen`."""
    host = listen.rsplit(":", 1)[0]
    return "127.0.0.1" if host in ("", "0.0.0.0", "[::]") else host


def _grpcurl_security(config: Config) -> str:
    """grpcurl's flags for this listener: TLS verified against the CA that signed it."""
    if config.tls_cert is None:
        return "-plaintext"
    flags = "-cacert CA.pem"  # the CA that signed the server's certificate
    if config.tls_client_ca is not None:
        flags += " -cert client.pem -key client-key.pem"
    return flags


async def _bootstrap(running: RunningServer, config: Config) -> None:
    await _create_default_app(running.apps, running.port, config)


async def _show_default_app(port: int, config: Config) -> None:
    """The supervisor of --workers N bootstraps once, before its workers start."""
    async with _app_service(config) as apps:
        await _create_default_app(apps, port, config)


async def _create_default_app(apps: AppService, port: int, config: Config) -> None:
    """On an empty database, create the `default` app and show its keys, once."""
    if await apps.list_apps(1, None):
        return
    try:
        created = await apps.create_app(DEFAULT_APP)
    except PushHubError as error:
        if error.reason != "APP_ALREADY_EXISTS":
            raise
        # A fleet started at once on a new database: another process made it
        # (and showed its keys) between our look and our insert.
        return
    address = f"{_client_host(config.listen)}:{port}"
    print(
        f"""
Created app {DEFAULT_APP!r} ({created.app.app_id}). Its keys are shown only now:
  server key: {created.server_key}
  device key: {created.device_key}

Try it:
  grpcurl {_grpcurl_security(config)} -H 'authorization: Bearer {created.server_key}' \\
    -d '{{"platform":"PLATFORM_FCM","device_token":"demo-token","channels":["news","sports"]}}' \\
    {address} pushhub.v1.DeviceRegistrationService/RegisterDevice
""",
        flush=True,
    )
