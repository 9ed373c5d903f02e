"""Which process layouts a database allows (docs/processes.md).

PostgreSQL is shared by any number of processes and hosts: each claims runs
with row locks and leases. SQLite is one process: its writer is a single
connection behind an in-process lock, and a delivery process would never hear
of a publish made through another. So on SQLite one process does everything.
"""

from __future__ import annotations

from .config import Config, Role
from .listener import StartupError
from .store.database_url import parse_database_url


def check_layout(config: Config) -> None:
    """StartupError when config asks SQLite for more than one process, or a part of one."""
    if config.workers < 1:
        raise StartupError(f"--workers (PUSHHUB_WORKERS) is {config.workers}: at least 1")
    if config.role is Role.ALL and config.workers == 1:
        return
    if parse_database_url(config.database_url).get_backend_name() != "sqlite":
        return
    if config.workers > 1:
        raise StartupError(
            f"--workers {config.workers} (PUSHHUB_WORKERS) needs PostgreSQL: SQLite is "
            "one process; use --workers 1"
        )
    raise StartupError(
        f"--role {config.role} (PUSHHUB_ROLE) needs PostgreSQL: on SQLite one process "
        "answers RPCs and delivers; use --role all"
    )
