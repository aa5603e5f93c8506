"""Background extraction jobs: one worker process per job, polled without blocking.

The caller (Slicer widget, console, headless script) builds a job from arrays, never from MRML
nodes: :func:`start_extraction` writes the inputs to a temporary job folder and starts the
worker (:mod:`.worker_process`, the same entry point as the batch pool's workers:
``python -m PySERASlicerLib.worker <folder>``). The worker appends progress events (JSON
lines) to ``progress.jsonl``, writes ``result.json`` when done and its stderr to ``worker.log``.

* :meth:`Job.poll` never blocks: it reads new progress lines and checks the process.
* :meth:`Job.wait` blocks (console, headless Slicer, tests).
* :meth:`Job.cancel` ends the worker's whole process tree (in Slicer: the PythonSlicer launcher
  and the ``python-real`` it started).

The temporary folder is removed once the result is collected, on cancel and on failure.
Files instead of pipes keep the GUI side free of threads and pipe-buffer dead-locks.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .image import Image
from .io.types import MaskData
from .settings import Settings
from .worker_files import read_new_lines, write_json
from .worker_process import WorkerProcess, exit_description, remove_folder, worker_python


class JobError(RuntimeError):
    """The worker failed; the message carries the worker's traceback."""


class JobCancelled(RuntimeError):
    """The job was cancelled before it finished."""


@dataclass
class JobProgress:
    """What :meth:`Job.poll` reports."""

    state: str  # "running", "finished", "failed", "cancelled"
    done: int = 0  # ROIs (single case) or cases (batch) finished
    total: int = 0
    message: str = ""
    elapsed: float = 0.0
    events: List[Dict[str, Any]] = field(default_factory=list)  # new events since the last poll

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass
class JobResult:
    """Rows (PatientID, ROI, features...), Report entries and errors of a finished job."""

    rows: List[Dict[str, Any]]
    report: List[Dict[str, str]]
    error: str = ""
    seconds: float = 0.0
    outputs: Dict[str, Any] = field(default_factory=dict)

    def frame(self):
        from .export import features_frame

        return features_frame(self.rows)


def default_python() -> str:
    """Interpreter for workers (see :func:`.worker_process.worker_python`)."""
    return worker_python()


class Job:
    """A running worker process and its job folder."""

    def __init__(self, folder: Path, python: Optional[str] = None, env: Optional[Dict[str, str]] = None):
        self.folder = Path(folder)
        self.started = time.monotonic()
        self._offset = 0
        self._done = 0
        self._total = 0
        self._message = "starting"
        self._result: Optional[JobResult] = None
        self._state = "running"
        self.process = WorkerProcess(self.folder, python, env)

    # -- polling --------------------------------------------------------------------------------
    def _read_events(self) -> List[Dict[str, Any]]:
        events, self._offset = read_new_lines(self.folder / "progress.jsonl", self._offset)
        for event in events:
            if "total" in event:
                self._total = event["total"]
            if "done" in event:
                self._done = event["done"]
            if "message" in event:
                self._message = event["message"]
        return events

    def poll(self) -> JobProgress:
        """Non-blocking status; collects the result when the worker has exited."""
        if self._state != "running":
            return JobProgress(self._state, self._done, self._total, self._message, self.elapsed)
        events = self._read_events()
        code = self.process.poll()
        if code is not None:
            events += self._read_events()
            self._finish(code)
        return JobProgress(self._state, self._done, self._total, self._message, self.elapsed, events)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def running(self) -> bool:
        return self.poll().state == "running"

    def wait(self, timeout: Optional[float] = None,
             on_progress: Optional[Callable[[JobProgress], None]] = None, interval: float = 0.1) -> JobResult:
        """Block until the worker ends; return its result or raise JobError / JobCancelled /
        TimeoutError (the worker is killed on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progress = self.poll()
            if on_progress and (progress.events or progress.state != "running"):
                on_progress(progress)
            if progress.state != "running":
                return self.result()
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"extraction job did not finish within {timeout} s; worker killed")
            time.sleep(interval)

    def result(self) -> JobResult:
        if self._state == "running":
            raise RuntimeError("job still running; poll() or wait() first")
        if self._state == "cancelled":
            raise JobCancelled("extraction job was cancelled")
        if self._state == "failed":
            raise JobError(self._message)
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        """End the worker's process tree at once and remove the job folder."""
        if self._state != "running":
            return
        self.process.kill_tree()
        self._state = "cancelled"
        self._message = "cancelled"
        self._cleanup()

    # -- internals ------------------------------------------------------------------------------
    def _finish(self, code: int) -> None:
        result_path = self.folder / "result.json"
        if code == 0 and result_path.exists():
            with open(result_path, encoding="utf-8") as handle:
                data = json.load(handle)
            self._result = JobResult(data["rows"], data["report"], data.get("error", ""), data.get("seconds", 0.0),
                                     data.get("outputs", {}))
            self._state = "finished"
            self._message = "finished"
        else:
            self._state = "failed"
            how = f"exited with code {code}" if code >= 0 else f"was {exit_description(code)}"
            self._message = f"worker {how}:\n{self.process.log_tail()}"
        self._cleanup()

    def _cleanup(self) -> None:
        self.process.kill_tree()  # whatever the worker left (a launcher's child, a pool) ends too
        remove_folder(self.folder)

    def __del__(self):  # never leave a worker running, or its folder, behind a forgotten job
        try:
            if self._state == "running":
                self._cleanup()
        except Exception:
            pass


def _new_job_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="pysera_job_"))


def start_extraction(image: Image, masks: MaskData, settings: Settings, case_id: str = "case",
                     python: Optional[str] = None, env: Optional[Dict[str, str]] = None) -> Job:
    """Start one case (an image and its ROI masks) in a worker process."""
    folder = _new_job_folder()
    arrays = {"image": np.ascontiguousarray(image.array)}
    names = list(masks.named)
    for index, name in enumerate(names):
        arrays[f"roi_{index}"] = np.packbits(np.asarray(masks.named[name], dtype=bool), axis=None)
    if masks.labels is not None:
        arrays["labels"] = masks.labels
    np.savez(folder / "inputs.npz", **arrays)
    job = {
        "kind": "case",
        "case_id": case_id,
        "geometry": {"spacing": list(image.spacing), "origin": list(image.origin),
                     "direction": np.asarray(image.direction).tolist(), "modality": image.modality,
                     "source": image.source},
        "roi_names": names,
        "settings": settings.to_dict(),
    }
    write_json(folder / "job.json", job)
    return Job(folder, python, env)


def start_batch(image_input: Optional[str], mask_input: Optional[str], output_path: str, settings: Settings,
                python: Optional[str] = None, env: Optional[Dict[str, str]] = None, **batch_options) -> Job:
    """Run ``process_batch`` on folders/files in a worker process (GUI batch section)."""
    folder = _new_job_folder()
    write_json(folder / "job.json", {
        # None stays None: process_batch(cases_csv=...) takes no image/mask input
        "kind": "batch", "image_input": None if image_input is None else str(image_input),
        "mask_input": None if mask_input is None else str(mask_input),
        "output_path": str(output_path), "settings": settings.to_dict(), "options": batch_options,
    })
    return Job(folder, python, env)
