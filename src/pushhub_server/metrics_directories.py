"""The supervisor's own PROMETHEUS_MULTIPROC_DIR, and what dead supervisors left.

A supervisor removes its directory when it exits, but one killed by SIGKILL (or
the OOM killer) cannot. So every supervisor's directory sits under one parent
per user, `$TMPDIR/pushhub-metrics-<uid>`, named after its owner: its pid and
that process's start time (/proc/<pid>/stat, in clock ticks since boot). Each
start removes the directories whose owner no longer runs: no process has the
pid, or the process that has it started at another time (the pid was reused).
A live supervisor's directory is never touched, so several supervisors share a
host, and the parent, safely. Names of any other shape are left alone.

The parent must be this user's own directory, closed to others (a directory of
another user in a shared /tmp could be made to hold what it likes): anything
else stops the start in one line.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from .listener import StartupError

_OWNER_NAME = re.compile(r"(\d+)-(\d+)")


def claim_metrics_directory() -> Path:
    """A fresh directory of this process's own, after removing dead owners' ones."""
    parent = _parent()
    for entry in parent.iterdir():
        if not _owner_runs(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
    mine = parent / _owner_name(os.getpid())
    mine.mkdir(mode=0o700)
    return mine


def _parent() -> Path:
    parent = Path(tempfile.gettempdir()) / f"pushhub-metrics-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)
    found = os.lstat(parent)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise StartupError(
            f"{parent} must be a directory of this user's, closed to others (mode 700)"
        )
    return parent


def _owner_name(pid: int) -> str:
    started = _start_time(pid)
    assert started is not None, "this process runs"
    return f"{pid}-{started}"


def _owner_runs(name: str) -> bool:
    """Whether the process a directory is named after still runs; True for names
    of another shape, which are not ours to remove."""
    match = _OWNER_NAME.fullmatch(name)
    if match is None:
        return True
    return _start_time(int(match[1])) == int(match[2])


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when no live process
    has pid."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, field 2, is in parentheses and may hold spaces or ')'.
    fields = stat_line.rpartition(")")[2].split()
    if fields[0] == "Z":
        return None  # a zombie: dead, its parent has not reaped it yet
    return int(fields[19])  # field 22 of the whole line
