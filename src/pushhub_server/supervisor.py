"""`pushhub serve --workers N`: one supervisor process and N server processes.

The supervisor claims the listen address (listener.claim_port) and holds it for
as long as it runs, migrates the database once (N workers migrating at once
would race), then starts N workers (worker.py), each a whole `pushhub serve`
whose gRPC server joins the claimed port with SO_REUSEPORT; the kernel spreads
connections over them. They share nothing but PostgreSQL (docs/processes.md).

- Each worker runs in a session of its own: a terminal's Ctrl-C or hang-up
  reaches the supervisor alone, and where the kernel shares CPU per session
  (autogroup), each worker gets a share as an independent server would, not
  1/N of the supervisor's. Workers die with the supervisor (PR_SET_PDEATHSIG).
- SIGTERM or SIGINT: each worker gets SIGTERM and stops gracefully
  (server.serve); a SIGINT then (Ctrl-C again) makes them exit at once.
- A worker that dies while serving is reported and restarted: the others keep
  serving and the port stays claimed, so one crash (an OOM kill, a bug on a rare
  input) costs its in-flight calls only. A worker that cannot start, or more
  than MAX_RESTARTS crashes within RESTART_WINDOW seconds, stops them all and
  the supervisor exits 1: then the fault is not passing, and the service
  manager (systemd, Kubernetes) should see it.
- With --metrics-listen, the workers record their metrics in one
  PROMETHEUS_MULTIPROC_DIR and the supervisor, the one process that outlives
  them, serves the sum at that address (WorkerMetrics, docs/observability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from types import FrameType
from typing import TYPE_CHECKING

from .config import Config
from .listener import Listener, StartupError, claim_port
from .metrics_directories import claim_metrics_directory
from .processes import check_layout
from .store import migrate

if TYPE_CHECKING:
    from .observability.metrics_endpoint import MetricsEndpoint

_log = logging.getLogger(__name__)

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0

# Runs once, before the workers start, with the port they will serve.
Prepare = Callable[[int], Awaitable[None]]


def supervise(config: Config, prepare: Prepare | None = None) -> int:
    """Runs N workers until SIGTERM/SIGINT; the exit status. StartupError or
    PushHubError (the database) in one line when they cannot start."""
    check_layout(config)
    Listener.from_config(config)  # TLS and plaintext rules, in the supervisor's one line
    with contextlib.ExitStack() as held:
        claim = claim_port(config.listen)
        held.callback(claim.close)
        config = replace(config, listen=claim.address)
        metrics = None
        if config.metrics_listen:  # before the database, like the port: one line if not
            metrics = WorkerMetrics.start(config.metrics_listen)
            held.callback(metrics.close)
        asyncio.run(_prepare(config, prepare))
        return _Supervisor(config, metrics).run()


async def _prepare(config: Config, prepare: Prepare | None) -> None:
    await migrate(config.database_url)
    if prepare is not None:
        await prepare(int(config.listen.rpartition(":")[2]))


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    # A pidfd: readable once the process has exited.
    exited: int

    def close(self) -> None:
        os.close(self.exited)


class _Supervisor:
    def __init__(self, config: Config, metrics: WorkerMetrics | None) -> None:
        self._config = config
        self._metrics = metrics
        self._workers: dict[int, _Worker] = {}
        self._signals = 0
        self._last_signal = signal.SIGTERM
        self._crashes = CrashBudget(MAX_RESTARTS, RESTART_WINDOW)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        try:
            for index in range(self._config.workers):
                if self._signals:  # stopped while starting: _watch waits for those started
                    break
                self._start(index)
        except StartupError:
            self._stop_all()
            raise
        _log.info(
            "supervisor %d: %d workers on %s (role %s)",
            os.getpid(),
            self._config.workers,
            self._config.listen,
            self._config.role,
        )
        return self._watch()

    def _start(self, index: int) -> None:
        read_end, write_end = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-m", "pushhub_server.worker", str(os.getpid()), str(write_end)],
            stdin=subprocess.PIPE,
            pass_fds=(write_end,),
            start_new_session=True,
        )
        os.close(write_end)
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError), process.stdin:  # died at once: said below
            process.stdin.write(pickle.dumps(self._config))
        self._workers[index] = _Worker(index, process, os.pidfd_open(process.pid))
        with os.fdopen(read_end, "rb") as ready:
            said = ready.read().decode(errors="replace")  # until the worker serves, or exits
        if said != "ready" and not self._signals:
            process.wait()
            raise StartupError(said or f"worker {index} exited before serving ({_how(process)})")

    def _watch(self) -> int:
        while self._workers:
            exited, _, _ = select.select([w.exited for w in self._workers.values()], [], [])
            for worker in [w for w in self._workers.values() if w.exited in exited]:
                self._reap(worker)
                if not self._signals and not self._restart(worker):
                    self._stop_all()
                    return 1
        return 0 if self._signals < 2 else 128 + self._last_signal

    def _reap(self, worker: _Worker) -> None:
        worker.process.wait()
        self._exited(worker)
        del self._workers[worker.index]
        if not self._signals:
            pid, how = worker.process.pid, _how(worker.process)
            _log.error("worker %d (pid %d) %s", worker.index, pid, how)

    def _restart(self, worker: _Worker) -> bool:
        if not self._crashes.allow(time.monotonic()):
            _log.error("more than %d worker crashes within %.0f s: stopping", *self._crashes.limits)
            return False
        _log.warning("restarting worker %d", worker.index)
        try:
            self._start(worker.index)
        except StartupError as error:
            _log.error("worker %d cannot start again: %s", worker.index, error)
            return False
        _log.info(
            "worker %d serves again (pid %d)", worker.index, self._workers[worker.index].process.pid
        )
        return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The first signal drains the workers; a SIGINT then (Ctrl-C again) makes them
        exit at once. A repeated SIGTERM changes nothing: `timeout` and systemd send
        it to the process and to its group, two signals for one stop."""
        if self._signals and signum != signal.SIGINT:
            return
        self._signals += 1
        self._last_signal = signal.Signals(signum)
        if self._signals == 1:
            _log.info("stopping %d workers", len(self._workers))
        for worker in self._workers.values():
            worker.process.send_signal(signal.SIGTERM if self._signals == 1 else signal.SIGINT)

    def _stop_all(self) -> None:
        """Graceful, then waits: no worker outlives a supervisor that gives up."""
        self._signals = max(self._signals, 1)
        for worker in self._workers.values():
            worker.process.send_signal(signal.SIGTERM)
        for worker in list(self._workers.values()):
            worker.process.wait()
            self._exited(worker)
        self._workers.clear()

    def _exited(self, worker: _Worker) -> None:
        worker.close()
        if self._metrics is not None:  # a killed worker could not say it itself
            self._metrics.worker_exited(worker.process.pid)


class WorkerMetrics:
    """The workers record metrics in one PROMETHEUS_MULTIPROC_DIR; the supervisor
    serves their sum, so one scrape sees every worker, dead ones' counters included.

    The directory is the operator's when PROMETHEUS_MULTIPROC_DIR is set (kept, as
    it was found: prometheus-client wants it emptied before each start); else a
    fresh one of this process's own (metrics_directories.py), which it removes when
    it closes, and the next start removes if it could not."""

    def __init__(self, endpoint: MetricsEndpoint, owned: str | None) -> None:
        self.endpoint = endpoint
        self._owned = owned

    @classmethod
    def start(cls, listen: str) -> WorkerMetrics:
        """Raises StartupError in one line: a directory or address it cannot use."""
        from .observability.metrics_endpoint import (
            MULTIPROC_DIR_VARIABLE,
            MetricsEndpointError,
            serve_metrics,
            served_registry,
        )

        given = os.environ.get(MULTIPROC_DIR_VARIABLE)
        if given and not os.path.isdir(given):
            raise StartupError(f"{MULTIPROC_DIR_VARIABLE} {given!r} is not a directory")
        owned = None if given else str(claim_metrics_directory())
        if owned is not None:
            os.environ[MULTIPROC_DIR_VARIABLE] = owned  # the workers' Popen inherits it
        try:
            return cls(serve_metrics(listen, served_registry()), owned)
        except MetricsEndpointError as error:
            cls._forget(owned)
            raise StartupError(str(error)) from error
        except BaseException:
            cls._forget(owned)
            raise

    def worker_exited(self, pid: int) -> None:
        """Its live gauges (pushhub_runs_in_flight) leave the sum; its counters stay."""
        from .observability.metrics_endpoint import mark_process_dead

        mark_process_dead(pid)

    def close(self) -> None:
        self.endpoint.close()
        self._forget(self._owned)

    @staticmethod
    def _forget(owned: str | None) -> None:
        if owned is not None:
            from .observability.metrics_endpoint import MULTIPROC_DIR_VARIABLE

            os.environ.pop(MULTIPROC_DIR_VARIABLE, None)
            shutil.rmtree(owned, ignore_errors=True)


class CrashBudget:
    """Restarts allowed: at most `most` crashes within any `window` seconds."""

    def __init__(self, most: int, window: float) -> None:
        self.limits = (most, window)
        self._crashes: list[float] = []

    def allow(self, now: float) -> bool:
        """Counts a crash at `now`; False once it is one too many."""
        most, window = self.limits
        self._crashes = [at for at in self._crashes if now - at < window] + [now]
        return len(self._crashes) <= most


def _how(process: subprocess.Popen[bytes]) -> str:
    code = process.returncode
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"
