"""Running cases: serially in this process, or in a pool of worker processes.

A case that raises, runs past ``case_timeout`` or kills its worker becomes an error result
(Report rows) while the others finish; results come back in case order.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence

from .api import DEFAULT_MAX_TASKS_PER_CHILD  # noqa: F401  (process_batch's default, defined with its signature)
from .case_extraction import Callback, CaseResult, extract_case
from .cases import Case
from .runlog import LOGGER, ReportEntry, RunLog
from .settings import ExtractionMode, Settings

#: progress_fn(event) with event a dict: {"event": "case_start"|"case_end", "case_id", "index", ...}.
ProgressFn = Optional[Callable[[Dict[str, Any]], None]]


def worker_count(settings: Settings, n_cases: int) -> int:
    if not settings.enable_parallelism or n_cases <= 1:
        return 1
    wanted = (os.cpu_count() or 1) if settings.num_workers == "auto" else int(settings.num_workers)
    return max(1, min(wanted, n_cases))


def _pool_worker(conn, settings: Settings, max_tasks: Optional[int], threads: int = 0) -> None:
    """Worker process: receive (index, case), send ("start"|"roi"|"done", ...) back on ``conn``.

    ``threads`` > 0 caps torch's intra-op threads (deep features): N workers each using every
    core would oversubscribe the machine.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    if threads and settings.extraction_mode == ExtractionMode.DEEP:
        from .engine.deep import DeepDependencyError, import_torch

        try:
            import_torch()[0].set_num_threads(threads)
        except DeepDependencyError:
            pass  # each case then reports the missing dependency with its own clear message
    done = 0
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, case = message
        conn.send(("start", index, os.getpid()))

        def on_roi(flag: str, case_id: str, roi: str, _index: int = index) -> None:
            conn.send(("roi", _index, flag, case_id, roi))

        result = extract_case(case, settings, on_roi)
        conn.send(("done", index, result))
        done += 1
        if max_tasks and done >= max_tasks:
            return


@dataclass
class _Slot:
    process: Any
    conn: Any
    index: Optional[int] = None
    started: float = 0.0
    tasks: int = 0


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


def _exit_description(exitcode: Optional[int]) -> str:
    if exitcode is None:
        return "unknown exit status"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def run_cases(cases: Sequence[Case], settings: Settings, callback: Callback = None, *,
              case_timeout: Optional[float] = None, progress_fn: ProgressFn = None,
              on_result: Optional[Callable[[int, CaseResult], None]] = None,
              max_tasks_per_child: Optional[int] = DEFAULT_MAX_TASKS_PER_CHILD,
              workers: Optional[int] = None) -> List[CaseResult]:
    """Run cases and return their results in case order.

    One worker and no ``case_timeout``: in this process. Otherwise a pool of ``workers`` spawned
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
        for index, case in enumerate(cases):
            if progress_fn:
                progress_fn({"event": "case_start", "case_id": case.case_id, "index": index, "pid": os.getpid()})
            finish(index, extract_case(case, settings, callback))
        return [r for r in results if r is not None]
    _run_pool(cases, settings, n_workers, callback, case_timeout, progress_fn, finish, max_tasks_per_child)
    return [r for r in results if r is not None]


def _run_pool(cases: Sequence[Case], settings: Settings, n_workers: int, callback: Callback,
              case_timeout: Optional[float], progress_fn: ProgressFn, finish: Callable[[int, CaseResult], None],
              max_tasks: Optional[int]) -> None:
    """The process pool behind :func:`run_cases`.

    Each worker has its own pipe, so the parent always knows which case a worker holds and a
    killed worker can corrupt nothing but its own pipe (a shared queue could be left locked).
    """
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    pending: Deque[int] = deque(range(len(cases)))
    slots: List[_Slot] = []
    finished = set()

    def spawn() -> _Slot:
        parent_conn, child_conn = context.Pipe(duplex=True)
        threads = max(1, (os.cpu_count() or 1) // n_workers)
        process = context.Process(target=_pool_worker, args=(child_conn, settings, max_tasks, threads), daemon=True,
                                  name="pysera-worker")
        process.start()
        child_conn.close()
        return _Slot(process, parent_conn)

    def retire(slot: _Slot, kill: bool) -> None:
        if kill and slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=5)
        if slot.process.is_alive():  # did not leave after its last case: do not wait for it
            slot.process.kill()
            slot.process.join(timeout=5)
        slot.conn.close()
        slots.remove(slot)

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

    try:
        for _ in range(n_workers):
            slots.append(spawn())
        while len(finished) < len(cases):
            # retire workers that reached max_tasks (they exit by themselves after their last case)
            for slot in list(slots):
                if slot.index is None and max_tasks and slot.tasks >= max_tasks:
                    retire(slot, kill=False)
            # hand out work
            for slot in list(slots):
                if slot.index is None and pending:
                    index = pending.popleft()
                    try:
                        slot.conn.send((index, cases[index]))
                    except (OSError, BrokenPipeError):  # worker already gone: give the case to another
                        pending.appendleft(index)
                        retire(slot, kill=True)
                        continue
                    slot.index, slot.started = index, time.monotonic()
                    slot.tasks += 1
            while len(slots) < n_workers and pending:
                slots.append(spawn())
            if not slots:
                slots.append(spawn())
            timeout = 0.5
            if case_timeout:
                busy = [s.started + case_timeout - time.monotonic() for s in slots if s.index is not None]
                timeout = max(0.01, min([timeout] + busy))
            wait([s.conn for s in slots] + [s.process.sentinel for s in slots], timeout=timeout)
            for slot in list(slots):
                dead = False
                try:
                    while slot.conn.poll():
                        kind, index, *rest = slot.conn.recv()
                        if kind == "start":
                            slot.started = time.monotonic()
                            if progress_fn:
                                progress_fn({"event": "case_start", "case_id": cases[index].case_id, "index": index,
                                             "pid": rest[0]})
                        elif kind == "roi":
                            user_callback(*rest)
                        elif kind == "done":
                            slot.index = None
                            complete(index, rest[0])
                except (EOFError, OSError):
                    dead = True
                if slot.index is not None and case_timeout and time.monotonic() - slot.started > case_timeout:
                    index = slot.index
                    retire(slot, kill=True)
                    complete(index, _failure_result(
                        cases[index], f"exceeded case_timeout of {case_timeout:g} s; its worker was stopped", settings))
                    continue
                if dead or not slot.process.is_alive():
                    slot.process.join(timeout=5)
                    index = slot.index
                    exitcode = slot.process.exitcode
                    retire(slot, kill=True)
                    if index is not None:
                        complete(index, _failure_result(
                            cases[index], f"the worker process died while processing this case "
                                          f"({_exit_description(exitcode)}); the case was skipped", settings))
    finally:
        for slot in list(slots):
            if slot.index is not None:  # interrupted mid-case (Ctrl-C, error): stop it now
                slot.process.kill()
                continue
            try:
                slot.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        deadline = time.monotonic() + 5
        for slot in list(slots):
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5)
            slot.conn.close()

