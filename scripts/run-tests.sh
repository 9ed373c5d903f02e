#!/usr/bin/env bash
# The whole suite on embedded SQLite, then again on PostgreSQL what depends on the
# database (--database-only: tests using the database_url fixture), so unit tests
# and the memory store's contract cases run once, and tests/contract covers the
# memory, SQLite and PostgreSQL stores once each.
# PostgreSQL is started when its port is closed; the suite creates its database
# when it is missing and refuses one not named for tests (tests/conftest.py).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url=${PUSHHUB_PG_TEST_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/test}
pg_host=127.0.0.1
pg_port=5432

port_open() { (exec 3<>"/dev/tcp/$pg_host/$pg_port") 2>/dev/null; }

ensure_postgres() {
  port_open && return 0
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "PostgreSQL port closed; starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  for _ in $(seq 1 30); do port_open && return 0; sleep 1; done
  return 1
}

# The end-to-end metrics test scrapes PushHub with a real Prometheus server.
scripts/ensure-prometheus.sh

echo "=== test pass 1/2: SQLite ==="
.venv/bin/pytest "$@"

if ensure_postgres; then
  echo "=== test pass 2/2: PostgreSQL ($pg_url) ==="
  PUSHHUB_TEST_DATABASE_URL=$pg_url .venv/bin/pytest --database-only "$@"
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable on $pg_host:$pg_port; CI requires both passes" >&2
  exit 1
else
  echo "WARNING: PostgreSQL is not reachable on $pg_host:$pg_port; skipped the second pass" >&2
fi
