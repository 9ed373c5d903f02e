"""The fuzz suite's server: tests.fuzz.server_main in a child process, restartable."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0


class FuzzServer:
    """Starts the server process, reads its port, kills and restarts it when it is sick.

    Its stderr (the server's WARNING+ log, unhandled-error tracebacks included)
    goes to `log_path`; `log_since(offset)` returns what was logged after an offset.
    """

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.port = 0
        # The server's frozen ManualClock: a run due later than this never starts.
        self.now: datetime | None = None
        self.started_at = 0.0
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.fuzz.server_main", self.database_url],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=subprocess.PIPE,  # closed when this process dies: the server stops
                stdout=subprocess.PIPE,
                stderr=log,
            )
        finally:
            log.close()
        ready = json.loads(self._first_line())
        self.port = ready["port"]
        self.now = datetime.fromisoformat(ready["now"])
        self.started_at = time.monotonic()

    def _first_line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            if not selector.select(STARTUP_SECONDS):
                self.kill()
                raise RuntimeError(f"the fuzz server did not start; see {self.log_path}")
        line = self._process.stdout.readline().decode()
        if not line:
            raise RuntimeError(f"the fuzz server exited at start; see {self.log_path}")
        return line

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def kill(self) -> None:
        """SIGKILL: a server stuck in a regex does not answer SIGTERM."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait(timeout=30)
            self._close_pipes()
        self._process = None

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._close_pipes()
        self._process = None

    def _close_pipes(self) -> None:
        assert self._process is not None
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()

    def log_offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int, max_lines: int = 40) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        if len(lines) > max_lines:
            lines = [f"... {len(lines) - max_lines} earlier lines ...", *lines[-max_lines:]]
        return "\n".join(lines)
