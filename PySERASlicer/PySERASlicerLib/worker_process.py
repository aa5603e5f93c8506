"""Starting and ending worker processes: the parent side shared by the pool and the jobs.

A worker is ``<python> -m PySERASlicerLib.worker <folder> --parent-pid <pid>``: it imports only
our package, never the caller's ``__main__``, so an unguarded script, ``python -c``, a Jupyter
kernel and Slicer all start workers the same way. Everything between parent and worker goes
through files in ``<folder>`` (see :mod:`.worker`); the worker inherits no pipe and no file
descriptor. That keeps it working when ``<python>`` is Slicer's ``PythonSlicer`` launcher
(CTK AppLauncher), which starts ``python-real`` as a child process: the launcher passes the
command line, the environment and the exit code on, and nothing else is needed.

The launcher forwards no signal, so killing the process we started would leave ``python-real``
running. :meth:`WorkerProcess.kill_tree` therefore ends the whole tree:

* POSIX: the worker starts in a session of its own (``setsid``), which the launcher and
  ``python-real`` share; ``killpg`` ends the group. Workers started by a worker (a batch job
  running a pool) record their group in the top-level worker's ``groups.txt``, and those
  groups are ended too.
* Windows: the worker is put in a job object that kills its processes when the job is
  terminated or when its last handle closes (the parent died); ``python-real`` started by the
  launcher joins the job. Should the launcher start it before the assignment (a few
  microseconds after process creation), ``taskkill /T /F`` on the launcher and on the pid the
  worker reported (``pid.txt``) ends it.

Each worker also watches its parent (:mod:`.worker`) and exits when the parent is gone, and
every worker still running when this interpreter exits is killed (``atexit``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Dict, List, Optional

from .worker_files import LOG_FILE, read_log_tail, read_worker_pid

#: Folder that holds the PySERASlicerLib package (put on the worker's PYTHONPATH).
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
#: Environment variable naming the interpreter for workers (default ``sys.executable``).
PYTHON_VARIABLE = "PYSERA_WORKER_PYTHON"
#: Environment variable (set for workers) naming the file where nested workers record their group.
GROUPS_VARIABLE = "PYSERA_WORKER_GROUPS"

#: glibc's malloc in a worker keeps freed memory for the next case (up to 1 GiB) and serves
#: arrays up to 256 MiB from its heap: by default an array of more than 32 MiB (a CT in float64)
#: is mapped fresh for each case and every page of it faulted in again, about 15 % of a small
#: case (0.11 -> 0.09 s per case in a pool of one). A worker's resident memory then stays at its
#: peak between cases; the peak itself does not change. Other C libraries ignore the variables.
WORKER_MALLOC_SETTINGS = ({"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
                          if sys.platform.startswith("linux") else {})

_IS_WINDOWS = sys.platform == "win32"
_LIVE: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()


def worker_python() -> str:
    """Interpreter for workers: ``$PYSERA_WORKER_PYTHON``, else ``sys.executable`` (in Slicer the
    PythonSlicer launcher, which sets up Slicer's environment and runs ``-m`` modules)."""
    python = os.environ.get(PYTHON_VARIABLE) or sys.executable
    if not python:  # an embedding application that did not set sys.executable
        raise RuntimeError(f"no Python interpreter for worker processes: sys.executable is empty; set "
                           f"{PYTHON_VARIABLE} to a Python (or PythonSlicer) executable")
    return python


class WorkerProcess:
    """One worker process (and whatever it starts) working in ``folder``.

    The caller writes the job files into ``folder`` before starting it; stdout and stderr go
    to ``folder/worker.log``.
    """

    def __init__(self, folder: Path, python: Optional[str] = None, env: Optional[Dict[str, str]] = None,
                 threads: int = 1):
        self.folder = Path(folder)
        environment = dict(os.environ if env is None else env)
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (PACKAGE_PARENT, environment.get("PYTHONPATH", "")) if p
        )
        # N workers each using every core would oversubscribe the machine
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            environment.setdefault(name, str(max(1, threads)))
        for name, value in WORKER_MALLOC_SETTINGS.items():
            environment.setdefault(name, value)
        nested = bool(os.environ.get(GROUPS_VARIABLE))
        environment.setdefault(GROUPS_VARIABLE, str(self.folder / "groups.txt"))
        command = [python or worker_python(), "-m", "PySERASlicerLib.worker", str(self.folder),
                   "--parent-pid", str(os.getpid())]
        options = {}
        if _IS_WINDOWS:
            options["creationflags"] = (subprocess.CREATE_NO_WINDOW  # no console window
                                        | subprocess.CREATE_NEW_PROCESS_GROUP)  # no Ctrl-C from our console
        else:
            options["start_new_session"] = True  # its own group: killpg ends it and its children
        self._log = open(self.folder / LOG_FILE, "wb")
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log,
                                            stderr=subprocess.STDOUT, env=environment, close_fds=True, **options)
        except BaseException:
            self._log.close()
            raise
        self._job = _windows_job_for(self.process) if _IS_WINDOWS else None
        if nested and not _IS_WINDOWS:  # let the top-level worker's owner end this group too
            try:
                with open(os.environ[GROUPS_VARIABLE], "a", encoding="utf-8") as handle:
                    handle.write(f"{self.process.pid}\n")
            except OSError:
                pass  # the parent-death watch still ends it
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        """Pid of the process we started (in Slicer: the launcher)."""
        return self.process.pid

    def poll(self) -> Optional[int]:
        return self.process.poll()

    def wait(self, timeout: Optional[float] = None) -> int:
        return self.process.wait(timeout)

    @property
    def returncode(self) -> Optional[int]:
        return self.process.returncode

    def kill_tree(self) -> None:
        """End the worker and every process it started, at once (SIGKILL / TerminateJobObject).
        Safe to call more than once and after the worker has exited."""
        if _IS_WINDOWS:
            _windows_kill_tree(self)
        else:
            # nested groups only while this worker lives: they cannot outlive it (they watch
            # their parent), and a pid from the file may since have been reused
            nested = self._nested_groups() if self.process.poll() is None else []
            for group in [self.process.pid] + nested:
                try:
                    os.killpg(group, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.close()

    def close(self) -> None:
        """Release the log file (and the Windows job handle, which kills what is left in it)."""
        if not self._log.closed:
            self._log.close()
        if self._job is not None:
            _close_handle(self._job)
            self._job = None
        _LIVE.discard(self)

    def log_tail(self, limit: int = 4000) -> str:
        if not self._log.closed:
            self._log.flush()
        return read_log_tail(self.folder, limit)

    def _nested_groups(self) -> List[int]:
        try:
            text = (self.folder / "groups.txt").read_text(encoding="utf-8")
        except OSError:
            return []
        return [int(line) for line in text.split() if line.isdigit()]

    def reported_pid(self) -> Optional[int]:
        """Pid of the real worker process (``python-real`` behind a launcher), once it started."""
        return read_worker_pid(self.folder)

    def __del__(self):  # never leave a worker behind a forgotten object
        try:
            if self.process.poll() is None:
                self.kill_tree()
            else:
                self.close()
        except Exception:
            pass


def remove_folder(folder: Path, attempts: int = 20, delay: float = 0.05) -> None:
    """Remove a worker's folder after its tree was ended. On Windows a process just terminated
    may hold its files open for a moment, so the removal is retried for about a second."""
    for _ in range(attempts):
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.exists(folder):
            return
        time.sleep(delay)


def exit_description(returncode: Optional[int]) -> str:
    """``exit code 1`` / ``killed by signal SIGKILL`` / ``unknown exit status``."""
    if returncode is None:
        return "unknown exit status"
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


@atexit.register
def kill_all_workers() -> None:
    """End every worker tree still running (interpreter exit, Slicer closing)."""
    for worker in list(_LIVE):
        try:
            if worker.poll() is None:
                worker.kill_tree()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------
# Windows: job objects (written for Windows; this code is not run by the POSIX test machines)
# ---------------------------------------------------------------------------------------------
_JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
_JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9


def _windows_job_for(process: subprocess.Popen):
    """A job object holding ``process`` that kills its members when its last handle closes,
    or None when the job cannot be made (then only taskkill ends the tree)."""
    import ctypes
    from ctypes import wintypes

    class IoCounters(ctypes.Structure):
        _fields_ = [(name, ctypes.c_ulonglong) for name in (
            "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
            "ReadTransferCount", "WriteTransferCount", "OtherTransferCount")]

    class BasicLimits(ctypes.Structure):
        _fields_ = [("PerProcessUserTimeLimit", ctypes.c_longlong), ("PerJobUserTimeLimit", ctypes.c_longlong),
                    ("LimitFlags", wintypes.DWORD), ("MinimumWorkingSetSize", ctypes.c_size_t),
                    ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", wintypes.DWORD),
                    ("Affinity", ctypes.c_size_t), ("PriorityClass", wintypes.DWORD),
                    ("SchedulingClass", wintypes.DWORD)]

    class ExtendedLimits(ctypes.Structure):
        _fields_ = [("BasicLimitInformation", BasicLimits), ("IoInfo", IoCounters),
                    ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                    ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t)]

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.CreateJobObjectW.restype = wintypes.HANDLE
    kernel32.CreateJobObjectW.argtypes = [wintypes.LPVOID, wintypes.LPCWSTR]
    kernel32.SetInformationJobObject.argtypes = [wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID, wintypes.DWORD]
    kernel32.AssignProcessToJobObject.argtypes = [wintypes.HANDLE, wintypes.HANDLE]
    job = kernel32.CreateJobObjectW(None, None)
    if not job:
        return None
    limits = ExtendedLimits()
    limits.BasicLimitInformation.LimitFlags = _JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    if not kernel32.SetInformationJobObject(job, _JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
                                            ctypes.byref(limits), ctypes.sizeof(limits)):
        _close_handle(job)
        return None
    # Popen keeps the process handle in ``_handle``; a process already in a job (Slicer run from
    # a job-managed shell) may join a nested job since Windows 8
    if not kernel32.AssignProcessToJobObject(job, wintypes.HANDLE(int(process._handle))):
        _close_handle(job)
        return None
    return job


def _windows_kill_tree(worker: WorkerProcess) -> None:
    launcher_alive = worker.process.poll() is None  # an exited pid may already belong to another process
    if worker._job is not None:
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.TerminateJobObject.argtypes = [wintypes.HANDLE, wintypes.UINT]
        kernel32.TerminateJobObject(worker._job, 1)
    if not launcher_alive:  # it ended by itself, so did its child (the launcher waits for it)
        return
    # a python-real started before the job assignment, or a job that could not be made
    for pid in (worker.process.pid, worker.reported_pid()):
        if pid is not None:
            subprocess.run(["taskkill", "/PID", str(pid), "/T", "/F"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))


def _close_handle(handle) -> None:
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    kernel32.CloseHandle(handle)
