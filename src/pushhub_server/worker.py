"""One worker of `pushhub serve --workers N`: a whole server, started by supervisor.py.

    python -m pushhub_server.worker SUPERVISOR_PID READY_FD  < pickled Config

It writes "ready" to READY_FD once it serves, or the one line that says why it
cannot start, and dies with its supervisor.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import signal
import sys
from typing import BinaryIO

from .config import Config
from .core.errors import PushHubError
from .listener import StartupError
from .server import RunningServer, serve

_PR_SET_PDEATHSIG = 1


def main() -> None:
    supervisor, ready_fd = int(sys.argv[1]), int(sys.argv[2])
    _die_with(supervisor)
    config: Config = pickle.load(sys.stdin.buffer)
    logging.basicConfig(level=config.log_level.upper(), format="%(message)s")
    ready: BinaryIO = os.fdopen(ready_fd, "wb")

    async def serving(running: RunningServer) -> None:
        ready.write(b"ready")
        ready.close()

    try:
        # Only the supervisor's SIGINT ends a drain early: a SIGTERM may come twice,
        # from the supervisor and from a service manager signalling the whole group.
        # Metrics go to PROMETHEUS_MULTIPROC_DIR; the supervisor serves their sum.
        serve(
            config,
            on_start=serving,
            exit_now_on=(signal.SIGINT,),
            serve_metrics_endpoint=False,
        )
    except PushHubError as error:
        _fail(ready, error.message)
    except StartupError as error:
        _fail(ready, str(error))


def _die_with(supervisor: int) -> None:
    """SIGTERM (a graceful stop) when the supervisor dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before prctl: nobody would tell us
        sys.exit(1)


def _fail(ready: BinaryIO, message: str) -> None:
    if not ready.closed:  # else it served first, and the supervisor reports the exit
        ready.write(message.encode())
    sys.exit(1)


if __name__ == "__main__":
    main()
