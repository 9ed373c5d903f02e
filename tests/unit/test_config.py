"""Config.from_env: every documented variable reaches its setting."""

from __future__ import annotations

import logging

import pytest

from pushhub_server import cli
from pushhub_server.config import DEFAULT_DATABASE_URL, DEFAULT_LISTEN, Config


def test_defaults() -> None:
    config = Config.from_env({})
    assert config.database_url == DEFAULT_DATABASE_URL
    assert config.listen == DEFAULT_LISTEN == "127.0.0.1:50051"
    assert config.admin_token is None and config.secret_key is None
    assert config.apns_endpoint is None and config.fcm_endpoint is None
    assert config.log_level == "INFO"


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
        }
    )
    assert config.database_url == "postgresql+asyncpg://u@h/db"
    assert config.listen == "0.0.0.0:6000"
    assert (config.admin_token, config.secret_key) == ("admin", "secret")
    assert (config.apns_endpoint, config.apns_ca_file) == ("https://apns.test:8443", "/ca/apns.pem")
    assert (config.fcm_endpoint, config.fcm_ca_file) == ("https://fcm.test:9443", "/ca/fcm.pem")
    assert config.chunk_size == 250 and config.simulator_records is False
    assert config.log_level == "WARNING"


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
