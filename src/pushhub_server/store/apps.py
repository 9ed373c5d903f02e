"""Apps and their API keys (stored as hashes only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from pushhub_server.core.clock import from_micros, to_micros
from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.models import ApiKey, App, KeyKind, Platform

from .change_feed import Change, announce
from .children import delete_app_registrations
from .database import Database
from .records import micros_or_none, moment_or_none
from .schema import api_keys, apps

_APP_COLUMNS = (
    apps.c.id,
    apps.c.name,
    apps.c.created_at,
    apps.c.signing_secret,
    (apps.c.apns_credentials.is_not(None)).label("apns_configured"),
    (apps.c.fcm_credentials.is_not(None)).label("fcm_configured"),
    (apps.c.web_push_credentials.is_not(None)).label("web_push_configured"),
    (apps.c.hms_credentials.is_not(None)).label("hms_configured"),
    apps.c.web_push_public_key,
)

_CREDENTIAL_COLUMNS: dict[Platform, sa.Column[str]] = {
    Platform.APNS: apps.c.apns_credentials,
    Platform.FCM: apps.c.fcm_credentials,
    Platform.WEB_PUSH: apps.c.web_push_credentials,
    Platform.HMS: apps.c.hms_credentials,
}
# The credentials' public part, stored in the clear beside them (App shows it).
_PUBLIC_COLUMNS: dict[Platform, sa.Column[str]] = {
    Platform.WEB_PUSH: apps.c.web_push_public_key,
}


class SqlAppRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_app(self, app: App, keys: Sequence[tuple[ApiKey, str]]) -> None:
        row = {
            "id": app.app_id,
            "name": app.name,
            "signing_secret": app.signing_secret,
            "created_at": to_micros(app.created_at),
        }
        async with self._db.write() as conn:
            inserted = await conn.execute(
                self._db.insert(apps).values(row).on_conflict_do_nothing(index_elements=["name"])
            )
            if inserted.rowcount == 0:
                raise PushHubError(
                    ErrorCode.ALREADY_EXISTS,
                    "APP_ALREADY_EXISTS",
                    f"an app named {app.name!r} already exists",
                    {"name": app.name},
                )
            if keys:
                await conn.execute(api_keys.insert(), [_key_row(key, h) for key, h in keys])

    async def get_app(self, app_id: str) -> App | None:
        return await self._one_app(apps.c.id == app_id)

    async def find_app(self, id_or_name: str) -> App | None:
        return await self._one_app(sa.or_(apps.c.id == id_or_name, apps.c.name == id_or_name))

    async def list_apps(self, limit: int, after_id: str | None) -> list[App]:
        query = sa.select(*_APP_COLUMNS).order_by(apps.c.id).limit(limit)
        if after_id is not None:
            query = query.where(apps.c.id > after_id)
        async with self._db.read() as conn:
            return [_app(row) for row in await conn.execute(query)]

    async def delete_app(self, app_id: str) -> bool:
        async with self._db.write() as conn:
            # Subscriptions and tags have no foreign keys (store.children). Locking
            # the app first makes a concurrent import that adds a registration (its
            # foreign key locks the app row) finish before, or fail after, this.
            this_app = apps.c.id == app_id
            await conn.execute(sa.select(apps.c.id).where(this_app).with_for_update())
            await delete_app_registrations(conn, app_id)
            # Keys, channels, messages and the rest cascade from the app.
            deleted = await conn.execute(sa.delete(apps).where(this_app))
            if deleted.rowcount > 0:
                await announce(conn, Change.APP, app_id)
        return deleted.rowcount > 0

    async def add_key(self, key: ApiKey, key_hash: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(api_keys.insert().values(_key_row(key, key_hash)))

    async def list_keys(self, app_id: str) -> list[ApiKey]:
        query = sa.select(api_keys).where(api_keys.c.app_id == app_id).order_by(api_keys.c.id)
        async with self._db.read() as conn:
            return [_key(row) for row in await conn.execute(query)]

    async def revoke_key(self, app_id: str, key_id: str, at: datetime) -> ApiKey | None:
        """Revoking twice keeps the first revocation time."""
        mine = sa.and_(api_keys.c.app_id == app_id, api_keys.c.id == key_id)
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(api_keys)
                .where(mine, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=to_micros(at))
            )
            row = (await conn.execute(sa.select(api_keys).where(mine))).first()
            if row is not None:
                await announce(conn, Change.KEY, key_id)
        return None if row is None else _key(row)

    async def active_key(self, key_hash: str) -> tuple[ApiKey, App] | None:
        query = (
            sa.select(api_keys, *(column.label(f"app__{column.name}") for column in _APP_COLUMNS))
            .join(apps, apps.c.id == api_keys.c.app_id)
            .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return _key(row), _app(row, prefix="app__")

    async def set_credentials(
        self, app_id: str, platform: Platform, sealed: str | None, public: str | None = None
    ) -> bool:
        values = {_CREDENTIAL_COLUMNS[platform].name: sealed}
        public_column = _PUBLIC_COLUMNS.get(platform)
        if public_column is not None:
            values[public_column.name] = public if sealed is not None else None
        async with self._db.write() as conn:
            updated = await conn.execute(sa.update(apps).where(apps.c.id == app_id).values(values))
            if updated.rowcount > 0:  # cached apps carry <platform>_configured
                await announce(conn, Change.APP, app_id)
        return updated.rowcount > 0

    async def replace_credentials(
        self, app_id: str, platform: Platform, expected: str, sealed: str
    ) -> bool:
        column = _CREDENTIAL_COLUMNS[platform]
        async with self._db.write() as conn:
            updated = await conn.execute(
                sa.update(apps)
                .where(apps.c.id == app_id, column == expected)
                .values({column.name: sealed})
            )
        return updated.rowcount > 0

    async def set_signing_secret(self, app_id: str, sealed: str) -> bool:
        return await self._update_app(app_id, apps.c.id == app_id, signing_secret=sealed)

    async def replace_signing_secret(self, app_id: str, expected: str, sealed: str) -> bool:
        unchanged = sa.and_(apps.c.id == app_id, apps.c.signing_secret == expected)
        return await self._update_app(app_id, unchanged, signing_secret=sealed)

    async def _update_app(
        self, app_id: str, condition: sa.ColumnElement[bool], **values: str
    ) -> bool:
        """Only the signing secret goes through here: cached apps carry it, so the
        other processes forget theirs."""
        async with self._db.write() as conn:
            updated = await conn.execute(sa.update(apps).where(condition).values(values))
            if updated.rowcount > 0:
                await announce(conn, Change.APP, app_id)
        return updated.rowcount > 0

    async def credentials(self, app_id: str) -> dict[Platform, str]:
        query = sa.select(*_CREDENTIAL_COLUMNS.values()).where(apps.c.id == app_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return {}
        stored = zip(_CREDENTIAL_COLUMNS, row, strict=True)
        return {platform: value for platform, value in stored if value is not None}

    async def _one_app(self, condition: sa.ColumnElement[bool]) -> App | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(*_APP_COLUMNS).where(condition))).first()
        return None if row is None else _app(row)


def _key_row(key: ApiKey, key_hash: str) -> dict[str, Any]:
    return {
        "id": key.key_id,
        "app_id": key.app_id,
        "kind": int(key.kind),
        "key_hash": key_hash,
        "prefix": key.prefix,
        "created_at": to_micros(key.created_at),
        "revoked_at": micros_or_none(key.revoked_at),
    }


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.id,
        app_id=row.app_id,
        kind=KeyKind(row.kind),
        prefix=row.prefix,
        created_at=from_micros(row.created_at),
        revoked_at=moment_or_none(row.revoked_at),
    )


def _app(row: Any, prefix: str = "") -> App:
    values = row._mapping
    return App(
        app_id=values[f"{prefix}id"],
        name=values[f"{prefix}name"],
        created_at=from_micros(values[f"{prefix}created_at"]),
        signing_secret=values[f"{prefix}signing_secret"],
        apns_configured=bool(values[f"{prefix}apns_configured"]),
        fcm_configured=bool(values[f"{prefix}fcm_configured"]),
        web_push_configured=bool(values[f"{prefix}web_push_configured"]),
        hms_configured=bool(values[f"{prefix}hms_configured"]),
        web_push_public_key=values[f"{prefix}web_push_public_key"],
    )
