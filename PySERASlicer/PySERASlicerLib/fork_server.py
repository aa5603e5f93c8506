"""Pool workers forked from a fork server (Linux): the parent side.

A fresh worker spends about half a second importing numpy, scipy, SimpleITK and the engine
before its first case, and on a machine with few cores the workers of a pool import at the
same time, competing for the cores. On Linux the pool therefore starts one *fork server*, a
worker process like any other (``python -m PySERASlicerLib.worker``, started by
:class:`~.worker_process.WorkerProcess`, so it works behind Slicer's launcher), which imports
all that once and forks each pool worker from itself: a worker is ready in milliseconds, also
the successors started after ``max_tasks_per_child`` cases. The forked workers run the same
loop and files as spawned ones (:mod:`.worker`); the server reaps them and writes each exit
status into the worker's folder, so a killed worker still becomes a Report row with its signal.

Forked workers stay in the server's process group: ending the server's tree (Cancel, the
pool's end, a killed parent) ends them too. macOS and Windows, where forking a process that has
loaded system frameworks is unsafe or impossible, start every worker fresh;
``PYSERA_WORKER_START=spawn`` does so on Linux too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional

from .runlog import LOGGER
from .worker_files import EXIT_FILE, fork_request_path, process_running, read_log_tail, read_worker_pid, write_json
from .worker_process import WorkerProcess, exit_description

#: Environment variable choosing how pool workers start: ``fork`` (the default on Linux) or
#: ``spawn`` (every worker a fresh interpreter; the only way on macOS and Windows).
START_VARIABLE = "PYSERA_WORKER_START"
START_METHODS = ("fork", "spawn")


def fork_server_wanted() -> bool:
    """Whether pool workers are forked from a fork server here (see the module docstring)."""
    method = os.environ.get(START_VARIABLE, "").strip().lower() or "fork"
    if method not in START_METHODS:
        raise ValueError(f"{START_VARIABLE}: {method!r} is not valid; accepted values: {', '.join(START_METHODS)}")
    return method == "fork" and sys.platform.startswith("linux")


class ForkServer:
    """The fork server of one pool, in ``root/fork_server``."""

    def __init__(self, root: Path):
        self.folder = Path(root) / "fork_server"
        self.folder.mkdir()
        write_json(self.folder / "job.json", {"kind": "fork_server"})
        self.process = WorkerProcess(self.folder)
        self.requests = 0
        self._death_reported = False

    def running(self) -> bool:
        """True while the server runs; the first time it is found gone, its log is reported
        (the pool then starts its workers fresh)."""
        if self.process.poll() is None:
            return True
        if not self._death_reported:
            self._death_reported = True
            LOGGER.warning(f"the pool's fork server ended ({exit_description(self.process.returncode)}); "
                           f"further workers start fresh. Its log:\n{self.process.log_tail(2000)}")
        return False

    def start(self, folder: Path, environment: Dict[str, str]) -> ForkedWorker:
        """Ask for a worker working in ``folder`` (its job files written) with ``environment``
        added to the server's."""
        request = fork_request_path(self.folder, self.requests)
        write_json(request, {"folder": str(folder), "env": environment})
        self.requests += 1
        return ForkedWorker(Path(folder), self, request)

    def close(self) -> None:
        """End the server and every worker still forked from it."""
        self.process.kill_tree()


class ForkedWorker:
    """The parent's handle on a forked worker, with :class:`~.worker_process.WorkerProcess`'s
    interface (``poll``, ``returncode``, ``wait``, ``kill_tree``, ``log_tail``, ``pid``)."""

    def __init__(self, folder: Path, server: ForkServer, request: Path):
        self.folder = folder
        self.server = server
        self.request = request
        self.returncode: Optional[int] = None

    @property
    def pid(self) -> Optional[int]:
        return self.reported_pid()

    def reported_pid(self) -> Optional[int]:
        return read_worker_pid(self.folder)

    def poll(self) -> Optional[int]:
        if self.returncode is not None:
            return self.returncode
        try:
            self.returncode = int(json.loads((self.folder / EXIT_FILE).read_text(encoding="utf-8"))["returncode"])
            return self.returncode
        except (OSError, ValueError, KeyError, TypeError):
            pass
        pid = self.reported_pid()
        if pid is not None and process_running(pid):
            return None
        if self.server.process.poll() is None:
            return None  # not forked yet, or ended a moment ago: the server writes its status
        # the server is gone and nobody will write this worker's status: it ended with the server
        self.returncode = self.server.process.returncode
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"forked worker in {self.folder}", timeout)
            time.sleep(0.005)
        return self.returncode

    def kill_tree(self) -> None:
        """SIGKILL the worker (a pool worker starts no process of its own) and wait for the
        server to record its end. A request the server has not taken yet is withdrawn."""
        if self.poll() is not None:
            return
        try:
            self.request.unlink()
            self.returncode = -signal.SIGKILL  # withdrawn: never started
            return
        except FileNotFoundError:
            pass  # taken: the server writes the pid right after the fork
        deadline = time.monotonic() + 10
        killed = False
        while self.poll() is None and time.monotonic() < deadline:
            pid = self.reported_pid()
            if pid is not None and not killed:  # once: after the reaping the pid may be reused
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                killed = True
            time.sleep(0.005)

    def close(self) -> None:
        """Nothing to release (the server holds the process)."""

    def log_tail(self, limit: int = 4000) -> str:
        return read_log_tail(self.folder, limit)
