"""Assembles PushHub: database, use cases, gRPC services, health, reflection, sweeper."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pushhub.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    publish_pb2,
    publish_pb2_grpc,
    registration_pb2,
    registration_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
)

from .api.admin_service import AdminServicer
from .api.answer_sizes import MAX_ANSWER_BYTES
from .api.auth import Authenticator
from .api.authentication_interceptor import AuthenticationInterceptor
from .api.client_address_interceptor import ClientAddressInterceptor
from .api.concurrency_interceptor import ConcurrencyInterceptor
from .api.database_health import DatabaseHealth
from .api.logging_interceptor import LoggingInterceptor
from .api.message_size_interceptor import MessageSizeInterceptor
from .api.message_sizes import MIN_REQUEST_BYTES
from .api.message_sizes import request_limits as request_limits_of
from .api.metrics_interceptor import MetricsInterceptor
from .api.publish_service import PublishServicer
from .api.registration_service import DeviceRegistrationServicer
from .api.request_decoding import DecodingInterceptor
from .api.status_service import StatusServicer
from .config import PARTITION_SIZE, Config
from .core.admission import Credits
from .core.apps import AppService
from .core.clock import Clock, SystemClock
from .core.credentials import SecretBox
from .core.key_cache import KeyCachingAppRepository
from .core.outbound import OutboundPolicy
from .core.ports import ChangeFeed, StatusSignal
from .core.publishing import PublishingService
from .core.registrations import RegistrationService
from .core.web_push_endpoints import EndpointPolicy
from .delivery.address_guard import AddressGuard, Resolver
from .delivery.dispatcher import Dispatcher
from .delivery.payloads import check_publish_size
from .delivery.providers import SimulatorProvider
from .delivery.providers.registry import Endpoints, ProviderRegistry
from .delivery.scheduler import Scheduler
from .delivery.status_signal import InProcessStatusSignal
from .delivery.sweeper import ExpirySweeper
from .delivery.verification import DryRunVerifier
from .delivery.webhooks import HttpWebhookSender
from .listener import Listener
from .observability_setup import Observability, start_observability
from .processes import check_layout
from .store import (
    Database,
    SqlAppRepository,
    SqlAudienceReader,
    SqlInbox,
    SqlMessageRepository,
    SqlRegistrationRepository,
    SqlTrackingRepository,
    migrate,
)
from .store.change_feed import change_feed

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

_log = logging.getLogger(__name__)

SERVICE_NAMES = (
    registration_pb2.DESCRIPTOR.services_by_name["DeviceRegistrationService"].full_name,
    publish_pb2.DESCRIPTOR.services_by_name["PublishService"].full_name,
    status_pb2.DESCRIPTOR.services_by_name["StatusService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)

_REGISTRATION, _, _STATUS, _ = SERVICE_NAMES
_IMPORT_METHOD = f"/{_REGISTRATION}/RegisterDevices"
_WATCH_METHOD = f"/{_STATUS}/WatchMessageStatus"

# Seconds webhooks still in flight get to finish once the server has stopped.
_WEBHOOK_DRAIN_SECONDS = 5.0


@dataclass
class RunningServer:
    port: int
    registrations: RegistrationService
    apps: AppService
    _server: grpc.aio.Server = field(repr=False)
    _health: health.aio.HealthServicer = field(repr=False)
    _database_health: DatabaseHealth = field(repr=False)
    # Set when stop() begins: open watches end at once (StatusServicer).
    _stopping: asyncio.Event = field(repr=False)
    scheduler: Scheduler
    _sweeper: ExpirySweeper = field(repr=False)
    _webhooks: HttpWebhookSender = field(repr=False)
    _providers: ProviderRegistry = field(repr=False)
    _db: Database = field(repr=False)
    _changes: ChangeFeed = field(repr=False)
    _observability: Observability = field(repr=False)

    @property
    def metrics_port(self) -> int | None:
        """The port serving /metrics; None when this process serves none."""
        return self._observability.metrics_port

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first, so balancers move away, then let in-flight RPCs finish."""
        self._stopping.set()
        await self._changes.stop()
        await self._database_health.stop()
        await self._health.enter_graceful_shutdown()
        await self._sweeper.stop()
        await self._server.stop(grace)
        # After the RPCs: a run cut short here resumes from its checkpoint later.
        await self.scheduler.stop()
        await self.registrations.drain(_WEBHOOK_DRAIN_SECONDS)
        await self._providers.close()
        await self._webhooks.drain(_WEBHOOK_DRAIN_SECONDS)
        await self._db.dispose()
        self._observability.close()

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


async def start_server(
    config: Config,
    clock: Clock | None = None,
    resolver: Resolver | None = None,
    *,
    serve_metrics_endpoint: bool = True,
    tracer_provider: TracerProvider | None = None,
) -> RunningServer:
    """Raises StartupError (the listener) or PushHubError (the database) in one line.

    With config.metrics_listen, metrics are recorded, and served there unless
    serve_metrics_endpoint is False (a `--workers` parent serves its workers' sum).
    Traces go to tracer_provider when given, else by OTLP when
    OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/observability.md).

    ``resolver`` replaces the system resolver for Web Push hosts (tests: a name
    that resolves into the operator's network); the address guard still checks
    every answer."""
    check_layout(config)
    listener = Listener.from_config(config)  # before the database is touched
    observability = start_observability(config, serve_metrics_endpoint, tracer_provider)
    try:
        await migrate(config.database_url)
        db = Database.from_url(config.database_url)
    except BaseException:
        observability.close()
        raise
    try:
        return await _start(config, clock or SystemClock(), db, listener, observability, resolver)
    except BaseException:
        await db.dispose()
        observability.close()
        raise


async def _start(
    config: Config,
    clock: Clock,
    db: Database,
    listener: Listener,
    observability: Observability,
    resolver: Resolver | None,
) -> RunningServer:
    callback_urls = OutboundPolicy.from_list(config.webhook_allowed_hosts)
    webhooks = HttpWebhookSender(callback_urls, config.webhook_timeout, config.webhook_attempts)
    app_repository = KeyCachingAppRepository(SqlAppRepository(db), config.key_cache_seconds)
    apps = AppService(app_repository, clock, config.admin_token, SecretBox(config.secret_key))
    await _seal_signing_secrets(apps)
    web_push_policy = EndpointPolicy.from_env(config.web_push_allowed_hosts)
    status_signal = InProcessStatusSignal()
    scheduler, publishing, providers = _delivery(
        config, clock, db, apps, status_signal, observability, web_push_policy, resolver
    )
    registrations = RegistrationService(
        SqlRegistrationRepository(db),
        SqlTrackingRepository(db),
        webhooks,
        clock,
        config.limits,
        verifier=DryRunVerifier(providers),
        callback_urls=callback_urls,
        web_push_endpoints=web_push_policy,
    )
    request_limits = request_limits_of(config.limits)
    # The interceptors guard the API: a delivery process's health calls need none.
    interceptors = (
        _interceptors(config, apps, request_limits, observability) if config.role.serves_api else []
    )
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[*listener.server_options, *_channel_options(request_limits)],
    )
    stopping = asyncio.Event()
    # A delivery process serves gRPC health only: probes see its database's state.
    served = SERVICE_NAMES if config.role.serves_api else ()
    if config.role.serves_api:
        auth = Authenticator(apps)
        import_items = Credits(config.max_import_items_in_flight)
        _add_services(server, registrations, publishing, apps, auth, config, stopping, import_items)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*served, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = listener.bind(server)
    await server.start()
    for name in ("", *served):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    database_health = DatabaseHealth(db.ping, health_servicer, served, config.health_interval)
    db.add_outage_listener(database_health.suspect)
    database_health.start()
    sweeper = ExpirySweeper(registrations, config.sweep_interval)
    # Other processes' changes wake this one's signals; polling stays the safety net.
    changes = change_feed(config.database_url)
    changes.start(_FleetChanges(scheduler, status_signal, app_repository))
    if config.role.delivers:
        sweeper.start()
        scheduler.start()
    security = "TLS" if listener.tls else "plaintext"
    _log.info("PushHub listening on port %d (%s, role %s)", port, security, config.role)
    return RunningServer(
        port=port,
        registrations=registrations,
        apps=apps,
        scheduler=scheduler,
        _server=server,
        _health=health_servicer,
        _database_health=database_health,
        _stopping=stopping,
        _sweeper=sweeper,
        _webhooks=webhooks,
        _providers=providers,
        _db=db,
        _changes=changes,
        _observability=observability,
    )


def _interceptors(
    config: Config, apps: AppService, request_limits: dict[str, int], observability: Observability
) -> list[grpc.aio.ServerInterceptor]:
    """Outermost first. Each refuses what it must before the request is read
    (docs/admission.md); logging and metrics come first so that refusals are
    logged and counted too."""
    rpc_metrics = observability.rpc_metrics
    counting = [] if rpc_metrics is None else [MetricsInterceptor(rpc_metrics)]
    return [
        # Outside logging: the RPC's span is current when its line is logged.
        *observability.tracing_interceptors(),
        LoggingInterceptor(observability.trace_id()),
        *counting,
        AuthenticationInterceptor(apps, SERVICE_NAMES),
        ConcurrencyInterceptor(
            max_rpcs=config.max_concurrent_rpcs,
            max_import_streams=config.max_import_streams,
            max_watches=config.max_watches,
            max_device_rpcs=config.max_device_rpcs,
            import_method=_IMPORT_METHOD,
            watch_method=_WATCH_METHOD,
        ),
        ClientAddressInterceptor(
            config.device_rate, config.device_burst, config.device_concurrency
        ),
        MessageSizeInterceptor(request_limits, MIN_REQUEST_BYTES),
        # Innermost: only a request within its method's size limit is decoded.
        DecodingInterceptor(),
    ]


def _channel_options(request_limits: dict[str, int]) -> list[tuple[str, int]]:
    return [
        # grpc's only receive limit is per server: the largest request of any
        # method. It refuses a bigger one itself, from its length prefix.
        ("grpc.max_receive_message_length", max(request_limits.values())),
        # Never an answer a client with gRPC's default limit could not receive.
        ("grpc.max_send_message_length", MAX_ANSWER_BYTES),
        # BDP probing grows each connection's flow-control window to many MB, and
        # grpc then buffers a request body the server refuses without reading
        # (24 anonymous 8 MB calls: +60 MB; without probing, +2 MB). A request
        # the server reads still gets a window as large as its message.
        ("grpc.http2.bdp_probe", 0),
    ]


async def _seal_signing_secrets(apps: AppService) -> None:
    """Apps created before PUSHHUB_SECRET_KEY was set keep their signing secret in
    plaintext until a server with the key starts: before it takes any call."""
    sealed = await apps.seal_signing_secrets()
    if sealed:
        _log.info("sealed the user-token signing secrets of %d apps stored in plaintext", sealed)


def _partition_size(config: Config, db: Database) -> int:
    """Recipients per partition: shared by processes on PostgreSQL; on SQLite one
    process delivers, so a run stays one partition unless configured."""
    if config.partition_size is not None:
        return config.partition_size
    return PARTITION_SIZE if db.dialect == "postgresql" else 0


def _delivery(
    config: Config,
    clock: Clock,
    db: Database,
    apps: AppService,
    signal: StatusSignal,
    observability: Observability,
    web_push_policy: EndpointPolicy,
    resolver: Resolver | None,
) -> tuple[Scheduler, PublishingService, ProviderRegistry]:
    """Publishing stores messages; the scheduler hands due runs to the dispatcher."""
    metrics = observability.delivery_metrics
    tracing = observability.delivery_tracing
    partition_size = _partition_size(config, db)
    messages = SqlMessageRepository(db, partition_size)
    simulator = SimulatorProvider(SqlInbox(db), clock, record=config.simulator_records)
    endpoints = Endpoints(
        apns_url=config.apns_endpoint,
        apns_ca_file=config.apns_ca_file,
        fcm_url=config.fcm_endpoint,
        fcm_ca_file=config.fcm_ca_file,
        apns_connections=config.apns_connections,
        hms_url=config.hms_endpoint,
        hms_token_url=config.hms_token_endpoint,
        hms_ca_file=config.hms_ca_file,
        web_push_ca_file=config.web_push_ca_file,
        web_push_encryption_threads=config.web_push_encryption_threads,
        web_push_policy=web_push_policy,
        web_push_resolve=resolver and AddressGuard(resolver),
    )
    providers = ProviderRegistry(apps, simulator, clock, endpoints, metrics, tracing)
    apps.on_deleted.append(providers.forget)
    dispatcher = Dispatcher(
        messages,
        SqlAudienceReader(db),
        providers.for_app,
        clock,
        signal,
        chunk_size=config.chunk_size,
        partition_size=partition_size,
        lease=timedelta(seconds=config.lease_seconds),
        metrics=metrics,
        tracing=tracing,
    )
    scheduler = Scheduler(
        messages,
        dispatcher,
        clock,
        poll_interval=config.scheduler_poll_interval,
        metrics=metrics,
    )
    publishing = PublishingService(
        messages,
        clock,
        config.limits,
        check_publish_size,
        signal,
        on_published=scheduler.wake,
        metrics=metrics,
        trace_context=observability.trace_context(),
        watch_poll_seconds=config.watch_poll_interval,
    )
    return scheduler, publishing, providers


@dataclass(frozen=True)
class _FleetChanges:
    """core.ports.ChangeListener: another process's committed change wakes the
    same in-process signals as this process's own would."""

    scheduler: Scheduler
    signal: StatusSignal
    keys: KeyCachingAppRepository

    def messages_due(self) -> None:
        self.scheduler.wake()

    def status_changed(self, message_id: str) -> None:
        self.signal.notify(message_id)

    def key_revoked(self, key_id: str) -> None:
        self.keys.forget_key(key_id)

    def app_changed(self, app_id: str) -> None:
        self.keys.forget_app(app_id)

    def changes_missed(self) -> None:
        self.keys.forget_all()
        self.scheduler.wake()
        self.signal.notify_all()


def _add_services(
    server: grpc.aio.Server,
    registrations: RegistrationService,
    publishing: PublishingService,
    apps: AppService,
    auth: Authenticator,
    config: Config,
    stopping: asyncio.Event,
    import_items: Credits,
) -> None:
    registration_pb2_grpc.add_DeviceRegistrationServiceServicer_to_server(
        DeviceRegistrationServicer(registrations, auth, import_items), server
    )
    publish_pb2_grpc.add_PublishServiceServicer_to_server(PublishServicer(publishing, auth), server)
    status_pb2_grpc.add_StatusServiceServicer_to_server(
        StatusServicer(
            registrations,
            publishing,
            auth,
            key_check_seconds=config.watch_key_check_seconds,
            stopping=stopping,
        ),
        server,
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(
        AdminServicer(apps, auth, config.limits), server
    )


OnStart = Callable[[RunningServer], Awaitable[None]]


# The signals that, once a stop has begun, end the process at once.
_EXIT_NOW_ON = (signal.SIGTERM, signal.SIGINT)


def serve(
    config: Config,
    on_start: OnStart | None = None,
    exit_now_on: tuple[signal.Signals, ...] = _EXIT_NOW_ON,
    serve_metrics_endpoint: bool = True,
) -> None:
    """Runs until SIGTERM or SIGINT, then stops gracefully within config.grace_period;
    one of exit_now_on during the stop exits at once. serve_metrics_endpoint: as
    start_server's (a `--workers` worker leaves /metrics to its supervisor)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(config, on_start, exit_now_on, serve_metrics_endpoint))


async def _serve(
    config: Config,
    on_start: OnStart | None,
    exit_now_on: tuple[signal.Signals, ...],
    serve_metrics_endpoint: bool,
) -> None:
    running = await start_server(config, serve_metrics_endpoint=serve_metrics_endpoint)
    # Start-up objects live forever, and a bulk import allocates ~100 objects per
    # item: freeze the former and collect young objects 20x less often (GC was ~8% CPU).
    gc.freeze()
    gc.set_threshold(14_000, 10, 10)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum, stopping, exit_now_on)
    try:
        if on_start is not None:
            await on_start(running)
        await stopping.wait()
        _log.info("stopping: in-flight RPCs get %.1f s", config.grace_period)
    finally:
        await running.stop(config.grace_period)


def _on_signal(
    signum: int, stopping: asyncio.Event, exit_now_on: tuple[signal.Signals, ...]
) -> None:
    """The first SIGTERM/SIGINT stops gracefully; a second (Ctrl-C again) exits at once."""
    if not stopping.is_set():
        stopping.set()
        return
    if signum not in exit_now_on:
        return
    name = signal.Signals(signum).name
    _log.warning("%s again: exiting now, without waiting for in-flight RPCs", name)
    # Runs left mid-chunk resume from their checkpoints once their leases run out.
    os._exit(128 + signum)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (about 25% more RPCs per second here), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
