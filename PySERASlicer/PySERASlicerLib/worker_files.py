"""The files a worker and its parent exchange (see :mod:`.worker` for who writes what).

Below both sides: :mod:`.worker` (the worker process), :mod:`.pool` and :mod:`.jobs` (the
parent) import these names from here, not from each other. Every file is written to a
temporary name and renamed, so a reader never sees half a file; event files are appended one
JSON line at a time and read up to their last complete line.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

#: Name of the file, in a worker's folder, holding the pid of the real worker process.
PID_FILE = "pid.txt"
#: Name start of a pool's temporary folder (it holds one ``worker_<n>`` folder per worker).
POOL_FOLDER_PREFIX = "pysera_pool_"
#: Name of the file, in a worker's folder, receiving its stdout and stderr.
LOG_FILE = "worker.log"
#: Name of the file, in a forked worker's folder, where the fork server writes its exit status.
EXIT_FILE = "exit_status.txt"


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Write through a temporary file: readers never see a half-written file."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, default=_json_value)
    os.replace(temporary, path)


def write_pickle(path: Path, value: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(temporary, path)


def read_pickle(path: Path) -> Any:
    with open(path, "rb") as handle:
        return pickle.load(handle)


def _json_value(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class EventWriter:
    """Appends one JSON object per line; flushed at once so the parent sees it while we work."""

    def __init__(self, path: Path):
        self.handle = open(path, "a", encoding="utf-8")
        self.done = 0
        self.total = 0

    def emit(self, **event: Any) -> None:
        event["time"] = time.time()
        self.handle.write(json.dumps(event, default=_json_value) + "\n")
        self.handle.flush()

    def progress(self, **event: Any) -> None:
        """A job progress event (carries ``done`` / ``total``)."""
        event.setdefault("done", self.done)
        event.setdefault("total", self.total)
        self.emit(**event)


def read_new_lines(path: Path, offset: int):
    """``(events, new offset)``: the complete JSON lines of ``path`` after byte ``offset``; a
    half-written last line waits for the next call."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    complete = data[: data.rfind(b"\n") + 1]
    events = [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]
    return events, offset + len(complete)


def task_path(folder: Path, number: int) -> Path:
    return folder / f"task_{number}.pkl"


def result_path(folder: Path, number: int) -> Path:
    return folder / f"result_{number}.pkl"


def read_worker_pid(folder: Path) -> Optional[int]:
    """The pid a worker wrote to ``pid.txt`` in its folder (``python-real`` behind a launcher),
    None before it did."""
    try:
        return int((folder / PID_FILE).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def read_log_tail(folder: Path, limit: int = 4000) -> str:
    """The last ``limit`` characters of a worker's ``worker.log``."""
    try:
        return (folder / LOG_FILE).read_text(encoding="utf-8", errors="replace").strip()[-limit:]
    except OSError:
        return ""


def fork_request_path(folder: Path, number: int) -> Path:
    """Request ``number`` to a fork server (its folder): the worker folder and environment."""
    return folder / f"fork_{number}.json"


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(pid, 0) said it exists
