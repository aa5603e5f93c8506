"""Worker process entry point: ``python -m PySERASlicerLib.worker <folder> [--parent-pid PID]``.

The one way work leaves the calling process (:mod:`.worker_process` starts it). Everything
goes through files in ``<folder>``, so the worker needs no pipe or inherited descriptor and
runs the same behind Slicer's PythonSlicer launcher. ``job.json`` says what to do:

* ``case`` / ``batch`` (a :class:`~PySERASlicerLib.jobs.Job`): read the inputs (``inputs.npz``),
  append progress events to ``progress.jsonl``, write ``result.json``;
* ``pool`` (a worker of :mod:`.pool`): run the cases the parent writes as ``task_<n>.pkl``
  one after another, append events to ``events.jsonl`` and write ``result_<n>.pkl`` each;
  leave after ``max_tasks`` cases (an idle worker no longer needed is killed).

The worker writes its pid to ``pid.txt`` and exits as soon as its parent process is gone
(``--parent-pid``), so a killed script or Slicer leaves no worker computing. Plain Python: no
slicer, no qt, no MRML. An uncaught exception ends the process with a traceback on stderr
(``worker.log``), which the parent reports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from .image import Image
from .io.types import MaskData
from .settings import Settings
from .worker_files import (
    EXIT_FILE,
    LOG_FILE,
    PID_FILE,
    POOL_FOLDER_PREFIX,
    EventWriter,
    fork_request_path,
    process_running,
    read_pickle,
    result_path,
    task_path,
    write_json,
    write_pickle,
)

#: Seconds between two looks for the parent process and for the next task file.
PARENT_CHECK_INTERVAL = 0.5
TASK_POLL_INTERVAL = 0.002
#: Exit status of a worker whose parent died.
EXIT_ORPHANED = 3


# ---------------------------------------------------------------------------------------------
# The parent watch
# ---------------------------------------------------------------------------------------------
def parent_alive_check(pid: int) -> Callable[[], bool]:
    """A function telling whether process ``pid`` still runs.

    Linux: a pidfd (immune to pid reuse) or ``/proc/<pid>/stat`` (a zombie counts as gone);
    other POSIX: ``kill(pid, 0)``; Windows: a process handle opened now, asked for its exit.
    """
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.OpenProcess.restype = ctypes.c_void_p
        kernel32.WaitForSingleObject.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        synchronize = 0x00100000
        handle = kernel32.OpenProcess(synchronize, False, pid)
        if not handle:
            return lambda: False
        return lambda: kernel32.WaitForSingleObject(handle, 0) != 0  # 0 = WAIT_OBJECT_0: it exited
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return lambda: False
        except OSError:
            pidfd = None
        if pidfd is not None:
            import select

            return lambda: not select.select([pidfd], [], [], 0)[0]  # readable once it exited

    return lambda: process_running(pid)


def remove_orphaned_folder(folder: Path) -> None:
    """Remove the files of a worker whose parent died (nobody will read them) and, once no other
    worker of its pool is left, the pool's folder."""
    shutil.rmtree(folder, ignore_errors=True)
    pool_root = folder.parent
    if pool_root.name.startswith(POOL_FOLDER_PREFIX) and not any(pool_root.glob("worker_*")):
        shutil.rmtree(pool_root, ignore_errors=True)


def watch_parent(pid: int, folder: Path, interval: float = PARENT_CHECK_INTERVAL) -> None:
    """End this process (at once, from a daemon thread) when process ``pid`` is gone, removing
    the files nobody will read: ``folder`` and, for the last worker of a pool, the pool's folder."""
    alive = parent_alive_check(pid)

    def watch() -> None:
        while alive():
            time.sleep(interval)
        remove_orphaned_folder(folder)
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="pysera-parent-watch", daemon=True).start()


# ---------------------------------------------------------------------------------------------
# Jobs (jobs.Job)
# ---------------------------------------------------------------------------------------------
def run_case_job(folder: Path, job: Dict[str, Any], progress: EventWriter) -> Dict[str, Any]:
    from .case_extraction import extract_case
    from .cases import Case
    from .rois import discover_rois

    settings = Settings.from_dict(job["settings"])
    with np.load(folder / "inputs.npz") as inputs:
        image_array = inputs["image"]
        geometry = job["geometry"]
        image = Image(image_array, geometry["spacing"], geometry["origin"], np.array(geometry["direction"]),
                      modality=geometry.get("modality", "OTHER"), source=geometry.get("source", ""))
        size = image_array.size
        named = {
            name: np.unpackbits(inputs[f"roi_{index}"], count=size).astype(bool).reshape(image_array.shape)
            for index, name in enumerate(job["roi_names"])
        }
        labels = inputs["labels"] if "labels" in inputs.files else None
    masks = MaskData(labels=labels, named=named)
    progress.total = len(discover_rois(masks, settings.rois).rois)
    progress.progress(event="start", message=f"{progress.total} ROI(s) to extract")

    def on_roi(flag: str, case_id: str, roi: str) -> None:
        if flag == "END":
            progress.done += 1
        progress.progress(event=f"roi_{flag.lower()}", roi=roi,
                          message=f"{roi}: {'done' if flag == 'END' else 'started'}")

    def on_step(roi: str, step: str) -> None:
        progress.progress(event="step", roi=roi, step=step, message=f"{roi}: {step}")

    result = extract_case(Case(job["case_id"], image, masks), settings, callback=on_roi, on_step=on_step)
    return {"rows": result.rows, "report": [e.as_row() for e in result.entries], "error": result.error,
            "seconds": result.seconds}


def run_batch_job(job: Dict[str, Any], progress: EventWriter) -> Dict[str, Any]:
    from .api import process_batch

    settings = Settings.from_dict(job["settings"])
    progress.progress(event="start", message="batch started")

    def on_roi(flag: str, case_id: str, roi: str) -> None:
        if flag == "END":
            progress.done += 1
        progress.progress(event=f"roi_{flag.lower()}", case=case_id, roi=roi, message=f"{case_id} / {roi}")

    result = process_batch(job["image_input"], job["mask_input"], job["output_path"], settings=settings,
                           callback_fn=on_roi, **job.get("options", {}))
    frame = result["features_extracted"]
    rows = frame.to_dict(orient="records") if len(frame) else []
    return {"rows": rows, "report": [], "error": result["error"] or "", "seconds": result["processing_time"],
            "outputs": {"excel_path": result["excel_path"], "csv_path": result["csv_path"],
                        "processed_files": result["processed_files"], "logs": result["logs"]}}


def run_job(folder: Path, job: Dict[str, Any]) -> int:
    progress = EventWriter(folder / "progress.jsonl")
    if job["kind"] == "case":
        result = run_case_job(folder, job, progress)
    else:
        result = run_batch_job(job, progress)
    write_json(folder / "result.json", result)
    progress.progress(event="finished", message="finished")
    return 0


# ---------------------------------------------------------------------------------------------
# Pool workers (pool.run_cases)
# ---------------------------------------------------------------------------------------------
def _take_task(folder: Path, number: int, longest_wait: float = 0.05) -> Tuple[int, Any]:
    """Task ``number`` once the parent has written it: ``(case index, case)``; the file is removed
    (the parent ends an idle worker it no longer needs)."""
    path = task_path(folder, number)
    delay = TASK_POLL_INTERVAL
    while not path.exists():
        time.sleep(delay)
        delay = min(delay * 1.5, longest_wait)  # an idle worker looks less often
    task = read_pickle(path)
    path.unlink()
    return task


class _TaskAhead:
    """Task ``number`` taken, and its image (and a plain mask file) read, in a helper thread while
    this worker extracts the case before it (a daemon thread: it may wait for a task that never
    comes).

    Reading is a third of a small case (decompressing a NIfTI .gz; zlib and SimpleITK release the
    GIL), which the in-process loop already hides the same way (:func:`.pool.run_cases`). A read
    error is raised by :func:`~.case_extraction.extract_case`, as an inline read's would be."""

    #: The helper looks for the task this often at most: it is due while the current case runs.
    LONGEST_WAIT = 0.005

    def __init__(self, folder: Path, number: int, settings: Settings):
        from .case_extraction import InputsAhead

        self.number = number
        self._taken = threading.Event()
        self._task: Optional[Tuple[int, Any]] = None
        self._task_error: Optional[BaseException] = None
        self.inputs = InputsAhead()
        threading.Thread(target=self._run, args=(folder, settings), name="pysera-next-task", daemon=True).start()

    def _run(self, folder: Path, settings: Settings) -> None:
        from .case_extraction import read_case_inputs

        try:
            self._task = _take_task(folder, self.number, self.LONGEST_WAIT)
        except BaseException as exc:  # noqa: BLE001 - raised in the worker's own thread by task()
            self._task_error = exc
            return
        finally:
            self._taken.set()
        read_case_inputs(self._task[1], settings, self.inputs)

    def task(self) -> Tuple[int, Any]:
        self._taken.wait()
        if self._task_error is not None:
            raise self._task_error
        return self._task


def run_pool_worker(folder: Path, job: Dict[str, Any]) -> int:
    """Run the parent's cases one by one (see the module docstring for the files)."""
    from .case_extraction import extract_case
    from .settings import ExtractionMode

    settings: Settings = read_pickle(folder / "settings.pkl")
    threads = job.get("threads", 0)
    if threads and settings.extraction_mode == ExtractionMode.DEEP:
        from .engine.deep import DeepDependencyError, import_torch

        try:
            import_torch()[0].set_num_threads(threads)
        except DeepDependencyError:
            pass  # each case then reports the missing dependency with its own clear message
    events = EventWriter(folder / "events.jsonl")
    max_tasks = job.get("max_tasks")
    number = 0
    ahead: Optional[_TaskAhead] = None
    while not max_tasks or number < max_tasks:
        if ahead is not None:
            (index, case), inputs_ahead = ahead.task(), ahead.inputs
        else:
            (index, case), inputs_ahead = _take_task(folder, number), None
        events.emit(kind="start", index=index, pid=os.getpid())
        # the next task's image is read meanwhile; not during the first case, which imports the
        # readers and the engine's lazy modules alone (see case_extraction.read_inputs_ahead)
        more = not max_tasks or number + 1 < max_tasks
        ahead = _TaskAhead(folder, number + 1, settings) if number >= 1 and more else None

        def on_roi(flag: str, case_id: str, roi: str, _index: int = index) -> None:
            events.emit(kind="roi", index=_index, flag=flag, case_id=case_id, roi=roi)

        result = extract_case(case, settings, on_roi, inputs_ahead=inputs_ahead)
        write_pickle(result_path(folder, number), result)
        events.emit(kind="done", index=index, number=number)
        number += 1
    return 0


# ---------------------------------------------------------------------------------------------
# The fork server (Linux: pool workers forked from one process that has imported the engine)
# ---------------------------------------------------------------------------------------------
#: What every case needs, imported once by the fork server instead of by each worker.
FORK_SERVER_PRELOAD = ("gzip", "scipy.ndimage", "scipy.spatial", "scipy.sparse.csgraph", "SimpleITK",
                       "PySERASlicerLib.case_extraction", "PySERASlicerLib.io.readers",
                       "PySERASlicerLib.engine.pipeline",
                       "PySERASlicerLib.engine.features.marching_cubes_cases")  # 45 ms of tables


def run_fork_server(folder: Path, parent_pid: Optional[int]) -> int:
    """Import the engine once, then fork one pool worker per request file (``fork_<n>.json``:
    the worker's folder and environment), reap them and write each one's exit status into its
    folder (the pool's parent cannot wait for a grandchild). Leaves when its parent is gone,
    killing its workers. Single-threaded: a fork copies only the calling thread, so no other
    thread may hold a lock at that moment."""
    import importlib

    from .engine.registry import all_specs
    from .io.readers import whole_gzip_decoder

    for name in FORK_SERVER_PRELOAD:
        importlib.import_module(name)
    all_specs()  # every family module
    whole_gzip_decoder()  # libdeflate, where installed
    parent_alive = parent_alive_check(parent_pid) if parent_pid is not None else (lambda: True)
    children: Dict[int, Path] = {}
    number, delay, next_parent_check = 0, TASK_POLL_INTERVAL, 0.0
    while True:
        request = fork_request_path(folder, number)
        if request.exists():
            with open(request, encoding="utf-8") as handle:
                spec = json.load(handle)
            request.unlink()
            sys.stdout.flush()
            sys.stderr.flush()
            server = os.getpid()
            pid = os.fork()
            if pid == 0:
                _run_forked_worker(Path(spec["folder"]), spec["env"], parent_pid, server)  # never returns
            children[pid] = Path(spec["folder"])
            try:  # at once, so that the parent can kill a worker that has not started yet
                (children[pid] / PID_FILE).write_text(str(pid), encoding="ascii")
            except OSError:
                pass
            number, delay = number + 1, TASK_POLL_INTERVAL
            continue
        _reap(children)
        if time.monotonic() >= next_parent_check:
            if not parent_alive():
                for pid, child_folder in children.items():
                    _kill_quietly(pid)
                    os.waitpid(pid, 0)
                    shutil.rmtree(child_folder, ignore_errors=True)
                remove_orphaned_folder(folder)
                os._exit(EXIT_ORPHANED)
            next_parent_check = time.monotonic() + PARENT_CHECK_INTERVAL
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)


def _reap(children: Dict[int, Path]) -> None:
    """Collect the workers that ended and record each one's exit status in its folder."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        folder = children.pop(pid, None)
        if folder is not None:
            try:
                write_json(folder / EXIT_FILE, {"returncode": os.waitstatus_to_exitcode(status)})
            except OSError:
                pass  # the parent already removed the folder


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _die_with_the_fork_server(server: int) -> None:
    """Linux's parent-death signal: should the fork server (pid ``server``) be killed, its
    workers get SIGKILL at once (their own watch looks at the pool's parent, which may still run)."""
    import ctypes

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (AttributeError, OSError):  # a C library without prctl: the pool's parent watch remains
        return
    if os.getppid() != server:  # it died before the call
        os._exit(EXIT_ORPHANED)


def _run_forked_worker(folder: Path, environment: Dict[str, str], parent_pid: Optional[int], server: int) -> None:
    """The forked child: its own log and parent watch, then the pool worker's loop; never
    returns into the fork server's loop."""
    code = 1
    try:
        _die_with_the_fork_server(server)
        log = os.open(folder / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.update(environment)
        if parent_pid is not None:
            watch_parent(parent_pid, folder)
        with open(folder / "job.json", encoding="utf-8") as handle:  # pid.txt: the server wrote it
            code = run_pool_worker(folder, json.load(handle))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported in the worker's log, which the parent shows
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


# ---------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parent_pid = None
    if len(argv) == 3 and argv[1] == "--parent-pid" and argv[2].isdigit():
        parent_pid = int(argv[2])
        argv = argv[:1]
    if len(argv) != 1:
        print("usage: python -m PySERASlicerLib.worker <folder> [--parent-pid PID]", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    # Ctrl-C belongs to the parent, which ends the workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(folder / "job.json", encoding="utf-8") as handle:
        job = json.load(handle)
    (folder / PID_FILE).write_text(str(os.getpid()), encoding="ascii")
    if job["kind"] == "fork_server":  # starts no thread: it forks
        return run_fork_server(folder, parent_pid)
    if parent_pid is not None:
        watch_parent(parent_pid, folder)
    if job["kind"] == "pool":
        return run_pool_worker(folder, job)
    if job["kind"] in ("case", "batch"):
        return run_job(folder, job)
    raise ValueError(f"unknown job kind {job['kind']!r}")


if __name__ == "__main__":
    sys.exit(main())
