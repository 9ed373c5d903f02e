"""Config.from_env: every documented variable reaches its setting."""

from __future__ import annotations

import inspect
import logging
import re

import pytest

from pushhub_server import cli
from pushhub_server.config import DEFAULT_DATABASE_URL, DEFAULT_LISTEN, Config, Role


def test_defaults() -> None:
    config = Config.from_env({})
    assert config.database_url == DEFAULT_DATABASE_URL
    assert config.listen == DEFAULT_LISTEN == "127.0.0.1:50051"
    assert config.admin_token is None and config.secret_key is None
    assert config.apns_endpoint is None and config.fcm_endpoint is None
    assert config.log_level == "INFO"
    # Admission control: defaults a public deployment can keep (docs/admission.md).
    assert (config.max_concurrent_rpcs, config.max_import_streams) == (64, 8)
    assert (config.max_import_items_in_flight, config.max_watches) == (10_000, 1_000)
    assert (config.max_device_rpcs, config.device_concurrency) == (64, 16)
    assert (config.device_rate, config.device_burst) == (100.0, 200)
    assert config.tls_cert is None and config.tls_key is None and config.tls_client_ca is None
    assert config.allow_plaintext is False
    assert config.role is Role.ALL and config.workers == 1


def test_an_unknown_role_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHHUB_ROLE", "worker")
    with pytest.raises(SystemExit) as refused:
        cli._config(cli._parser().parse_args(["serve"]))
    assert str(refused.value) == (
        "error: unknown role 'worker' (PUSHHUB_ROLE, --role): one of api, delivery, all"
    )


@pytest.mark.parametrize(
    ("value", "allowed"), [("1", True), ("true", True), ("0", False), ("", False)]
)
def test_plaintext_beyond_loopback_is_an_explicit_opt_in(value: str, allowed: bool) -> None:
    assert Config.from_env({"PUSHHUB_ALLOW_PLAINTEXT": value}).allow_plaintext is allowed


def test_every_variable() -> None:
    config = Config.from_env(
        {
            "PUSHHUB_DATABASE_URL": "postgresql+asyncpg://u@h/db",
            "PUSHHUB_LISTEN": "0.0.0.0:6000",
            "PUSHHUB_ADMIN_TOKEN": "admin",
            "PUSHHUB_SECRET_KEY": "secret",
            "PUSHHUB_APNS_ENDPOINT": "https://apns.test:8443",
            "PUSHHUB_APNS_CA_FILE": "/ca/apns.pem",
            "PUSHHUB_FCM_ENDPOINT": "https://fcm.test:9443",
            "PUSHHUB_FCM_CA_FILE": "/ca/fcm.pem",
            "PUSHHUB_CHUNK_SIZE": "250",
            "PUSHHUB_SIMULATOR_RECORDS": "0",
            "PUSHHUB_LOG_LEVEL": "WARNING",
            "PUSHHUB_WEBHOOK_ALLOWED_HOSTS": "relay.internal,127.0.0.1:8080",
        }
    )
    assert config.database_url == "postgresql+asyncpg://u@h/db"
    assert config.listen == "0.0.0.0:6000"
    assert (config.admin_token, config.secret_key) == ("admin", "secret")
    assert (config.apns_endpoint, config.apns_ca_file) == ("https://apns.test:8443", "/ca/apns.pem")
    assert (config.fcm_endpoint, config.fcm_ca_file) == ("https://fcm.test:9443", "/ca/fcm.pem")
    assert config.chunk_size == 250 and config.simulator_records is False
    assert config.log_level == "WARNING"
    assert config.webhook_allowed_hosts == "relay.internal,127.0.0.1:8080"


def test_lease_seconds() -> None:
    assert Config.from_env({}).lease_seconds == 60.0
    assert Config.from_env({"PUSHHUB_LEASE_SECONDS": "2.5"}).lease_seconds == 2.5


def test_log_level_flag_overrides_the_variable_and_bad_names_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUSHHUB_LOG_LEVEL", "ERROR")
    args = cli._parser().parse_args(["serve", "--log-level", "debug"])
    assert cli._log_level(cli._config(args).log_level) == logging.DEBUG
    with pytest.raises(SystemExit, match="unknown log level 'loud'"):
        cli._log_level("loud")


SERVE_FLAGS = [
    # (flag, its value, variable, the variable's value, setting, the flag's setting)
    (
        "--database-url",
        "sqlite+aiosqlite:///f.db",
        "PUSHHUB_DATABASE_URL",
        "x",
        "database_url",
        "sqlite+aiosqlite:///f.db",
    ),
    ("--secret-key", "flag-key", "PUSHHUB_SECRET_KEY", "env-key", "secret_key", "flag-key"),
    ("--listen", "0.0.0.0:7000", "PUSHHUB_LISTEN", "0.0.0.0:6000", "listen", "0.0.0.0:7000"),
    (
        "--metrics-listen",
        "127.0.0.1:9464",
        "PUSHHUB_METRICS_LISTEN",
        "127.0.0.1:9000",
        "metrics_listen",
        "127.0.0.1:9464",
    ),
    ("--role", "API", "PUSHHUB_ROLE", "delivery", "role", Role.API),
    ("--workers", "4", "PUSHHUB_WORKERS", "2", "workers", 4),
    ("--admin-token", "flag", "PUSHHUB_ADMIN_TOKEN", "env", "admin_token", "flag"),
    ("--grace-period", "3", "PUSHHUB_GRACE_PERIOD", "20", "grace_period", 3.0),
    ("--log-level", "DEBUG", "PUSHHUB_LOG_LEVEL", "ERROR", "log_level", "DEBUG"),
    ("--sweep-interval", "5", "PUSHHUB_SWEEP_INTERVAL", "60", "sweep_interval", 5.0),
    ("--chunk-size", "50", "PUSHHUB_CHUNK_SIZE", "250", "chunk_size", 50),
    ("--lease-seconds", "7.5", "PUSHHUB_LEASE_SECONDS", "60", "lease_seconds", 7.5),
    (
        "--scheduler-poll-interval",
        "0.5",
        "PUSHHUB_SCHEDULER_POLL_INTERVAL",
        "5",
        "scheduler_poll_interval",
        0.5,
    ),
    ("--watch-poll-interval", "9", "PUSHHUB_WATCH_POLL_INTERVAL", "2", "watch_poll_interval", 9.0),
    ("--key-cache-seconds", "1.5", "PUSHHUB_KEY_CACHE_SECONDS", "5", "key_cache_seconds", 1.5),
    ("--partition-size", "0", "PUSHHUB_PARTITION_SIZE", "5000", "partition_size", 0),
    ("--no-simulator-records", None, "PUSHHUB_SIMULATOR_RECORDS", "1", "simulator_records", False),
    ("--simulator-records", None, "PUSHHUB_SIMULATOR_RECORDS", "0", "simulator_records", True),
    (
        "--apns-endpoint",
        "https://flag",
        "PUSHHUB_APNS_ENDPOINT",
        "https://env",
        "apns_endpoint",
        "https://flag",
    ),
    (
        "--apns-ca-file",
        "/flag.pem",
        "PUSHHUB_APNS_CA_FILE",
        "/env.pem",
        "apns_ca_file",
        "/flag.pem",
    ),
    ("--apns-connections", "4", "PUSHHUB_APNS_CONNECTIONS", "2", "apns_connections", 4),
    (
        "--fcm-endpoint",
        "https://flag",
        "PUSHHUB_FCM_ENDPOINT",
        "https://env",
        "fcm_endpoint",
        "https://flag",
    ),
    ("--fcm-ca-file", "/flag.pem", "PUSHHUB_FCM_CA_FILE", "/env.pem", "fcm_ca_file", "/flag.pem"),
    (
        "--hms-endpoint",
        "https://flag",
        "PUSHHUB_HMS_ENDPOINT",
        "https://env",
        "hms_endpoint",
        "https://flag",
    ),
    (
        "--hms-token-endpoint",
        "https://flag/token",
        "PUSHHUB_HMS_TOKEN_ENDPOINT",
        "https://env/token",
        "hms_token_endpoint",
        "https://flag/token",
    ),
    ("--hms-ca-file", "/flag.pem", "PUSHHUB_HMS_CA_FILE", "/env.pem", "hms_ca_file", "/flag.pem"),
    (
        "--web-push-ca-file",
        "/flag.pem",
        "PUSHHUB_WEB_PUSH_CA_FILE",
        "/env.pem",
        "web_push_ca_file",
        "/flag.pem",
    ),
    (
        "--web-push-allowed-hosts",
        "relay.internal",
        "PUSHHUB_WEB_PUSH_ALLOWED_HOSTS",
        "127.0.0.1",
        "web_push_allowed_hosts",
        "relay.internal",
    ),
    ("--tls-cert", "/flag.pem", "PUSHHUB_TLS_CERT", "/env.pem", "tls_cert", "/flag.pem"),
    ("--tls-key", "/flag.key", "PUSHHUB_TLS_KEY", "/env.key", "tls_key", "/flag.key"),
    (
        "--tls-client-ca",
        "/flag-ca.pem",
        "PUSHHUB_TLS_CLIENT_CA",
        "/env-ca.pem",
        "tls_client_ca",
        "/flag-ca.pem",
    ),
    ("--allow-plaintext", None, "PUSHHUB_ALLOW_PLAINTEXT", "0", "allow_plaintext", True),
    (
        "--webhook-allowed-hosts",
        "relay.internal",
        "PUSHHUB_WEBHOOK_ALLOWED_HOSTS",
        "127.0.0.1",
        "webhook_allowed_hosts",
        "relay.internal",
    ),
    (
        "--max-concurrent-rpcs",
        "9",
        "PUSHHUB_MAX_CONCURRENT_RPCS",
        "7",
        "max_concurrent_rpcs",
        9,
    ),
    ("--max-import-streams", "3", "PUSHHUB_MAX_IMPORT_STREAMS", "2", "max_import_streams", 3),
    (
        "--max-import-items-in-flight",
        "500",
        "PUSHHUB_MAX_IMPORT_ITEMS_IN_FLIGHT",
        "400",
        "max_import_items_in_flight",
        500,
    ),
    ("--max-watches", "11", "PUSHHUB_MAX_WATCHES", "10", "max_watches", 11),
    (
        "--web-push-encryption-threads",
        "0",
        "PUSHHUB_WEB_PUSH_ENCRYPTION_THREADS",
        "1",
        "web_push_encryption_threads",
        0,
    ),
    ("--max-device-rpcs", "12", "PUSHHUB_MAX_DEVICE_RPCS", "13", "max_device_rpcs", 12),
    ("--device-rate", "2.5", "PUSHHUB_DEVICE_RATE", "0", "device_rate", 2.5),
    ("--device-burst", "5", "PUSHHUB_DEVICE_BURST", "6", "device_burst", 5),
    ("--device-concurrency", "4", "PUSHHUB_DEVICE_CONCURRENCY", "3", "device_concurrency", 4),
]


@pytest.mark.parametrize(
    ("flag", "value", "variable", "env_value", "setting", "expected"), SERVE_FLAGS
)
def test_each_serve_flag_overrides_its_variable(
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    value: str | None,
    variable: str,
    env_value: str,
    setting: str,
    expected: object,
) -> None:
    monkeypatch.setenv(variable, env_value)
    untouched = cli._config(cli._parser().parse_args(["serve"]))
    assert getattr(untouched, setting) != expected, "the variable alone must differ"
    argv = ["serve", flag] if value is None else ["serve", flag, value]
    assert getattr(cli._config(cli._parser().parse_args(argv)), setting) == expected


def test_every_variable_has_a_serve_flag() -> None:
    """Config.from_env reads each PUSHHUB_* variable; serve has a flag for each."""
    source = inspect.getsource(Config.from_env)
    variables = set(re.findall(r'"(PUSHHUB_[A-Z_]+)"', source))
    assert variables == {variable for _, _, variable, _, _, _ in SERVE_FLAGS}


def test_serve_refuses_a_negative_number_of_encryption_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUSHHUB_WEB_PUSH_ENCRYPTION_THREADS", "-1")
    with pytest.raises(SystemExit, match="ENCRYPTION_THREADS must be 0 or more"):
        cli.main(["serve"])


@pytest.mark.parametrize(
    ("variable", "value", "refusal"),
    [
        ("PUSHHUB_WATCH_POLL_INTERVAL", "0", "WATCH_POLL_INTERVAL must be more than 0"),
        ("PUSHHUB_SCHEDULER_POLL_INTERVAL", "-1", "SCHEDULER_POLL_INTERVAL must be more than 0"),
        ("PUSHHUB_SWEEP_INTERVAL", "nan", "SWEEP_INTERVAL must be more than 0"),
        ("PUSHHUB_KEY_CACHE_SECONDS", "-5", "KEY_CACHE_SECONDS must be 0 or more"),
    ],
)
def test_serve_refuses_intervals_that_would_spin_or_mean_nothing(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, refusal: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit, match=refusal):
        cli.main(["serve"])


def test_serve_refuses_a_malformed_allowed_host_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUSHHUB_WEBHOOK_ALLOWED_HOSTS", "relay.internal,http://sink:8080")
    with pytest.raises(
        SystemExit, match=r"WEBHOOK_ALLOWED_HOSTS: 'http://sink:8080' is not host\[:port\]"
    ):
        cli.main(["serve"])
