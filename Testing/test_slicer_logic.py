"""Console/headless logic on real MRML nodes and real worker processes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("slicer")

from mrml_scene import SlicerCoreScene  # noqa: E402
from PySERASlicerLib.jobs import JobError  # noqa: E402
from PySERASlicerLib.settings import Settings, SettingsError  # noqa: E402
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


def test_console_extract_takes_named_features_and_stops_at_a_typo(scene):
    """The Slicer console's logic.extract takes features= (and filters=) as process_batch does;
    a mistyped name is an error before any worker starts."""
    volume, segmentation, voxels, a, b = make_case(scene, "CT named")
    frame, table = ExtractionLogic().extract(volume, segmentation, features="stat_mean, morph_volume",
                                             filters=[{"filter": "mean", "support": 3}])
    assert list(frame.columns[:4]) == ["PatientID", "ROI", "morph_volume", "stat_mean"]
    assert frame["stat_mean"].tolist() == pytest.approx([voxels[a].mean(), voxels[b].mean()])
    # the response map keeps its own selection (filter_categories: the 18 statistics)
    assert len(frame.columns) == 4 + 18 and all(column.endswith("_mean_m3") for column in frame.columns[4:])
    assert table.GetTable().GetColumnByName("morph_volume") is not None
    with pytest.raises(SettingsError, match=r"'stat_maen' \(did you mean 'stat_mean'\?\)"):
        ExtractionLogic().extract(volume, segmentation, features=["stat_maen"])


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


# ---------------------------------------------------------------------------------------------
# Several volumes, progress, cancel, table attributes, exports, batch
# ---------------------------------------------------------------------------------------------
def test_several_volumes_are_one_case_each_with_progress(scene):
    import json

    from PySERASlicerLib.slicer_logic import REPORT_ATTRIBUTE, SETTINGS_ATTRIBUTE, SUMMARY_ATTRIBUTE

    volume, segmentation, voxels, a, b = make_case(scene, "MV CT")
    rng = np.random.default_rng(11)
    other_voxels = rng.normal(200, 5, voxels.shape).astype(np.int16)
    ijk_to_ras = np.diag([-0.7, -0.7, 2.0, 1.0])
    ijk_to_ras[:3, 3] = (40.0, 12.0, -20.0)
    other = scene.add_volume(other_voxels, ijk_to_ras, "MV CT")  # same name: case ids made unique
    settings = Settings(categories="stat", dimensions="1st")
    running = ExtractionLogic().start([volume, other], segmentation, settings)
    seen = []
    result = running.wait(timeout=180, on_progress=seen.append)
    assert [(r["PatientID"], r["ROI"]) for r in result.rows] == [
        ("MV CT", "lesion A"), ("MV CT", "lesion B"), ("MV CT (2)", "lesion A"), ("MV CT (2)", "lesion B")]
    assert result.rows[2]["stat_mean"] == pytest.approx(other_voxels[a].mean())
    assert result.rows[3]["stat_mean"] == pytest.approx(other_voxels[b].mean())
    running_states = [p for p in seen if p.state == "running"]
    assert {p.cases_total for p in seen} == {2}
    assert any(p.cases_done == 1 for p in running_states), "the second case ran after the first"
    assert any(p.rois_total == 2 for p in running_states)
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(p.message.startswith("MV CT") for p in running_states), "messages name the case"
    steps = [e for p in seen for e in p.events if e["event"] == "step"]
    assert {e["case"] for e in steps} == {"MV CT", "MV CT (2)"} and {e["step"] for e in steps} >= {"stat"}
    assert seen[-1].state == "finished" and "2/2 case(s)" in seen[-1].text()
    frame, table, result = running.finish()
    assert table.GetNumberOfRows() == 4 and table.GetName() == "PySERA features (2 cases)"
    assert Settings.from_dict(json.loads(table.GetAttribute(SETTINGS_ATTRIBUTE))) == settings
    assert json.loads(table.GetAttribute(REPORT_ATTRIBUTE)) == result.report
    assert table.GetAttribute(SUMMARY_ATTRIBUTE).startswith("4 ROI(s) x 18 features from 2 case(s)")


def test_preset_and_pysera_keywords_and_segment_subset(scene):
    volume, segmentation, voxels, a, b = make_case(scene, "Preset CT")
    second = segmentation.GetSegmentation().GetNthSegmentID(1)
    frame, table = ExtractionLogic().extract([volume], segmentation, preset="ibsi_A", categories="stat",
                                             dimensions="1st", segment_ids=[second])
    assert list(frame["ROI"]) == ["lesion B"]
    kept = voxels[b]
    kept = kept[(kept >= -500) & (kept <= 400)]  # IBSI A re-segmentation range
    assert table.GetTable().GetColumnByName("stat_mean").GetValue(0) == pytest.approx(kept.mean())
    with pytest.raises(ValueError, match="either settings or preset"):
        ExtractionLogic().start(volume, segmentation, Settings(), preset="ibsi_A")


def test_cancel_stops_the_current_worker_and_no_further_case_starts(scene):
    from PySERASlicerLib.jobs import JobCancelled

    rng = np.random.default_rng(5)
    shape = (48, 160, 160)
    big = scene.add_volume(rng.normal(0, 1, shape).astype(np.float32), np.eye(4), "big")
    masks = {f"roi{i}": np.zeros(shape, bool) for i in range(12)}
    for i, mask in enumerate(masks.values()):
        mask[2 + i:30 + i, 10:150, 10:150] = True
    segmentation = scene.add_segmentation(big, masks, name="many")
    running = ExtractionLogic().start([big, big], segmentation, Settings(categories="all", dimensions="all"))
    progress = running.poll()
    assert progress.state == "running" and running.job is not None
    process = running.job.process
    running.cancel()
    assert process.poll() is not None, "worker killed"
    assert running.poll().state == "cancelled" and running.job is None
    with pytest.raises(JobCancelled):
        running.result()


def test_a_failing_case_is_reported_and_the_next_case_still_runs(scene, tmp_path):
    from PySERASlicerLib.jobs import start_extraction
    from PySERASlicerLib.slicer_logic import RunningExtraction, errors_text

    volume, segmentation, *_ = make_case(scene, "Fail CT")
    cases = ExtractionLogic.prepare_cases([(volume, segmentation), (volume, segmentation)],
                                          Settings(categories="stat", dimensions="1st"))
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'broken worker' >&2\nexit 4\n")
    fake_python.chmod(0o755)
    calls = []

    def start_job(*args, **kwargs):
        calls.append(kwargs["case_id"])
        if len(calls) == 1:
            kwargs["python"] = str(fake_python)
        return start_extraction(*args, **kwargs)

    running = RunningExtraction(cases, Settings(categories="stat", dimensions="1st"), start_job=start_job)
    result = running.wait(timeout=120)
    assert calls == ["Fail CT", "Fail CT (2)"]
    assert {r["PatientID"] for r in result.rows} == {"Fail CT (2)"}
    assert len(result.errors) == 1 and "exited with code 4" in result.errors[0]
    assert any(r["Level"] == "ERROR" and r["PatientID"] == "Fail CT" for r in result.report)
    assert "Fail CT: worker failed" in errors_text(result.report, result.errors)
    assert "1 case(s) failed" in result.summary()


def test_export_table_writes_three_sheets_and_csv(scene, tmp_path):
    import pandas as pd
    from PySERASlicerLib.slicer_logic import csv_export_path, export_table, export_table_csv

    volume, segmentation, voxels, a, b = make_case(scene, "Export CT")
    empty = np.zeros(voxels.shape, bool)
    empty[0, 0, 0] = True  # 1 voxel: dropped by min_roi_volume -> a WARNING row in the Report
    seg = scene.add_segmentation(volume, {"lesion A": a, "speck": empty}, name="with speck")
    frame, table = ExtractionLogic().extract(volume, seg, categories="stat", dimensions="1st")
    xlsx, csv = export_table(table, tmp_path / "out")
    sheets = pd.read_excel(xlsx, sheet_name=None)
    assert list(sheets) == ["Radiomics_Features", "Parameters", "Report", "Feature_Definitions"]
    features = sheets["Radiomics_Features"]
    assert list(features["ROI"]) == ["lesion A"]
    assert features["stat_mean"][0] == pytest.approx(voxels[a].mean())
    assert any("speck" in str(m) for m in sheets["Report"]["Message"])
    assert not (sheets["Report"]["Level"] == "LOG").any()
    parameters = sheets["Parameters"]
    assert "stat" in parameters.loc[parameters["Parameter"] == "categories", "Value"].iloc[0]
    path = export_table_csv(table, csv_export_path(tmp_path / "csv", table.GetName()))
    assert path.endswith(".csv") and "Export_CT_features" in path
    again = pd.read_csv(path)
    assert list(again.columns[:2]) == ["PatientID", "ROI"]
    assert again["stat_mean"][0] == pytest.approx(voxels[a].mean())
    assert csv_export_path(tmp_path / "csv", table.GetName()) != path  # never overwrites


def write_nrrd_case(folder_images, folder_masks, name, seed):
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    voxels = rng.normal(60, 10, (10, 24, 24)).astype(np.int16)
    mask = np.zeros(voxels.shape, np.uint8)
    mask[2:8, 4:16, 5:18] = 1
    for array, folder in ((voxels, folder_images), (mask, folder_masks)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.8, 0.8, 2.0))
        sitk.WriteImage(image, str(folder / f"{name}.nrrd"))
    return voxels, mask > 0


def test_batch_from_folders_and_from_a_case_csv(scene, tmp_path):
    import pandas as pd

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    expected = {}
    for seed, name in enumerate(("p1", "p2")):
        voxels, mask = write_nrrd_case(images, masks, name, seed)
        expected[name] = voxels[mask].mean()
    settings = Settings(categories="stat", dimensions="1st", enable_parallelism=False)
    logic = ExtractionLogic()
    running = logic.start_batch(settings, tmp_path / "out", image_folder=images, mask_folder=masks)
    frame, table, result = running.finish(timeout=180)
    assert sorted(frame["PatientID"]) == ["p1", "p2"]
    assert table.GetNumberOfRows() == 2
    for _, row in frame.iterrows():
        assert row["stat_mean"] == pytest.approx(expected[row["PatientID"]])
    assert running.outputs["excel_path"].endswith(".xlsx")
    assert table.GetAttribute("PySERA.Excel") == running.outputs["excel_path"]
    assert list(pd.read_excel(running.outputs["excel_path"], sheet_name=None)) == [
        "Radiomics_Features", "Parameters", "Report", "Feature_Definitions"]

    cases_csv = tmp_path / "cases.csv"
    cases_csv.write_text("case_id,image,mask\nfirst,images/p2.nrrd,masks/p2.nrrd\n")
    running = logic.start_batch(settings, tmp_path / "out_csv", cases_csv=cases_csv)
    frame, table, result = running.finish(timeout=180)
    assert list(frame["PatientID"]) == ["first"]
    assert frame["stat_mean"][0] == pytest.approx(expected["p2"])
    with pytest.raises(ValueError, match="either a case CSV"):
        logic.start_batch(settings, tmp_path / "x", image_folder=images, mask_folder=masks, cases_csv=cases_csv)
    with pytest.raises(ValueError, match="image folder"):
        logic.start_batch(settings, tmp_path / "x", image_folder=images)
