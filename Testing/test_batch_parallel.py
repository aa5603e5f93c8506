"""The process pool: worker death, timeouts, failing cases, progress file and resume,
1 vs N workers, real-time callbacks, and the 20-case batch with 3 broken cases; each with
workers forked from the fork server (Linux's default) and with fresh interpreters (spawn, the
only way on macOS and Windows). Then what only the fork server does."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from batch_fixtures import InterruptAfter, KillWorkerOf, case_arrays, write_case, write_cases_csv, write_nifti
from PySERASlicerLib import process_batch
from PySERASlicerLib.fork_server import START_VARIABLE
from PySERASlicerLib.progress import PROGRESS_FILE

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server runs on Linux only")


@pytest.fixture(autouse=True, params=["fork", "spawn"])
def start_method(request, monkeypatch):
    """How the pool starts its workers (the workers inherit the variable)."""
    monkeypatch.setenv(START_VARIABLE, request.param)
    return request.param


def _cases(tmp_path: Path, n: int):
    for index in range(n):
        write_case(tmp_path, f"c{index:02d}", index)
    return tmp_path / "images", tmp_path / "masks"


def _blocking_image(tmp_path: Path, name: str) -> Path:
    """An image 'file' that is a named pipe nobody writes to: reading it blocks forever, so the
    case is certainly still running when the test kills its worker or the timeout fires."""
    path = tmp_path / f"{name}.nii.gz"
    os.mkfifo(path)
    return path


@needs_fifo
def test_killed_worker_becomes_a_report_row_and_the_rest_finish(tmp_path):
    _cases(tmp_path, 4)
    rows = [(f"c{i:02d}", f"images/c{i:02d}.nii.gz", f"masks/c{i:02d}.nii.gz", "") for i in range(4)]
    _blocking_image(tmp_path, "victim")
    rows.insert(1, ("victim", "victim.nii.gz", "masks/c00.nii.gz", ""))
    progress = KillWorkerOf("victim")  # a real pool worker, killed from outside
    killed = progress.killed

    result = process_batch(output_path=tmp_path / "out", cases_csv=write_cases_csv(tmp_path / "cases.csv", rows),
                           categories="stat", num_workers=2, progress_fn=progress)
    assert killed
    assert result["processed_files"] == 4 and result["failed_files"] == 1
    assert sorted(result["features_extracted"]["PatientID"].unique()) == ["c00", "c01", "c02", "c03"]
    message = "victim: the worker process died while processing this case (killed by signal SIGKILL)"
    assert message in result["error"]
    report = pd.read_excel(result["excel_path"], sheet_name="Report")
    errors = report[report["Level"] == "ERROR"]
    assert errors["PatientID"].tolist() == ["victim"] and message in errors["Message"].iloc[0]


@needs_fifo
def test_case_timeout_stops_the_case(tmp_path):
    _cases(tmp_path, 2)
    _blocking_image(tmp_path, "slow")
    rows = [("c00", "images/c00.nii.gz", "masks/c00.nii.gz", ""), ("slow", "slow.nii.gz", "masks/c00.nii.gz", ""),
            ("c01", "images/c01.nii.gz", "masks/c01.nii.gz", "")]
    start = time.monotonic()
    # one worker: the timeout needs worker processes, and is enforced there too
    result = process_batch(output_path=tmp_path / "out", cases_csv=write_cases_csv(tmp_path / "cases.csv", rows),
                           categories="stat", num_workers=1, case_timeout=3)
    assert time.monotonic() - start < 60
    assert result["processed_files"] == 2
    assert result["error"] == "slow: exceeded case_timeout of 3 s; its worker was stopped"


def test_results_identical_with_one_or_several_workers(tmp_path):
    folders = _cases(tmp_path, 6)
    serial = process_batch(*folders, tmp_path / "out", categories="stat", num_workers=1)
    pooled = process_batch(*folders, tmp_path / "out", categories="stat", num_workers=3, max_tasks_per_child=1)
    assert len(serial["features_extracted"]) == 12
    pd.testing.assert_frame_equal(serial["features_extracted"], pooled["features_extracted"])
    # the CSV twins hold the same numbers too
    pd.testing.assert_frame_equal(pd.read_csv(serial["csv_path"]), pd.read_csv(pooled["csv_path"]))


def test_callbacks_in_real_time_and_fresh_workers(tmp_path):
    folders = _cases(tmp_path, 4)
    timeline = []
    result = process_batch(*folders, tmp_path / "out", categories="stat", num_workers=2, max_tasks_per_child=1,
                           callback_fn=lambda flag, case, roi: timeline.append((flag, case, roi)),
                           progress_fn=lambda event: timeline.append((event["event"], event["case_id"],
                                                                      event.get("pid"))))
    assert result["processed_files"] == 4
    for case in ("c00", "c01", "c02", "c03"):
        start = timeline.index(("case_start", case, next(e[2] for e in timeline if e[:2] == ("case_start", case))))
        end = next(i for i, e in enumerate(timeline) if e[:2] == ("case_end", case))
        roi_events = [i for i, e in enumerate(timeline) if e[1] == case and e[0] in ("START", "END")]
        # START/END of every ROI arrive while the case runs, not replayed after it
        assert len(roi_events) == 4 and start < min(roi_events) and max(roi_events) < end
    pids = {e[2] for e in timeline if e[0] == "case_start"}
    assert len(pids) == 4 and os.getpid() not in pids  # max_tasks_per_child=1: a fresh process per case


def test_progress_file_and_resume(tmp_path):
    folders = _cases(tmp_path, 6)
    output = tmp_path / "out"
    interrupt_after_three = InterruptAfter(3)
    ended = interrupt_after_three.ended

    with pytest.raises(KeyboardInterrupt):
        process_batch(*folders, output, categories="stat", num_workers=1, progress_fn=interrupt_after_three)
    lines = [json.loads(line) for line in (output / PROGRESS_FILE).read_text().splitlines()]
    assert lines[0]["type"] == "header"
    assert [line["case_id"] for line in lines[1:]] == ["c00", "c01", "c02"]
    partial = sorted(output.glob("*.xlsx"))
    assert len(partial) == 1  # what was finished was also written out
    assert pd.read_excel(partial[0], sheet_name="Radiomics_Features")["PatientID"].unique().tolist() == [
        "c00", "c01", "c02"]

    started = []
    resumed = process_batch(*folders, output, categories="stat", num_workers=1, resume=True,
                            progress_fn=lambda e: started.append(e["case_id"]) if e["event"] == "case_start" else None)
    assert started == ["c03", "c04", "c05"]
    assert resumed["processed_files"] == 6
    assert any("resume: 3 case(s) already finished" in line for line in resumed["logs"])
    fresh = process_batch(*folders, tmp_path / "fresh", categories="stat", num_workers=1)
    pd.testing.assert_frame_equal(resumed["features_extracted"], fresh["features_extracted"])
    assert not (output / PROGRESS_FILE).exists()  # a finished batch leaves no progress file

    # different settings: nothing is reused
    with pytest.raises(KeyboardInterrupt):
        ended.clear()
        process_batch(*folders, output, categories="stat", num_workers=1, progress_fn=interrupt_after_three)
    started.clear()
    other = process_batch(*folders, output, categories="stat", bin_size=10, num_workers=1, resume=True,
                          progress_fn=lambda e: started.append(e["case_id"]) if e["event"] == "case_start" else None)
    assert len(started) == 6 and other["processed_files"] == 6
    assert any("written with other settings" in line for line in other["logs"])


def test_twenty_cases_three_broken(tmp_path):
    """The acceptance batch: 20 cases, 3 broken, 2 workers -> 17 cases' rows + 3 clear Report rows."""
    _cases(tmp_path, 17)
    image, mask = case_arrays(99)
    nan_image = image.copy()
    nan_image[3, 4, 5] = np.nan
    write_case(tmp_path, "x_nan_voxels", 0, image=nan_image)
    write_case(tmp_path, "x_empty_mask", 0, mask=np.zeros_like(mask))
    write_case(tmp_path, "x_truncated", 0)
    truncated = tmp_path / "images" / "x_truncated.nii.gz"
    truncated.write_bytes(truncated.read_bytes()[:2000])

    result = process_batch(tmp_path / "images", tmp_path / "masks", tmp_path / "out", categories="stat,morph"
                           if _morph_ready() else "stat", num_workers=2)
    frame = result["features_extracted"]
    assert result["processed_files"] == 17 and result["failed_files"] == 3
    assert sorted(frame["PatientID"].unique()) == [f"c{i:02d}" for i in range(17)]
    assert len(frame) == 34 and not frame.drop(columns=["PatientID", "ROI"]).isna().all(axis=1).any()
    report = pd.read_excel(result["excel_path"], sheet_name="Report")
    errors = report[report["Level"] == "ERROR"].set_index("PatientID")["Message"]
    assert sorted(errors.index) == ["x_empty_mask", "x_nan_voxels", "x_truncated"]
    assert "x_nan_voxels.nii.gz: image contains 1 NaN or infinite voxel value(s)" in errors["x_nan_voxels"]
    assert "x_empty_mask.nii.gz: the mask is empty (no non-zero voxel)" in errors["x_empty_mask"]
    assert "x_truncated.nii.gz: cannot read image" in errors["x_truncated"]
    for case in errors.index:
        assert f"{case}:" in result["error"]
    saved = pd.read_excel(result["excel_path"], sheet_name="Radiomics_Features")
    assert len(saved) == 34 and saved["PatientID"].nunique() == 17


def _morph_ready() -> bool:
    """morph is written by another agent; use it in the acceptance batch once it computes."""
    from PySERASlicerLib.engine.pipeline import extract_roi
    from PySERASlicerLib.image import Image
    from PySERASlicerLib.settings import Settings

    mask = np.zeros((5, 6, 6), bool)
    mask[1:4, 1:5, 1:5] = True
    try:
        extract_roi(Image(np.ones((5, 6, 6))), mask, Settings(categories=("morph",)))
    except NotImplementedError:
        return False
    return True


def test_failing_case_in_pool_keeps_other_rows(tmp_path):
    folders = _cases(tmp_path, 3)
    write_nifti(tmp_path / "masks" / "c01.nii.gz", np.zeros((5, 5, 5), np.uint8))  # other shape, no overlap
    result = process_batch(*folders, tmp_path / "out", categories="stat", num_workers=3)
    assert result["processed_files"] == 2
    assert result["error"].startswith("c01: ") and "c01.nii.gz" in result["error"]


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[1])


def _command_line(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().replace(b"\0", b" ").decode()


@linux_only
def test_workers_are_forked_from_one_fork_server_by_default_on_linux(tmp_path, monkeypatch, start_method):
    """Without PYSERA_WORKER_START, Linux forks every worker from one fork server; spawn starts
    each as a fresh interpreter, a child of this process. (The workers stay until the pool's end,
    so each one is alive when its first event is read.)"""
    if start_method == "fork":
        monkeypatch.delenv(START_VARIABLE)
    folders = _cases(tmp_path, 4)
    parents = {}

    def note(event):
        if event["event"] == "case_start" and event["pid"] not in parents:
            parent = _parent_of(event["pid"])
            parents[event["pid"]] = (parent, _parent_of(parent), _command_line(parent))

    result = process_batch(*folders, None, categories="stat", num_workers=2, max_tasks_per_child=None,
                           progress_fn=note)
    assert result["processed_files"] == 4 and len(parents) == 2
    if start_method == "spawn":
        assert {parent for parent, _, _ in parents.values()} == {os.getpid()}
    else:
        ((server, its_parent, its_command),) = set(parents.values())
        assert server != os.getpid() and its_parent == os.getpid()
        assert "fork_server" in its_command


@linux_only
@needs_fifo
def test_a_killed_fork_server_ends_its_workers_cases_and_fresh_workers_finish_the_batch(tmp_path, start_method):
    """The fork server killed while its two workers block on their cases: those two cases become
    Report rows (their workers died with the server); the cases waiting behind them go back to
    the queue and, with the rest, run in fresh (spawned) workers."""
    if start_method == "spawn":
        pytest.skip("no fork server with spawn")
    _cases(tmp_path, 3)
    blocked = [(name, f"{name}.nii.gz", "masks/c00.nii.gz", "") for name in ("blocked_a", "blocked_b")]
    normal = [(f"c{i:02d}", f"images/c{i:02d}.nii.gz", f"masks/c{i:02d}.nii.gz", "") for i in range(3)]
    # each worker gets a blocked case and, waiting behind it, a normal one; c02 stays queued
    rows = [blocked[0], normal[0], blocked[1], normal[1], normal[2]]
    for name in ("blocked_a", "blocked_b"):
        _blocking_image(tmp_path, name)
    started = []

    def kill_the_server(event):
        if event["event"] == "case_start":
            started.append(event["pid"])
            if len(started) == 2:  # both forked workers are blocked on their cases
                os.kill(_parent_of(event["pid"]), signal.SIGKILL)

    result = process_batch(output_path=None, cases_csv=write_cases_csv(tmp_path / "cases.csv", rows),
                           categories="stat", num_workers=2, progress_fn=kill_the_server)
    assert result["processed_files"] == 3 and result["failed_files"] == 2
    assert sorted(result["features_extracted"]["PatientID"].unique()) == ["c00", "c01", "c02"]
    for name in ("blocked_a", "blocked_b"):
        assert f"{name}: the worker process died while processing this case" in result["error"]
    assert not any(_running(pid) for pid in started[:2]), "the forked workers ended with their server"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def test_an_unknown_start_method_is_named(tmp_path, monkeypatch, start_method):
    monkeypatch.setenv(START_VARIABLE, "forkserver")
    folders = _cases(tmp_path, 2)
    with pytest.raises(ValueError, match="PYSERA_WORKER_START: 'forkserver' is not valid; accepted values: fork, "
                                         "spawn"):
        process_batch(*folders, None, categories="stat", num_workers=2)


@needs_fifo
def test_the_next_case_waits_in_the_workers_folder_and_returns_to_the_queue_when_the_worker_is_stopped(
        tmp_path, monkeypatch):
    """While more cases wait than there are workers, a worker holds its next case in its folder
    (it starts it without waiting for the parent to notice the end of the first). A worker
    stopped by case_timeout hands that waiting case back: it runs in the next worker."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # tempfile reads TMPDIR again
    _cases(tmp_path, 2)
    _blocking_image(tmp_path, "slow")
    rows = [("slow", "slow.nii.gz", "masks/c00.nii.gz", "")]
    rows += [(f"c{i:02d}", f"images/c{i:02d}.nii.gz", f"masks/c{i:02d}.nii.gz", "") for i in range(2)]
    waiting = []

    def note(event):
        if event["event"] == "case_start" and event["case_id"] == "slow":
            waiting.extend(sorted(p.name for p in (tmp_path / "tmp").glob("pysera_pool_*/worker_000/task_*.pkl")))

    result = process_batch(output_path=None, cases_csv=write_cases_csv(tmp_path / "cases.csv", rows),
                           categories="stat", num_workers=1, case_timeout=3, progress_fn=note)
    assert waiting == ["task_1.pkl"]  # c00, behind the blocked case
    assert result["processed_files"] == 2 and result["failed_files"] == 1
    assert result["error"] == "slow: exceeded case_timeout of 3 s; its worker was stopped"
    assert sorted(result["features_extracted"]["PatientID"].unique()) == ["c00", "c01"]


class _FifoFeeder:
    """Ends every read of the named pipes ``gate`` and ``probe`` with end-of-file: whenever a
    reader holds one open, a writer opens and closes it (a reader may open the file several
    times). ``gate`` only once ``probe`` had a reader, or after ``patience`` seconds."""

    def __init__(self, gate: Path, probe: Path, patience: float = 20.0):
        import threading

        self.gate, self.probe, self.patience = gate, probe, patience
        self.probe_read_while_gate_closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _end_read(path: Path) -> bool:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO: nobody reads it now
            return True
        except OSError:
            return False

    def _run(self) -> None:
        deadline = time.monotonic() + self.patience
        gate_open = False
        while not self._stop.is_set():
            if self._end_read(self.probe) and not gate_open:
                self.probe_read_while_gate_closed = True
            gate_open = gate_open or self.probe_read_while_gate_closed or time.monotonic() > deadline
            if gate_open:
                self._end_read(self.gate)
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@needs_fifo
@pytest.mark.parametrize("probed", ["image", "mask"])
@pytest.mark.parametrize("case_timeout", [60, None], ids=["pool-worker", "in-process"])
def test_the_next_cases_files_are_read_while_a_case_is_extracted_and_a_failed_read_is_that_cases_row(
        tmp_path, probed, case_timeout):
    """From its second case on, a pool worker (case_timeout starts one) and the one-worker loop
    in this process read the image and a plain mask file of the next case while working on the
    current one. Case "gated"'s image is a pipe that stays closed until the next case's image or
    mask, another pipe, has been opened for reading: only a read ahead opens it while "gated"
    waits. Both reads then fail, and each is its own case's Report row."""
    _cases(tmp_path, 2)
    gate, probe = _blocking_image(tmp_path, "gate"), _blocking_image(tmp_path, "probe")
    image, mask = ("probe.nii.gz", "masks/c00.nii.gz") if probed == "image" else ("images/c00.nii.gz", "probe.nii.gz")
    rows = [("c00", "images/c00.nii.gz", "masks/c00.nii.gz", ""), ("gated", gate.name, "masks/c00.nii.gz", ""),
            ("probed", image, mask, ""), ("c01", "images/c01.nii.gz", "masks/c01.nii.gz", "")]
    with _FifoFeeder(gate, probe) as feeder:
        result = process_batch(output_path=None, cases_csv=write_cases_csv(tmp_path / "cases.csv", rows),
                               categories="stat", num_workers=1, case_timeout=case_timeout)
    assert feeder.probe_read_while_gate_closed
    assert sorted(result["features_extracted"]["PatientID"].unique()) == ["c00", "c01"]
    assert result["failed_files"] == 2
    assert "gated: " in result["error"] and "gate.nii.gz" in result["error"]
    assert "probed: " in result["error"] and "probe.nii.gz" in result["error"]


def test_cases_held_in_memory_run_in_a_pool_worker():
    """In-memory images (nothing to read: the read-ahead only wraps them) go through the same
    worker loop."""
    from PySERASlicerLib.cases import Case
    from PySERASlicerLib.image import Image
    from PySERASlicerLib.pool import run_cases
    from PySERASlicerLib.settings import Settings

    cases = []
    for seed in range(4):
        image, mask = case_arrays(seed)
        cases.append(Case(f"m{seed}", Image(image.astype(np.float64), spacing=(1.0, 1.0, 2.0)), mask))
    results = run_cases(cases, Settings(categories=("stat",)), case_timeout=60, workers=1)
    assert [r.case_id for r in results] == ["m0", "m1", "m2", "m3"]
    assert not any(r.error for r in results) and all(len(r.rows) == 2 for r in results)


@linux_only
def test_workers_keep_freed_memory_for_the_next_case_unless_the_user_chose(tmp_path, monkeypatch, start_method):
    """Workers get glibc malloc settings that reuse freed memory across cases (no page faults
    for each case's large arrays); a value the user set wins."""
    from PySERASlicerLib.worker_process import WORKER_MALLOC_SETTINGS

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    folders = _cases(tmp_path, 2)
    environments = []

    def note(event):
        if event["event"] == "case_start":
            with open(f"/proc/{event['pid']}/environ", "rb") as handle:
                environments.append(dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item))

    result = process_batch(*folders, None, categories="stat", num_workers=2, max_tasks_per_child=None,
                           progress_fn=note)
    assert result["processed_files"] == 2 and len(environments) == 2
    for environment in environments:
        assert environment[b"MALLOC_MMAP_THRESHOLD_"] == WORKER_MALLOC_SETTINGS["MALLOC_MMAP_THRESHOLD_"].encode()
        assert environment[b"MALLOC_TRIM_THRESHOLD_"] == b"12345"
