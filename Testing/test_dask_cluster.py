"""process_batch, the CLI and the headless script on a real Dask cluster (loopback only).

Each test starts and stops its own cluster: a ``distributed.LocalCluster`` with two worker
processes, or a scheduler and workers started as separate ``dask scheduler`` / ``dask worker``
processes. A SIGALRM guard bounds every test. Without ``distributed`` these tests skip; the
tests that check what happens without it run everywhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from batch_fixtures import InterruptAfter, KillWorkerOf, case_arrays, write_case, write_cases_csv
from PySERASlicerLib import process_batch
from PySERASlicerLib.progress import PROGRESS_FILE

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_PARENT = ROOT / "PySERASlicer"
STAT = dict(categories="stat")
BROKEN = ("x_empty_mask", "x_missing_image", "x_nan_voxels")

needs_distributed = pytest.mark.skipif(
    __import__("importlib").util.find_spec("distributed") is None,
    reason="distributed is not installed (pip install \"PySERASlicerLib[dask]\")")
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")


@pytest.fixture
def deadline():
    """Fail a test that runs past its bound (SIGALRM: the main thread gets the exception, so
    the clusters' ``finally`` blocks still stop every process)."""
    def expire(signum, frame):
        raise TimeoutError("test ran past its time bound")

    previous = signal.signal(signal.SIGALRM, expire)

    def arm(seconds: int) -> None:
        signal.alarm(seconds)

    yield arm
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _worker_env() -> dict:
    """Workers import this checkout's package (as a shared filesystem would provide it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@contextlib.contextmanager
def local_cluster(monkeypatch, n_workers: int = 2):
    """LocalCluster with worker processes on 127.0.0.1; one case per worker at a time, so a
    killed worker takes exactly the case it was running with it."""
    import dask
    from distributed import Client, LocalCluster

    monkeypatch.setenv("PYTHONPATH", _worker_env()["PYTHONPATH"])
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster:
            with Client(cluster) as client:
                yield cluster, client


@contextlib.contextmanager
def process_cluster(tmp_path: Path, n_workers: int = 2):
    """``dask scheduler --host 127.0.0.1 --port 0`` and ``dask worker ADDRESS`` processes; the
    address is read from the scheduler file. Yields (address, start_worker)."""
    scheduler_file = tmp_path / "scheduler.json"
    processes = []
    dask_command = [sys.executable, "-m", "dask"]

    def start(args, env=None):
        log = open(tmp_path / f"dask_{len(processes)}.log", "w")
        process = subprocess.Popen(dask_command + args, stdout=log, stderr=subprocess.STDOUT, env=env or _worker_env(),
                                   start_new_session=True, cwd=tmp_path)
        processes.append((process, log))
        return process

    def start_worker(env=None):
        return start(["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard",
                      "--death-timeout", "30"], env)

    try:
        start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
               str(scheduler_file)])
        limit = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert time.monotonic() < limit, "the dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(n_workers):
            start_worker()
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=60)
        yield address, start_worker
    finally:
        for process, _ in reversed(processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process, log in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            log.close()


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------
def write_twenty_cases(folder: Path) -> Path:
    """17 good cases and 3 broken ones (empty mask, missing image file, a NaN voxel); a cases CSV."""
    rows = []
    for index in range(17):
        write_case(folder, f"c{index:02d}", index)
        rows.append((f"c{index:02d}", f"images/c{index:02d}.nii.gz", f"masks/c{index:02d}.nii.gz", ""))
    image, mask = case_arrays(50)
    write_case(folder, "x_empty_mask", 50, mask=np.zeros_like(mask))
    nan_image = image.copy()
    nan_image[3, 4, 5] = np.nan
    write_case(folder, "x_nan_voxels", 51, image=nan_image)
    rows.append(("x_empty_mask", "images/x_empty_mask.nii.gz", "masks/x_empty_mask.nii.gz", ""))
    rows.append(("x_missing_image", "images/x_missing_image.nii.gz", "masks/c00.nii.gz", ""))
    rows.append(("x_nan_voxels", "images/x_nan_voxels.nii.gz", "masks/x_nan_voxels.nii.gz", ""))
    return write_cases_csv(folder / "cases.csv", rows)


@pytest.fixture(scope="module")
def twenty(tmp_path_factory):
    """The 20-case batch and its result from the local process pool (2 workers)."""
    folder = tmp_path_factory.mktemp("twenty")
    cases_csv = write_twenty_cases(folder)
    local = process_batch(output_path=folder / "local", cases_csv=cases_csv, num_workers=2, **STAT)
    assert local["processed_files"] == 17 and local["failed_files"] == 3
    return cases_csv, local


def check_twenty(result, local) -> None:
    """17 cases' rows identical to the local pool's, and 3 Report rows naming the broken cases."""
    assert result["processed_files"] == 17 and result["failed_files"] == 3
    frame = result["features_extracted"]
    assert sorted(frame["PatientID"].unique()) == [f"c{i:02d}" for i in range(17)]
    pd.testing.assert_frame_equal(frame, local["features_extracted"], check_exact=True)
    report = pd.read_excel(result["excel_path"], sheet_name="Report")
    errors = report[report["Level"] == "ERROR"].set_index("PatientID")["Message"]
    assert sorted(errors.index) == list(BROKEN)
    assert "x_empty_mask.nii.gz: the mask is empty" in errors["x_empty_mask"]
    assert "x_missing_image.nii.gz" in errors["x_missing_image"]
    assert "image contains 1 NaN or infinite voxel value(s)" in errors["x_nan_voxels"]
    for case in BROKEN:
        assert f"{case}:" in result["error"]


def provenance(result) -> dict:
    with open(result["provenance_path"], encoding="utf-8") as handle:
        return json.load(handle)["provenance"]


# ---------------------------------------------------------------------------------------------
# Without a scheduler (run everywhere)
# ---------------------------------------------------------------------------------------------
def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` as a script file (pool workers are spawned: they re-import it)."""
    script = cwd / "run.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_PARENT), str(ROOT / "Testing")]))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def test_without_scheduler_distributed_is_never_imported(tmp_path):
    code = ("import sys, json\n"
            "from pathlib import Path\n"
            "from batch_fixtures import write_case\n"
            "from PySERASlicerLib import process_batch\n"
            "if __name__ == '__main__':\n"
            "    for i in range(2): write_case(Path('.'), f'c{i}', i)\n"
            "    r = process_batch('images', 'masks', 'out', categories='stat', num_workers=2)\n"
            "    assert r['processed_files'] == 2, r['error']\n"
            "    r = process_batch('images', 'masks', 'out2', categories='stat', num_workers=1, scheduler=' ')\n"
            "    assert r['processed_files'] == 2, r['error']  # an empty address field: this machine\n"
            "    print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('distributed', 'dask') "
            "or m.endswith('dask_cluster'))))\n")
    done = _run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_missing_distributed_is_a_clear_error(tmp_path):
    code = ("import sys; sys.modules['distributed'] = None  # as if not installed\n"
            "from pathlib import Path\n"
            "from batch_fixtures import write_case\n"
            "from PySERASlicerLib import process_batch\n"
            "write_case(Path('.'), 'c0', 0)\n"
            "r = process_batch('images', 'masks', 'out', categories='stat', scheduler='tcp://127.0.0.1:8786')\n"
            "print(r['success'], r['processed_files']); print(r['error'])\n")
    done = _run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    status, message = done.stdout.strip().splitlines()[-2:]
    assert status == "False 0"
    assert "needs the Python package distributed" in message
    assert 'pip install "PySERASlicerLib[dask]"' in message


# ---------------------------------------------------------------------------------------------
# On a cluster
# ---------------------------------------------------------------------------------------------
@needs_distributed
def test_local_cluster_twenty_cases_match_the_local_pool(twenty, tmp_path, monkeypatch, deadline):
    deadline(90)
    cases_csv, local = twenty
    events, rois = [], []
    with local_cluster(monkeypatch) as (cluster, client):
        workers = set(client.scheduler_info()["workers"])
        result = process_batch(output_path=tmp_path / "out", cases_csv=cases_csv, scheduler=cluster.scheduler_address,
                               progress_fn=events.append, callback_fn=lambda *event: rois.append(event), **STAT)
        # in-memory arrays are scattered to the workers
        image, mask = case_arrays(7)
        on_cluster = process_batch(image, mask, None, spacing=(0.9, 0.9, 2.0), scheduler=client, **STAT)
        here = process_batch(image, mask, None, spacing=(0.9, 0.9, 2.0), num_workers=1, **STAT)
        assert on_cluster["processed_files"] == 1
        pd.testing.assert_frame_equal(on_cluster["features_extracted"], here["features_extracted"], check_exact=True)
        # a worker that would compute with other code (one that joined after the check) refuses its case
        from PySERASlicerLib.cases import Case
        from PySERASlicerLib.dask_cluster import _extract_on_worker
        from PySERASlicerLib.settings import Settings

        refused = client.submit(_extract_on_worker, Case("late", None, None), image, mask,
                                json.dumps(Settings(categories="stat").to_dict()), "pysera-test", 0, "0" * 64).result()
        assert refused.rows == [] and "runs other PySERASlicerLib code than the client" in refused.error
    check_twenty(result, local)
    # per-case progress as cases finish, from worker processes (not this one)
    ends = [e for e in events if e["event"] == "case_end"]
    assert [e["done"] for e in ends] == list(range(1, 21)) and {e["total"] for e in ends} == {20}
    starts = {e["case_id"]: e for e in events if e["event"] == "case_start"}
    assert len(starts) == 20 and {e["worker"] for e in starts.values()} <= workers
    assert os.getpid() not in {e["pid"] for e in starts.values()}
    assert len(rois) == 2 * len(result["features_extracted"])  # START and END of every ROI
    # provenance: the scheduler and what the workers run
    dask = provenance(result)["dask"]
    assert dask["scheduler"] == cluster.scheduler_address and sorted(dask["workers"]) == sorted(workers)
    assert dask["cluster_retries"] == 1 and dask["versions"]["distributed"] == __import__("distributed").__version__
    assert dask["versions"]["PySERASlicerLib code"] and dask["dask_get_versions"]["scheduler"]["numpy"]
    assert not (tmp_path / "out" / PROGRESS_FILE).exists()


@needs_distributed
def test_scheduler_and_workers_as_separate_processes(twenty, tmp_path, deadline):
    """``dask scheduler`` + two ``dask worker`` processes: the CLI batch and the headless script
    give the local pool's values; the module's batch job reports ROI progress and its Cancel
    leaves no task behind; then a worker with other code is refused before any case runs."""
    deadline(150)
    cases_csv, local = twenty
    with process_cluster(tmp_path) as (address, start_worker):
        env = _worker_env()
        done = subprocess.run([sys.executable, "-m", "PySERASlicerLib.cli", "batch", "--cases", str(cases_csv),
                               "--output", str(tmp_path / "cli"), "--categories", "stat", "--scheduler", address],
                              capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        assert done.returncode == 1, done.stderr  # 3 failed cases
        assert "cases processed: 17, failed: 3" in done.stdout
        [csv_path] = (tmp_path / "cli").glob("*.csv")
        pd.testing.assert_frame_equal(pd.read_csv(csv_path), pd.read_csv(local["csv_path"]), check_exact=True)
        [json_path] = (tmp_path / "cli").glob("*.json")
        assert json.loads(json_path.read_text())["provenance"]["dask"]["scheduler"] == address

        headless = tmp_path / "headless_in"
        for name in ("c00", "c01", "c02"):
            for kind in ("images", "masks"):
                (headless / kind).mkdir(parents=True, exist_ok=True)
                shutil.copy(cases_csv.parent / kind / f"{name}.nii.gz", headless / kind)
        settings = tmp_path / "stat.json"
        settings.write_text(json.dumps({"categories": "stat"}))
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "slicer_headless_extract.py"), "--images",
                               str(headless / "images"), "--masks", str(headless / "masks"), "--output",
                               str(tmp_path / "headless"), "--settings", str(settings), "--scheduler", address],
                              capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        [csv_path] = (tmp_path / "headless").glob("*.csv")
        expected = local["features_extracted"]
        expected = expected[expected["PatientID"].isin(["c00", "c01", "c02"])].reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.read_csv(csv_path), pd.read_csv(_csv_of(expected, tmp_path)),
                                      check_exact=True)

        # the module's batch section (its job, without the Slicer wrapper): the job process is the
        # Dask client; ROI progress reaches the poll
        from PySERASlicerLib.jobs import start_batch
        from PySERASlicerLib.settings import Settings

        running = start_batch(None, None, str(tmp_path / "gui"), Settings(categories="stat"), cases_csv=str(cases_csv),
                              scheduler=address)
        result = running.wait(timeout=120)
        assert len(result.rows) == 34 and sorted(e.split(":")[0] for e in result.error.split("; ")) == list(BROKEN)
        assert running.poll().done == 34  # one ROI END event per row, forwarded from the workers

        # Cancel in the module ends the job process (the Dask client): its outstanding tasks go
        if hasattr(os, "mkfifo"):
            fifo = tmp_path / "blocking.nii.gz"
            os.mkfifo(fifo)  # its case blocks in a worker until the test unblocks it
            data = cases_csv.parent
            rows = [("blocked", fifo, data / "masks" / "c00.nii.gz", "")] + [
                (f"c{i:02d}", data / "images" / f"c{i:02d}.nii.gz", data / "masks" / f"c{i:02d}.nii.gz", "")
                for i in range(17)]
            running = start_batch(None, None, str(tmp_path / "gui_cancel"), Settings(categories="stat"),
                                  cases_csv=str(write_cases_csv(tmp_path / "cancel.csv", rows)), scheduler=address)
            from distributed import Client

            with Client(address, timeout=30) as client:
                limit = time.monotonic() + 60
                while running.poll().done < 2:  # a case finished: the tasks are on the cluster
                    assert running.poll().state == "running" and time.monotonic() < limit
                    time.sleep(0.1)
                assert client.run_on_scheduler(_task_count) > 0
                running.cancel()
                limit = time.monotonic() + 30
                while client.run_on_scheduler(_task_count) and time.monotonic() < limit:
                    time.sleep(0.1)
                assert client.run_on_scheduler(_task_count) == 0
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # EOF: the blocked worker thread ends

        # a worker whose PySERASlicerLib differs from the client's: an error before any case runs
        other = tmp_path / "other_code"
        shutil.copytree(PACKAGE_PARENT / "PySERASlicerLib", other / "PySERASlicerLib",
                        ignore=shutil.ignore_patterns("__pycache__"))
        with open(other / "PySERASlicerLib" / "image.py", "a", encoding="utf-8") as handle:
            handle.write("\n# a local change on one machine\n")
        start_worker(dict(_worker_env(), PYTHONPATH=str(other)))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(3, timeout=60)
        started = []
        result = process_batch(output_path=tmp_path / "mismatch", cases_csv=cases_csv, scheduler=address,
                               progress_fn=started.append, **STAT)
        assert not result["success"] and result["processed_files"] == 0 and started == []
        assert "the workers differ from this client" in result["error"]
        assert "PySERASlicerLib code: client" in result["error"]
        assert result["excel_path"] is None


def test_cluster_option_in_the_module_and_its_dependency():
    """The batch section's text field (empty = this machine) and distributed asked for only then."""
    import xml.etree.ElementTree as ET

    from PySERASlicerLib import dependencies

    ui = ET.parse(PACKAGE_PARENT / "Resources" / "UI" / "PySERASlicer.ui").getroot()
    [widget] = [w for w in ui.iter("widget") if any(
        p.get("name") == "SlicerParameterName" and p.find("string").text == "batchScheduler" for p in w)]
    assert widget.get("class") == "QLineEdit"
    assert 'batchScheduler: str = ""' in (PACKAGE_PARENT / "PySERASlicer.py").read_text()
    assert dependencies.DISTRIBUTED not in dependencies.needed()
    assert dependencies.needed(cluster=True)[-1] == dependencies.DISTRIBUTED
    # the extra that pip installs outside Slicer has the same lower bound
    assert f'dask = ["{dependencies.DISTRIBUTED.pip}"]' in (ROOT / "pyproject.toml").read_text()


def _csv_of(frame: pd.DataFrame, folder: Path) -> Path:
    path = folder / "expected.csv"
    frame.to_csv(path, index=False)
    return path


@needs_distributed
@needs_fifo
def test_killed_worker_is_retried_then_a_report_row(tmp_path, monkeypatch, deadline):
    """A case whose worker is SIGKILLed each time it runs it: retried once (cluster_retries=1),
    then a Report row naming the worker death; every other case still ends as a row."""
    deadline(120)
    rows = []
    for index in range(6):
        write_case(tmp_path, f"c{index:02d}", index)
        rows.append((f"c{index:02d}", f"images/c{index:02d}.nii.gz", f"masks/c{index:02d}.nii.gz", ""))
    os.mkfifo(tmp_path / "victim.nii.gz")  # reading it blocks: the case is surely running when killed
    rows.insert(2, ("victim", "victim.nii.gz", "masks/c00.nii.gz", ""))
    cases_csv = write_cases_csv(tmp_path / "cases.csv", rows)
    kill_the_victims_worker = KillWorkerOf("victim")  # a real worker process, killed from outside
    killed = kill_the_victims_worker.killed

    with local_cluster(monkeypatch) as (_, client):
        result = process_batch(output_path=tmp_path / "out", cases_csv=cases_csv, scheduler=client,
                               progress_fn=kill_the_victims_worker, **STAT)
        assert client.status == "running"  # a Client passed in stays open
    assert len(killed) == 2 and len(set(killed)) == 2  # first run and one retry, on two worker processes
    assert sorted(result["features_extracted"]["PatientID"].unique()) == [f"c{i:02d}" for i in range(6)]
    assert result["processed_files"] == 6 and result["failed_files"] == 1
    report = pd.read_excel(result["excel_path"], sheet_name="Report")
    errors = report[report["Level"] == "ERROR"]
    assert errors["PatientID"].tolist() == ["victim"]
    message = errors["Message"].iloc[0]
    assert "the Dask worker died while processing this case, 2 time(s) (cluster_retries=1" in message


@needs_distributed
def test_interrupt_cancels_the_rest_and_resume_reruns_only_the_missing_cases(tmp_path, monkeypatch, deadline):
    deadline(90)
    for index in range(8):
        write_case(tmp_path, f"c{index:02d}", index)
    folders = (tmp_path / "images", tmp_path / "masks")
    output = tmp_path / "out"
    interrupt_after_three = InterruptAfter(3)
    ended = interrupt_after_three.ended

    with local_cluster(monkeypatch) as (cluster, client):
        with pytest.raises(KeyboardInterrupt):
            process_batch(*folders, output, scheduler=cluster.scheduler_address, progress_fn=interrupt_after_three,
                          **STAT)
        # the outstanding tasks were cancelled: the scheduler forgets them
        limit = time.monotonic() + 20
        while client.run_on_scheduler(_task_count) and time.monotonic() < limit:
            time.sleep(0.1)
        assert client.run_on_scheduler(_task_count) == 0
        lines = [json.loads(line) for line in (output / PROGRESS_FILE).read_text().splitlines()]
        finished = [line["case_id"] for line in lines[1:]]
        assert sorted(finished) == sorted(ended)
        started = []
        resumed = process_batch(*folders, output, scheduler=cluster.scheduler_address, resume=True,
                                progress_fn=lambda e: started.append(e["case_id"]) if e["event"] == "case_start"
                                else None, **STAT)
    assert sorted(started) == sorted(set(f"c{i:02d}" for i in range(8)) - set(finished))
    assert resumed["processed_files"] == 8
    fresh = process_batch(*folders, tmp_path / "fresh", num_workers=1, **STAT)
    pd.testing.assert_frame_equal(resumed["features_extracted"], fresh["features_extracted"], check_exact=True)


def _task_counter():
    """For ``run_on_scheduler``: the scheduler's number of tasks. Nested, so cloudpickle sends it
    by value (a scheduler process cannot import this test module)."""
    def count(dask_scheduler) -> int:
        return len(dask_scheduler.tasks)
    return count


_task_count = _task_counter()


@needs_distributed
def test_bad_cluster_options_are_clear_errors(tmp_path, monkeypatch, deadline):
    deadline(60)
    write_case(tmp_path, "c0", 0)
    folders = (tmp_path / "images", tmp_path / "masks")
    import socket

    from PySERASlicerLib import dask_cluster

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(dask_cluster, "CONNECT_SECONDS", 2)  # not the 20 s a real network gets
    result = process_batch(*folders, tmp_path / "out", scheduler=f"tcp://127.0.0.1:{port}", **STAT)
    assert result["error"].startswith(f"scheduler tcp://127.0.0.1:{port}: cannot connect")
    assert result["processed_files"] == 0 and result["excel_path"] is None
    result = process_batch(*folders, tmp_path / "out", scheduler="tcp://127.0.0.1:8786", case_timeout=5, **STAT)
    assert result["error"].startswith("case_timeout: not available with scheduler=")
    result = process_batch(*folders, tmp_path / "out", scheduler="tcp://127.0.0.1:8786", cluster_retries=-1, **STAT)
    assert result["error"] == "cluster_retries: -1 is not valid; accepted values: an integer >= 0"
