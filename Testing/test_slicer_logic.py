"""Console/headless logic on real MRML nodes and real worker processes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("slicer")

from mrml_scene import SlicerCoreScene  # noqa: E402
from PySERASlicerLib.jobs import JobError  # noqa: E402
from PySERASlicerLib.settings import Settings  # noqa: E402
from PySERASlicerLib.slicer_logic import ExtractionLogic, summary  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    return SlicerCoreScene()


def make_case(scene, name="CT"):
    rng = np.random.default_rng(3)
    voxels = rng.normal(50, 12, (14, 30, 28)).astype(np.int16)
    ijk_to_ras = np.diag([-0.7, -0.7, 2.0, 1.0])
    ijk_to_ras[:3, 3] = (40.0, 12.0, -20.0)
    volume = scene.add_volume(voxels, ijk_to_ras, name)
    a = np.zeros(voxels.shape, bool)
    a[2:8, 4:14, 4:12] = True
    b = np.zeros(voxels.shape, bool)
    b[6:12, 12:25, 10:24] = True
    return volume, scene.add_segmentation(volume, {"lesion A": a, "lesion B": b}), voxels, a, b


def test_extract_returns_frame_and_table_per_segment(scene):
    volume, segmentation, voxels, a, b = make_case(scene)
    frame, table = ExtractionLogic().extract(volume, segmentation, categories="stat", dimensions="1st")
    assert list(frame["ROI"]) == ["lesion A", "lesion B"]
    assert table.GetNumberOfRows() == 2
    column = table.GetTable().GetColumnByName("stat_mean")
    assert column.GetValue(0) == pytest.approx(voxels[a].mean())
    assert column.GetValue(1) == pytest.approx(voxels[b].mean())
    assert "2 ROI(s) x 18 features" in summary(frame, 1.0)


def test_extract_into_existing_table_and_segment_subset(scene):
    volume, segmentation, voxels, a, _ = make_case(scene, "CT2")
    table = scene.scene.AddNewNodeByClass("vtkMRMLTableNode", "mine")
    first = segmentation.GetSegmentation().GetNthSegmentID(0)
    frame, out = ExtractionLogic().extract(volume, segmentation, Settings(categories="stat", dimensions="1st"),
                                           segment_ids=[first], table_node=table)
    assert out is table and table.GetNumberOfRows() == 1 and list(frame["ROI"]) == ["lesion A"]


def test_labelmap_input_splits_components(scene):
    volume, _, voxels, a, b = make_case(scene, "CT3")
    labels = a.astype(np.int16)
    labels[b & ~a] = 2
    ijk_to_ras = np.diag([-0.7, -0.7, 2.0, 1.0])
    ijk_to_ras[:3, 3] = (40.0, 12.0, -20.0)
    labelmap = scene.add_volume(labels, ijk_to_ras, "labels", "vtkMRMLLabelMapVolumeNode")
    frame, table = ExtractionLogic().extract(volume, labelmap, categories="stat", dimensions="1st",
                                             min_roi_volume=1)
    assert set(frame["ROI"]) == {"label_1_lesion_1", "label_2_lesion_1"}


def test_no_usable_roi_is_an_error_naming_the_problem(scene):
    volume, _, voxels, *_ = make_case(scene, "CT4")
    empty = scene.add_segmentation(volume, {"nothing": np.zeros(voxels.shape, bool)}, name="empty")
    with pytest.raises(RuntimeError, match="min_roi_volume|empty"):
        ExtractionLogic().extract(volume, empty, categories="stat", dimensions="1st")


def test_a_broken_worker_interpreter_is_reported(scene, tmp_path):
    volume, segmentation, *_ = make_case(scene, "CT5")
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'no such interpreter setup' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    with pytest.raises(JobError, match="exited with code 3"):
        ExtractionLogic(python=str(fake_python)).extract(volume, segmentation, categories="stat", dimensions="1st")
