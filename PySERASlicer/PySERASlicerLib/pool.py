"""Running cases: serially in this process, or in a pool of worker processes.

Pool workers are started by :class:`~.worker_process.WorkerProcess` as
``python -m PySERASlicerLib.worker`` (never by re-importing the caller's ``__main__``) or, on
Linux, forked from one such process that has imported the engine (:mod:`.fork_server`), and
talk to the parent through files in a temporary folder per worker (:mod:`.worker`): the parent
writes ``task_<n>.pkl``, the worker appends events to ``events.jsonl`` and writes
``result_<n>.pkl``. A case that raises, runs past ``case_timeout`` or kills its worker becomes
an error result (Report rows) while the others finish; results come back in case order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Union

from .case_extraction import Callback, CaseResult, extract_case, read_inputs_ahead
from .cases import Case
from .fork_server import ForkedWorker, ForkServer, fork_server_wanted
from .runlog import LOGGER, ReportEntry, RunLog
from .settings import DEFAULT_MAX_TASKS_PER_CHILD, Settings
from .worker_files import (
    POOL_FOLDER_PREFIX,
    read_new_lines,
    read_pickle,
    result_path,
    task_path,
    write_pickle,
)
from .worker_process import WorkerProcess, exit_description, remove_folder

#: progress_fn(event) with event a dict: {"event": "case_start"|"case_end", "case_id", "index", ...}.
ProgressFn = Optional[Callable[[Dict[str, Any]], None]]
#: Seconds the parent sleeps between two looks at its workers' event files: short right after
#: something happened (a finished case is answered at once), growing to the longest when quiet.
POLL_INTERVALS = (0.002, 0.02)


def worker_count(settings: Settings, n_cases: int) -> int:
    if not settings.enable_parallelism or n_cases <= 1:
        return 1
    wanted = (os.cpu_count() or 1) if settings.num_workers == "auto" else int(settings.num_workers)
    return max(1, min(wanted, n_cases))


class _PoolWorker:
    """The parent's view of one pool worker: its folder, its process, the cases it holds (the
    first one running, at most one more waiting in its folder)."""

    def __init__(self, root: Path, number: int, settings_file: Path, max_tasks: Optional[int], threads: int,
                 fork_server: Optional[ForkServer] = None):
        from .engine.pipeline import ROI_THREADS_ENV

        self.folder = root / f"worker_{number:03d}"
        self.folder.mkdir()
        shutil.copyfile(settings_file, self.folder / "settings.pkl")
        with open(self.folder / "job.json", "w", encoding="utf-8") as handle:
            json.dump({"kind": "pool", "max_tasks": max_tasks, "threads": threads}, handle)
        self.max_tasks = max_tasks
        # threads per ROI: the cores this worker's siblings leave it (the engine uses at most 2)
        roi_threads = {} if ROI_THREADS_ENV in os.environ else {ROI_THREADS_ENV: str(min(2, threads))}
        self.process: Union[WorkerProcess, ForkedWorker]
        if fork_server is not None and fork_server.running():
            self.process = fork_server.start(self.folder, roi_threads)
        else:
            self.process = WorkerProcess(self.folder, env={**os.environ, **roi_threads})
        self.held: Deque[int] = deque()
        self.started = 0.0  # when the running case started
        self.running: Optional[int] = None  # the case the worker said it started
        self.sent = 0
        self.offset = 0

    @property
    def idle(self) -> bool:
        return not self.held

    @property
    def index(self) -> Optional[int]:
        """The case running (or about to start), None when idle."""
        return self.held[0] if self.held else None

    @property
    def exhausted(self) -> bool:
        return bool(self.max_tasks) and self.sent >= self.max_tasks

    def send(self, index: int, case: Case) -> None:
        write_pickle(task_path(self.folder, self.sent), (index, case))
        if not self.held:
            self.started = time.monotonic()
        self.held.append(index)
        self.sent += 1

    def take_back(self) -> List[int]:
        """The cases sent but not started (a worker being stopped), in order."""
        waiting = list(self.held)[1:]
        while len(self.held) > 1:
            self.held.pop()
        return waiting

    def events(self) -> List[Dict[str, Any]]:
        events, self.offset = read_new_lines(self.folder / "events.jsonl", self.offset)
        return events

    def result(self, number: int) -> CaseResult:
        path = result_path(self.folder, number)
        result = read_pickle(path)
        path.unlink()
        return result

    def end(self, kill: bool, grace: float = 5.0) -> None:
        """Let the worker leave (or kill its tree), then remove its folder."""
        if not kill:
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:  # did not leave after its last case
                pass
        self.process.kill_tree()
        remove_folder(self.folder)


def _failure_result(case: Case, message: str, settings: Settings) -> CaseResult:
    """The result of a case whose worker never answered (timeout, death)."""
    log = RunLog(settings.report)
    log.error(f"{case.case_id}: {message}", patient_id=case.case_id)
    return CaseResult(case.case_id, error=f"{case.case_id}: {message}",
                      entries=log.entries + [ReportEntry(case.case_id, "", "LOG", line) for line in log.lines])


def case_end_event(index: int, result: CaseResult, results: Sequence[Optional[CaseResult]]) -> Dict[str, Any]:
    """The ``progress_fn`` event of a finished case (``results``: every case's result so far)."""
    return {"event": "case_end", "case_id": result.case_id, "index": index, "ok": not result.error,
            "error": result.error, "seconds": result.seconds, "done": sum(r is not None for r in results),
            "total": len(results)}


def run_cases(cases: Sequence[Case], settings: Settings, callback: Callback = None, *,
              case_timeout: Optional[float] = None, progress_fn: ProgressFn = None,
              on_result: Optional[Callable[[int, CaseResult], None]] = None,
              max_tasks_per_child: Optional[int] = DEFAULT_MAX_TASKS_PER_CHILD,
              workers: Optional[int] = None) -> List[CaseResult]:
    """Run cases and return their results in case order.

    One worker and no ``case_timeout``: in this process. Otherwise a pool of ``workers`` worker
    processes, each reading its own case from disk; a case that raises, runs longer than
    ``case_timeout`` seconds (its worker is killed) or kills its worker becomes an error result
    and a fresh worker takes its place. ``callback`` gets START/END per ROI as they happen,
    ``progress_fn`` gets ``case_start`` (with the worker ``pid``) and ``case_end`` events, and
    ``on_result(index, result)`` is called as each case finishes (in completion order).
    """
    n_workers = worker_count(settings, len(cases)) if workers is None else max(1, min(workers, len(cases) or 1))
    results: List[Optional[CaseResult]] = [None] * len(cases)

    def finish(index: int, result: CaseResult) -> None:
        results[index] = result
        if on_result:
            on_result(index, result)
        if progress_fn:
            progress_fn(case_end_event(index, result, results))

    if n_workers == 1 and not case_timeout:
        # the next case's image is read on the second core while this case is extracted (the
        # ROI threads leave it idle part of the time); at most two images are held. Not during
        # the first case: it imports the readers and the engine's lazy modules alone (two threads
        # importing one package at once can break it, see read_inputs_ahead)
        ahead = None
        for index, case in enumerate(cases):
            current = ahead
            ahead = read_inputs_ahead(cases[index + 1], settings) if 1 <= index < len(cases) - 1 else None
            if progress_fn:
                progress_fn({"event": "case_start", "case_id": case.case_id, "index": index, "pid": os.getpid()})
            finish(index, extract_case(case, settings, callback, inputs_ahead=current))
        return [r for r in results if r is not None]
    _run_pool(cases, settings, n_workers, callback, case_timeout, progress_fn, finish, max_tasks_per_child)
    return [r for r in results if r is not None]


def _run_pool(cases: Sequence[Case], settings: Settings, n_workers: int, callback: Callback,
              case_timeout: Optional[float], progress_fn: ProgressFn, finish: Callable[[int, CaseResult], None],
              max_tasks: Optional[int]) -> None:
    """The process pool behind :func:`run_cases`.

    Each worker has its own folder, so the parent always knows which case a worker holds and a
    killed worker can spoil nothing but its own files. The folders live in the system's
    temporary folder (never in the output folder) and are removed at the end.
    """
    forked = fork_server_wanted()
    root = Path(tempfile.mkdtemp(prefix=POOL_FOLDER_PREFIX))
    settings_file = root / "settings.pkl"
    write_pickle(settings_file, settings)
    threads = max(1, (os.cpu_count() or 1) // n_workers)  # per worker: torch (deep features), ROI threads
    pending: Deque[int] = deque(range(len(cases)))
    workers: List[_PoolWorker] = []
    finished = set()
    requeued = set()
    started = [0]

    fork_server: Optional[ForkServer] = None

    def spawn() -> None:
        workers.append(_PoolWorker(root, started[0], settings_file, max_tasks, threads, fork_server))
        started[0] += 1

    def retire(worker: _PoolWorker, kill: bool) -> None:
        workers.remove(worker)
        worker.end(kill)

    def complete(index: int, result: CaseResult) -> None:
        if index not in finished:
            finished.add(index)
            finish(index, result)

    def user_callback(flag: str, case_id: str, roi: str) -> None:
        if callback is None:
            return
        try:
            callback(flag, case_id, roi)
        except Exception as exc:  # the user's callback must not stop the batch
            LOGGER.warning(f"callback_fn raised {type(exc).__name__}: {exc}")

    def handle(worker: _PoolWorker, event: Dict[str, Any]) -> None:
        kind, index = event["kind"], event["index"]
        if kind == "start":
            worker.started, worker.running = time.monotonic(), index
            if progress_fn:
                progress_fn({"event": "case_start", "case_id": cases[index].case_id, "index": index,
                             "pid": event["pid"]})
        elif kind == "roi":
            user_callback(event["flag"], event["case_id"], event["roi"])
        elif kind == "done":
            worker.held.popleft()
            worker.started = time.monotonic()  # the next one held starts now
            complete(index, worker.result(event["number"]))

    pause = POLL_INTERVALS[0]
    try:
        if forked:
            fork_server = ForkServer(root)
        for _ in range(n_workers):
            spawn()
        while len(finished) < len(cases):
            for worker in list(workers):  # hand out work
                if worker.idle and pending and worker.exhausted:  # it leaves by itself after its last case
                    retire(worker, kill=False)
                    continue
                # while more cases wait than there are workers, one more waits in the worker's
                # folder: it starts the moment the first ends, not when we notice that end
                depth = 2 if len(pending) > len(workers) else 1
                while pending and len(worker.held) < depth and not worker.exhausted:
                    index = pending.popleft()
                    worker.send(index, cases[index])
            # replace a retired or dead worker, and one running its last case at once: the
            # successor starts up (imports) while its predecessor finishes
            if pending and sum(not w.exhausted for w in workers) < n_workers:
                spawn()
                continue
            time.sleep(pause)
            pause = min(pause * 1.5, POLL_INTERVALS[1])
            for worker in list(workers):
                for event in worker.events():
                    handle(worker, event)
                    pause = POLL_INTERVALS[0]
                if not worker.idle and case_timeout and time.monotonic() - worker.started > case_timeout:
                    index = worker.index
                    pending.extendleft(reversed(worker.take_back()))
                    retire(worker, kill=True)
                    complete(index, _failure_result(
                        cases[index], f"exceeded case_timeout of {case_timeout:g} s; its worker was stopped", settings))
                    continue
                if worker.process.poll() is not None:
                    for event in worker.events():  # what it said before it ended
                        handle(worker, event)
                    index, code = worker.index, worker.process.returncode
                    waiting = worker.take_back()
                    if index is not None and worker.running != index and index not in requeued:
                        # it died before the case began (a worker killed with its fork server):
                        # the case goes back to the queue, once
                        requeued.add(index)
                        waiting.insert(0, index)
                        index = None
                    pending.extendleft(reversed(waiting))
                    if index is not None:
                        LOGGER.warning(f"pool worker {worker.process.pid} ended ({exit_description(code)}) during "
                                       f"case {cases[index].case_id}; its log:\n{worker.process.log_tail(2000)}")
                    retire(worker, kill=True)
                    if index is not None:
                        complete(index, _failure_result(
                            cases[index], f"the worker process died while processing this case "
                                          f"({exit_description(code)}); the case was skipped", settings))
    finally:  # done, or interrupted (Ctrl-C, an error): every worker ends now (an idle one holds nothing)
        if fork_server is not None:
            fork_server.close()  # its process group: the server and every worker forked from it
        for worker in list(workers):
            worker.end(kill=True)
        remove_folder(root)
