"""Web Push through 1 then 2 delivery processes sharing one broadcast: figures, not assertions.

On benchmarks/fleet.py's set-up (partitioned runs, docs/fleet.md): each process
is a `pushhub serve` in a session of its own on one PostgreSQL database, the
broadcast's run cut into partitions of --partition-size that the processes
claim in turn. The registrations are fleet.py's seed with Web Push's
platform code, endpoints ``https://localhost:PORT/wpush/<n>`` on the nginx sink
(benchmarks/http2_clients.py answers 201) and one browser's keys (every
recipient still costs its own ECDH and AES-GCM). Prints, per round, the rate
from Publish to PUBLISHED and CPU µs per notification summed over the
processes, for 1 and then 2 processes.

    .venv/bin/python -m benchmarks.fleet_webpush --count 100000 --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import benchmarks.fleet as fleet
from benchmarks.common import create_app, fresh_postgres_url, pushhub
from benchmarks.delivery import ensure_nginx
from benchmarks.http2_clients import nginx_sink
from benchmarks.webpush_crypto import subscriptions
from pushhub_server.core.web_push import WebPushKeys
from tests.fakes.tls import issue_tls_files

WEB_PUSH_CODE = 3  # store/platforms.py PLATFORM_CODES
# fleet.SEED with the Web Push columns, the platform code and endpoint tokens.
SEED = (
    fleet.SEED.replace(
        "fingerprint, created_at, updated_at)",
        "fingerprint, created_at, updated_at, web_push_p256dh, web_push_auth)",
    )
    .replace("$1, 1, token,", f"$1, {WEB_PUSH_CODE}, token,")
    .replace("md5(token), $4, $4", "md5(token), $4, $4, $6, $7")
    .replace("repeat(lpad(to_hex(n), 16, '0'), 10) AS token", "$8 || n AS token")
)


async def seed(url: str, app_id: str, count: int, base: str, keys: WebPushKeys) -> None:
    import asyncpg

    now_us = time.time_ns() // 1000
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        stamp = f"{now_us // 1000:012x}"
        await conn.execute(SEED, app_id, count, stamp, now_us, 0, keys.p256dh, keys.auth, base)
        await conn.execute("VACUUM ANALYZE registrations")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2, help="ENCRYPTION_THREADS")
    parser.add_argument("--partition-size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--pg-database", default="pushhub_fleet_webpush")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pushhub-fleet-webpush-"))
    url = asyncio.run(fresh_postgres_url(args.pg_database))
    keys = create_app(url, "fleet-webpush")
    pushhub(
        "apps", "set-webpush", keys["app_id"], "--subject", "mailto:bench@example.com",
        database_url=url,
    )  # fmt: skip
    tls = issue_tls_files(workdir / "tls", ("localhost",))
    ensure_nginx()
    [browser] = subscriptions(1)
    with nginx_sink(tls) as sink:
        port = sink.rsplit(":", 1)[1]
        base = f"https://localhost:{port}/wpush/"
        asyncio.run(seed(url, keys["app_id"], args.count, base, browser))
        env = {
            "PUSHHUB_DATABASE_URL": url,
            "PUSHHUB_SCHEDULER_POLL_INTERVAL": "0.2",
            "PUSHHUB_PARTITION_SIZE": str(args.partition_size),
            "PUSHHUB_WEB_PUSH_ALLOWED_HOSTS": f"localhost:{port}",
            "PUSHHUB_WEB_PUSH_CA_FILE": str(tls.ca_file),
            "PUSHHUB_WEB_PUSH_ENCRYPTION_THREADS": str(args.threads),
        }
        print(
            f"{args.count:,} Web Push registrations, {args.threads} encryption threads, "
            f"partitions of {args.partition_size:,}; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        for _ in range(args.rounds):
            for processes in (1, 2):
                result = fleet.shared_broadcast(processes, env, keys["server_key"], workdir)
                cpu_us = sum(result["cpu"]) * 1e6 / max(result["sent"], 1)
                print(
                    f"{fleet.describe('Web Push', result)}; {cpu_us:.1f} CPU us/notification;"
                    f" load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
