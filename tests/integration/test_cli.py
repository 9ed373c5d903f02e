"""The `pushhub` administration commands against the test database."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushhub_server import cli
from pushhub_server.core.apps import AppService
from pushhub_server.core.clock import SystemClock
from pushhub_server.store import Database, SqlAppRepository

UNSEALED = "stored UNSEALED (plaintext)"


@pytest.fixture(autouse=True)
def no_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUSHHUB_SECRET_KEY", raising=False)


def pushhub(database_url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    """Runs one command on the test database; its stdout and stderr."""
    command, action, *rest = args
    cli.main([command, action, "--database-url", database_url, *rest])
    captured = capsys.readouterr()
    return captured.out, captured.err


def create_app(database_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    name = f"cli-{uuid.uuid4().hex}"
    out, _ = pushhub(database_url, capsys, "apps", "create", name, "--json")
    assert json.loads(out)["app_id"]
    return name


def test_apps_delete_removes_the_app(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = create_app(database_url, capsys)
    kept = create_app(database_url, capsys)

    out, _ = pushhub(database_url, capsys, "apps", "delete", name)

    assert out.startswith(f"deleted app {name} (")
    listed, _ = pushhub(database_url, capsys, "apps", "list")
    assert name not in listed and kept in listed
    with pytest.raises(SystemExit, match=f"error: no app '{name}'"):
        pushhub(database_url, capsys, "apps", "delete", name)


def test_storing_credentials_without_a_secret_key_says_they_are_unsealed(
    database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = create_app(database_url, capsys)
    p8 = tmp_path / "AuthKey.p8"
    key = ec.generate_private_key(ec.SECP256R1())
    p8.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    apns = ("apps", "set-apns", name, "--key-id", "ABC123DEFG", "--team-id", "TEAM123456")
    apns += ("--topic", "com.example.app", "--p8", str(p8))

    out, err = pushhub(database_url, capsys, *apns)
    assert out == f"APNs credentials set for {name} (production)\n"
    assert UNSEALED in err and "PUSHHUB_SECRET_KEY" in err

    out, err = pushhub(database_url, capsys, *apns, "--secret-key", "cli-secret")
    assert out == f"APNs credentials set for {name} (production)\n"
    assert err == ""


def test_apps_rotate_secret_refuses_the_tokens_issued_before(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"cli-{uuid.uuid4().hex}"
    created = json.loads(pushhub(database_url, capsys, "apps", "create", name, "--json")[0])
    before = pushhub(database_url, capsys, "apps", "token", name, "alice")[0].strip()

    out, err = pushhub(database_url, capsys, "apps", "rotate-secret", name)

    assert out == (
        f"rotated the user-token signing secret of {name} ({created['app_id']}): "
        "running servers refuse user tokens issued before within 5 seconds\n"
    )
    assert UNSEALED in err and "pushhub serve" in err
    after = pushhub(database_url, capsys, "apps", "token", name, "alice")[0].strip()
    users = asyncio.run(_users_of(database_url, created["device_key"], [before, after]))
    assert users == [None, "alice"]

    keyed = ("--secret-key", "cli-secret")
    _, err = pushhub(database_url, capsys, "apps", "rotate-secret", created["app_id"], *keyed)
    assert err == ""
    assert asyncio.run(_stored_secret(database_url, name)).startswith("fernet:")
    with pytest.raises(SystemExit, match="error: no app 'no-such-app'"):
        pushhub(database_url, capsys, "apps", "rotate-secret", "no-such-app")


async def _users_of(database_url: str, device_key: str, tokens: list[str]) -> list[str | None]:
    """The user each token names, None when the server would refuse it."""
    db = Database.from_url(database_url)
    try:
        apps = AppService(SqlAppRepository(db), SystemClock())
        return [(await apps.authenticate(device_key, token)).user_id for token in tokens]
    finally:
        await db.dispose()


async def _stored_secret(database_url: str, app: str) -> str:
    db = Database.from_url(database_url)
    try:
        found = await SqlAppRepository(db).find_app(app)
        assert found is not None
        return found.signing_secret
    finally:
        await db.dispose()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == "pushhub 0.1.0\n"


def test_inbox_says_which_database_it_read(
    database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = create_app(database_url, capsys)
    cli.main(["inbox", "--app", name, "--database-url", database_url])
    err = capsys.readouterr().err
    assert err == f"inbox of {database_url}\n"
    # A password never shows.
    url = "postgresql+asyncpg://reader:s3cret@127.0.0.1:1/pushhub"
    with pytest.raises(SystemExit, match="nothing listens at 127.0.0.1:1"):
        cli.main(["inbox", "--database-url", url])
    err = capsys.readouterr().err
    assert err == "inbox of postgresql+asyncpg://reader:***@127.0.0.1:1/pushhub\n"


@pytest.mark.parametrize("url", ["postgres://u:s3cret@db/pushhub", "postgresql://u@db/pushhub"])
def test_a_database_url_without_asyncpg_is_one_line_with_the_fix(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["apps", "list", "--database-url", url])
    message = str(exited.value.code)
    assert message.startswith("error: database URL ")
    assert message.endswith(
        "use postgresql+asyncpg://" + url.split("://", 1)[1].replace("s3cret", "***")
    )


def test_apps_set_webpush_generates_or_takes_a_key_and_prints_its_public_half(
    database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = create_app(database_url, capsys)
    subject = ("--subject", "mailto:ops@example.com")

    out, err = pushhub(database_url, capsys, "apps", "set-webpush", name, *subject)
    generated = out.splitlines()
    assert generated[0] == f"Web Push credentials generated for {name}"
    assert generated[1].startswith("applicationServerKey: B")  # base64url of 0x04 || X || Y
    assert UNSEALED in err

    key = ec.generate_private_key(ec.SECP256R1())
    pem_file = tmp_path / "vapid.pem"
    pem_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    expected = base64.urlsafe_b64encode(point).rstrip(b"=").decode()
    keyed = ("--private-key", str(pem_file), "--secret-key", "cli-secret")
    out, err = pushhub(database_url, capsys, "apps", "set-webpush", name, *subject, *keyed)
    assert out == f"Web Push credentials set for {name}\napplicationServerKey: {expected}\n"
    assert err == ""


def test_apps_set_webpush_refuses_a_bad_subject_or_key_in_one_line(
    database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = create_app(database_url, capsys)
    with pytest.raises(SystemExit, match="error: subject must be a mailto: address"):
        pushhub(database_url, capsys, "apps", "set-webpush", name, "--subject", "http://x")
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SystemExit, match="error: vapid_private_key is not a readable PEM"):
        pushhub(
            database_url,
            capsys,
            "apps",
            "set-webpush",
            name,
            "--subject",
            "mailto:ops@example.com",
            "--private-key",
            str(bad),
        )


def test_apps_set_hms_reads_the_secret_from_a_file(
    database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = create_app(database_url, capsys)
    secret_file = tmp_path / "hms-secret"
    secret_file.write_text("0123456789abcdef0123456789abcdef\n")
    hms = ("apps", "set-hms", name, "--client-id", "104012345")

    out, _ = pushhub(database_url, capsys, *hms, "--client-secret-file", str(secret_file))

    assert out == f"HMS credentials set for {name} (client 104012345)\n"
    assert "0123456789abcdef" not in out
    with pytest.raises(SystemExit, match="error: client_id must be the AppGallery"):
        pushhub(
            database_url,
            capsys,
            "apps",
            "set-hms",
            name,
            "--client-id",
            "not-numeric",
            "--client-secret-file",
            str(secret_file),
        )
