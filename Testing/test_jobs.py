"""Background jobs with real worker processes: success, progress, cancel, crash, batch."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PySERASlicerLib.image import Image
from PySERASlicerLib.io.readers import MaskData
from PySERASlicerLib.jobs import Job, JobCancelled, JobError, start_batch, start_extraction
from PySERASlicerLib.settings import Settings

STAT = Settings(categories="stat", dimensions="1st")


def small_case(seed=0):
    rng = np.random.default_rng(seed)
    image = Image(rng.normal(100, 20, (16, 24, 24)).astype(np.int16), (0.8, 0.8, 2.5), (5.0, -3.0, 10.0))
    tumor = np.zeros(image.shape, bool)
    tumor[4:9, 5:15, 5:15] = True
    edema = np.zeros(image.shape, bool)
    edema[7:13, 10:20, 8:22] = True
    return image, {"tumor": tumor, "edema": edema}


def test_worker_extracts_every_roi_and_streams_progress():
    image, masks = small_case()
    job = start_extraction(image, MaskData(named=masks), STAT, case_id="p1")
    seen = []
    result = job.wait(timeout=120, on_progress=seen.append)
    assert [row["ROI"] for row in result.rows] == ["tumor", "edema"]
    for row in result.rows:
        assert row["PatientID"] == "p1"
        assert row["stat_mean"] == pytest.approx(image.array[masks[row["ROI"]]].mean())
    events = [e for p in seen for e in p.events]
    kinds = [e["event"] for e in events if e["event"] != "step"]
    assert kinds == ["start", "roi_start", "roi_end", "roi_start", "roi_end", "finished"]
    assert any(e["event"] == "step" and e["step"] == "stat" for e in events)
    assert seen[-1].state == "finished" and seen[-1].done == seen[-1].total == 2
    assert not job.folder.exists(), "the job folder is removed after the result is collected"


def test_poll_does_not_block_and_cancel_kills_the_worker():
    rng = np.random.default_rng(1)
    # big enough to keep the worker busy for a while
    image = Image(rng.normal(0, 1, (64, 256, 256)).astype(np.float32), (1, 1, 1))
    masks = {f"roi{i}": np.zeros(image.shape, bool) for i in range(40)}
    for i, mask in enumerate(masks.values()):
        mask[1 + i % 50:10 + i % 50, 20:200, 20:200] = True
    job = start_extraction(image, MaskData(named=masks), Settings(categories="stat", dimensions="1st"))
    started = time.monotonic()
    progress = job.poll()
    assert time.monotonic() - started < 0.5
    assert progress.state == "running"
    job.cancel()
    assert job.process.poll() is not None, "worker process is gone"
    assert job.poll().state == "cancelled"
    assert not job.folder.exists()
    with pytest.raises(JobCancelled):
        job.result()


def test_crashing_worker_gives_its_traceback_and_cleans_up(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "job.json").write_text(json.dumps({
        "kind": "case", "case_id": "broken", "roi_names": ["a"], "settings": STAT.to_dict(),
        "geometry": {"spacing": [1, 1, 1], "origin": [0, 0, 0], "direction": np.eye(3).tolist()},
    }))
    (folder / "inputs.npz").write_bytes(b"this is not a numpy archive")
    job = Job(folder)
    with pytest.raises(JobError) as info:
        job.wait(timeout=60)
    message = str(info.value)
    assert "Traceback" in message
    assert "exited with code" in message
    assert not folder.exists()


def test_bad_roi_is_reported_not_raised():
    image, masks = small_case()
    masks["empty"] = np.zeros(image.shape, bool)
    job = start_extraction(image, MaskData(named=masks), STAT.replace(), case_id="p2")
    result = job.wait(timeout=120)
    assert [row["ROI"] for row in result.rows] == ["tumor", "edema"]
    assert any("empty" in r["ROI"] and "dropped" in r["Message"] for r in result.report)


def test_batch_job_runs_process_batch_on_files(tmp_path):
    import SimpleITK as sitk

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for seed in range(2):
        image, rois = small_case(seed)
        sitk.WriteImage(sitk.GetImageFromArray(image.array), str(images / f"p{seed}.nrrd"))
        sitk.WriteImage(sitk.GetImageFromArray(rois["tumor"].astype(np.uint8)), str(masks / f"p{seed}.nrrd"))
    job = start_batch(str(images), str(masks), str(tmp_path / "out"), STAT.replace(enable_parallelism=False))
    result = job.wait(timeout=120)
    assert sorted(row["PatientID"] for row in result.rows) == ["p0", "p1"]
    assert result.outputs["processed_files"] == 2
    assert result.outputs["excel_path"].endswith(".xlsx")
