"""The worker-process model with real processes: unguarded scripts and ``python -c``, a
stand-in for Slicer's PythonSlicer launcher, Cancel ending the whole tree, workers leaving
when their parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from batch_fixtures import case_arrays, write_case, write_cases_csv, write_nifti
from PySERASlicerLib.fork_server import START_VARIABLE
from PySERASlicerLib.image import Image
from PySERASlicerLib.io.types import MaskData
from PySERASlicerLib.jobs import start_batch, start_extraction
from PySERASlicerLib.settings import Settings
from PySERASlicerLib.worker_files import PID_FILE
from PySERASlicerLib.worker_process import PYTHON_VARIABLE

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="walks /proc (Linux)")

WORKTREE_LIB = str(Path(__file__).resolve().parents[1] / "PySERASlicer")
STAT = Settings(categories="stat", dimensions="1st")
OUTPUT_SUFFIXES = {".xlsx", ".csv", ".json"}

LAUNCHER = '''#!{python}
"""Stand-in for CTK's AppLauncher (PythonSlicer): starts the real Python as a child process
(not exec), closes inherited file descriptors above 2 in the child, forwards no signal and
exits with the child's exit code."""
import signal
import subprocess
import sys

signal.signal(signal.SIGINT, signal.SIG_DFL)  # a signal ends the launcher only, like a Qt app
child = subprocess.Popen([{python!r}] + sys.argv[1:], close_fds=True)
sys.exit(child.wait())
'''


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _one_roi_cases(folder: Path, n: int):
    """n cases, each with one lesion (label 1): one row per case."""
    for index in range(n):
        image, mask = case_arrays(index)
        write_case(folder, f"c{index:02d}", index, image, (mask == 1).astype(np.uint8))
    return folder / "images", folder / "masks"


def _environment(tmp: Path, **extra: str):
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([WORKTREE_LIB, environment.get("PYTHONPATH", "")])
    tmp.mkdir(exist_ok=True)
    environment["TMPDIR"] = str(tmp)  # the pool's temporary folders go here: the test sees leftovers
    environment.update(extra)
    return environment


@pytest.fixture()
def launcher(tmp_path):
    path = tmp_path / "PythonSlicer"
    path.write_text(LAUNCHER.format(python=sys.executable), encoding="utf-8")
    path.chmod(0o755)
    return path


def _state(pid: int) -> str:
    """One-letter state of a process ('' when it no longer exists)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return ""


def _alive(pid: int) -> bool:
    return _state(pid) not in ("", "Z", "X")


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[1])


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _live_processes_mentioning(text: str):
    """Pids of running processes whose command line contains ``text`` (orphans included: a
    worker whose launcher died is no longer our descendant)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and text in _command_line(int(entry)):
            if _alive(int(entry)):
                pids.append(int(entry))
    return pids


def _wait_until(condition, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _check_outputs_only(output: Path, tmp: Path) -> None:
    files = sorted(p.name for p in output.iterdir())
    assert {Path(name).suffix for name in files} == OUTPUT_SUFFIXES and len(files) == 3, files
    assert not list(tmp.iterdir()), f"temporary folders left behind: {list(tmp.iterdir())}"


UNGUARDED_SCRIPT = '''
import os
from PySERASlicerLib import process_batch

pids = set()
result = process_batch({images!r}, {masks!r}, {output!r}, num_workers=2, categories="stat", dimensions="1st",
                       progress_fn=lambda event: pids.add(event.get("pid")))
print("ROWS", len(result["features_extracted"]), "PROCESSED", result["processed_files"],
      "WORKERS", len(pids - {{os.getpid(), None}}))
'''


# ---------------------------------------------------------------------------------------------
# unguarded scripts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["script-file", "python-c"])
def test_unguarded_script_runs_cases_in_two_workers(tmp_path, how):
    """No ``if __name__ == "__main__":`` guard, as PySERA's README writes examples: the workers
    never re-import the caller's main module."""
    images, masks = _one_roi_cases(tmp_path, 6)
    output = tmp_path / "results"
    code = UNGUARDED_SCRIPT.format(images=str(images), masks=str(masks), output=str(output))
    if how == "script-file":
        script = tmp_path / "extract.py"
        script.write_text(code, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        command = [sys.executable, "-c", code]
    done = subprocess.run(command, cwd=tmp_path, env=_environment(tmp_path / "tmp"), capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ROWS 6 PROCESSED 6 WORKERS 2" in done.stdout, done.stdout + done.stderr[-3000:]
    assert "bootstrapping" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-3000:]
    _check_outputs_only(output, tmp_path / "tmp")


# ---------------------------------------------------------------------------------------------
# behind a launcher (what sys.executable is in Slicer)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_batch_through_a_launcher_completes(tmp_path, launcher, monkeypatch, start):
    """spawn: each worker is python-real behind its own launcher; fork (Linux): the workers are
    forked from one fork server, which is python-real behind the launcher."""
    from PySERASlicerLib import process_batch

    images, masks = _one_roi_cases(tmp_path, 4)
    monkeypatch.setenv(PYTHON_VARIABLE, str(launcher))
    monkeypatch.setenv(START_VARIABLE, start)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # tempfile reads TMPDIR again
    parents = []

    def progress(event):
        if event["event"] == "case_start":  # the real worker is a child of a launcher process
            real = event["pid"] if start == "spawn" else _parent_of(event["pid"])
            if start == "fork":
                assert "fork_server" in _command_line(real)
            parents.append(_command_line(_parent_of(real)))

    result = process_batch(str(images), str(masks), str(tmp_path / "out"), num_workers=2, categories="stat",
                           dimensions="1st", progress_fn=progress)
    assert result["processed_files"] == 4 and not result["error"], result["error"]
    assert len(parents) == 4 and all(str(launcher) in parent for parent in parents), parents
    _check_outputs_only(tmp_path / "out", tmp_path / "tmp")


def _small_case():
    image, mask = case_arrays(3)
    return Image(image, (0.9, 0.9, 2.0)), MaskData(named={"lesion": mask == 1})


def test_job_through_a_launcher_completes(launcher):
    image, masks = _small_case()
    job = start_extraction(image, masks, STAT, case_id="p1", python=str(launcher))
    result = job.wait(timeout=120)
    assert [row["ROI"] for row in result.rows] == ["lesion"]
    assert result.rows[0]["stat_mean"] == pytest.approx(float(image.array[masks.named["lesion"]].mean()))


def test_cancel_ends_the_launcher_and_the_real_worker(launcher):
    rng = np.random.default_rng(1)
    image = Image(rng.normal(0, 1, (48, 200, 200)).astype(np.float32), (1, 1, 1))
    rois = {f"roi{i}": np.zeros(image.shape, bool) for i in range(40)}
    for i, mask in enumerate(rois.values()):
        mask[1 + i % 40:8 + i % 40, 20:180, 20:180] = True
    job = start_extraction(image, MaskData(named=rois), Settings(categories="stat,ih", dimensions="1st"),
                           python=str(launcher))
    folder = job.folder
    assert _wait_until(lambda: (folder / PID_FILE).exists() and (folder / PID_FILE).read_text().strip(), 60)
    real = int((folder / PID_FILE).read_text())
    assert real != job.process.pid and _parent_of(real) == job.process.pid  # launcher -> python-real
    assert job.poll().state == "running"
    job.cancel()
    assert _wait_until(lambda: not _alive(real) and not _alive(job.process.pid), 5), _state(real)
    assert not _live_processes_mentioning(str(folder)), "no process of the job is left"
    assert not folder.exists()


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_cancel_of_a_batch_job_ends_its_pool_too(tmp_path, launcher, start):
    """A batch job runs process_batch with a pool inside the worker: Cancel ends the job's
    worker, its launcher and the pool's workers (and their fork server)."""
    _one_roi_cases(tmp_path, 1)
    os.mkfifo(tmp_path / "blocked.nii.gz")  # reading it blocks forever: the pool is busy at Cancel
    rows = [("c00", "images/c00.nii.gz", "masks/c00.nii.gz", ""), ("blocked", "blocked.nii.gz", "masks/c00.nii.gz", "")]
    cases = write_cases_csv(tmp_path / "cases.csv", rows)
    tmp = tmp_path / "tmp"
    job = start_batch(None, None, str(tmp_path / "out"), STAT.replace(num_workers=2), python=str(launcher),
                      env={**_environment(tmp), START_VARIABLE: start}, cases_csv=str(cases))
    # inside the job's python-real, sys.executable is python-real: the pool starts it directly;
    # forked workers carry their fork server's command line
    expected = 2 if start == "spawn" else 3
    assert _wait_until(lambda: len(_live_processes_mentioning(str(tmp / "pysera_pool_"))) == expected, 60), \
        "two pool workers"
    job.cancel()
    for text in (str(tmp_path), str(job.folder)):
        assert _wait_until(lambda text=text: not _live_processes_mentioning(text), 5), \
            [_command_line(p) for p in _live_processes_mentioning(text)]


# ---------------------------------------------------------------------------------------------
# the parent dies
# ---------------------------------------------------------------------------------------------
BLOCKED_BATCH = '''
from PySERASlicerLib import process_batch

def progress(event):
    if event["event"] == "case_start":
        with open({pids!r}, "a") as handle:
            handle.write(f"{{event['pid']}}\\n")

process_batch(output_path={output!r}, cases_csv={cases!r}, num_workers=2, categories="stat", progress_fn=progress)
'''


@pytest.mark.parametrize("through_launcher", [False, True], ids=["python", "launcher"])
def test_workers_leave_when_the_parent_is_killed(tmp_path, launcher, through_launcher):
    write_nifti(tmp_path / "mask.nii.gz", case_arrays(0)[1])
    for name in ("a", "b"):
        os.mkfifo(tmp_path / f"{name}.nii.gz")  # blocks the worker that opens it
    cases = write_cases_csv(tmp_path / "cases.csv", [(n, f"{n}.nii.gz", "mask.nii.gz", "") for n in "ab"])
    pids = tmp_path / "pids.txt"
    script = tmp_path / "batch.py"
    script.write_text(BLOCKED_BATCH.format(pids=str(pids), cases=str(cases), output=str(tmp_path / "out")),
                      encoding="utf-8")
    extra = {PYTHON_VARIABLE: str(launcher)} if through_launcher else {}
    parent = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=_environment(tmp_path / "tmp", **extra),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, 60)
        workers = [int(p) for p in pids.read_text().split()]
        assert all(_alive(p) for p in workers)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert _wait_until(lambda: not any(_alive(p) for p in workers), 10), [_state(p) for p in workers]
    assert _wait_until(lambda: not _live_processes_mentioning(str(tmp_path)), 5)
    assert _wait_until(lambda: not list((tmp_path / "tmp").iterdir()), 5), "the orphans removed their folders"


# ---------------------------------------------------------------------------------------------
# Ctrl-C and interpreter exit
# ---------------------------------------------------------------------------------------------
def test_keyboard_interrupt_ends_the_workers(tmp_path, launcher):
    write_nifti(tmp_path / "mask.nii.gz", case_arrays(0)[1])
    for name in ("a", "b"):
        os.mkfifo(tmp_path / f"{name}.nii.gz")
    cases = write_cases_csv(tmp_path / "cases.csv", [(n, f"{n}.nii.gz", "mask.nii.gz", "") for n in "ab"])
    pids = tmp_path / "pids.txt"
    script = tmp_path / "batch.py"
    script.write_text(BLOCKED_BATCH.format(pids=str(pids), cases=str(cases), output=str(tmp_path / "out")),
                      encoding="utf-8")
    parent = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                              env=_environment(tmp_path / "tmp", **{PYTHON_VARIABLE: str(launcher)}),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, 60)
        workers = [int(p) for p in pids.read_text().split()]
        parent.send_signal(signal.SIGINT)  # Ctrl-C reaches the script only: workers have their own session
        stderr = parent.communicate(timeout=30)[1]
    finally:
        parent.kill()
    assert "KeyboardInterrupt" in stderr
    assert not any(_alive(p) for p in workers), "the pool ended its workers before the script left"
    assert not _live_processes_mentioning(str(tmp_path))
    assert not list((tmp_path / "tmp").iterdir())


def test_interpreter_exit_ends_a_running_job(tmp_path, launcher):
    """A console or Slicer session that ends while a job runs leaves no worker behind."""
    code = textwrap.dedent(f"""
        import time

        import numpy as np
        from PySERASlicerLib.image import Image
        from PySERASlicerLib.io.types import MaskData
        from PySERASlicerLib.jobs import start_extraction
        from PySERASlicerLib.settings import Settings

        image = Image(np.random.default_rng(0).normal(0, 1, (40, 200, 200)).astype(np.float32), (1, 1, 1))
        rois = {{f"r{{i}}": np.ones(image.shape, bool) for i in range(30)}}
        job = start_extraction(image, MaskData(named=rois), Settings(categories="stat,ih", dimensions="1st"),
                               python={str(launcher)!r})
        print(job.folder, flush=True)
        pid_file = job.folder / "pid.txt"
        while not (pid_file.exists() and pid_file.read_text().strip()):
            time.sleep(0.01)
        print(pid_file.read_text(), job.process.pid, flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", code], env=_environment(tmp_path / "tmp"), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    folder, pids = done.stdout.splitlines()[0], [int(p) for p in done.stdout.split()[1:3]]
    assert _wait_until(lambda: not any(_alive(p) for p in pids), 5), [_state(p) for p in pids]
    assert not _live_processes_mentioning(folder)
