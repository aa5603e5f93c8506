"""process_batch: each PySERA parameter with its documented meaning (serial runs; the pool is
tested in test_batch_parallel.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from batch_fixtures import case_arrays, write_case, write_nifti
from dicom_fixtures import index_to_world, square, world_geometry, write_rtstruct, write_series
from PySERASlicerLib import process_batch
from PySERASlicerLib.settings import Settings

STAT = dict(categories="stat", enable_parallelism=False)


@pytest.fixture
def two_cases(tmp_path):
    for index, name in enumerate(("p1", "p2")):
        write_case(tmp_path, name, index)
    return tmp_path / "images", tmp_path / "masks"


def _report(result) -> pd.DataFrame:
    return pd.read_excel(result["excel_path"], sheet_name="Report")


def test_default_output_folder_is_output_result_in_working_folder(tmp_path, two_cases, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = process_batch(*two_cases, **STAT)
    assert result["success"] and result["processed_files"] == 2
    assert Path(result["output_path"]) == tmp_path / "output_result"
    assert Path(result["excel_path"]).parent == tmp_path / "output_result"
    assert not (tmp_path / "temporary_files_path").exists()  # only made for RTSTRUCT masks


def test_features_match_an_independent_computation(tmp_path, two_cases):
    result = process_batch(*two_cases, tmp_path / "out", **STAT)
    frame = result["features_extracted"]
    assert list(frame.columns[:2]) == ["PatientID", "ROI"]
    assert set(frame.columns[2:]) == {c for c in frame.columns if c.startswith("stat_")}
    assert frame[["PatientID", "ROI"]].values.tolist() == [
        ["p1", "label_1_lesion_1"], ["p1", "label_2_lesion_1"], ["p2", "label_1_lesion_1"], ["p2", "label_2_lesion_1"]]
    image, mask = case_arrays(1)
    values = image[mask == 2].astype(np.float64)
    row = frame.iloc[3]
    assert row["stat_mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert row["stat_max"] == pytest.approx(values.max(), rel=1e-12)
    assert row["stat_energy"] == pytest.approx(np.sum(values ** 2), rel=1e-12)


def test_categories_and_dimensions_validated(tmp_path, two_cases):
    result = process_batch(*two_cases, tmp_path / "out", categories="stat, bogus", enable_parallelism=False)
    assert not result["success"] and "categories: unknown name(s) bogus" in result["error"]
    assert result["excel_path"] is None
    result = process_batch(*two_cases, tmp_path / "out", categories="stat", dimensions="4d")
    assert "dimensions: unknown name(s) 4d" in result["error"]


@pytest.mark.parametrize("key, value, fragment", [
    ("roi_selection_mode", "per_lesion", "roi_selection_mode: 'per_lesion' is not valid; accepted values: per_Img"),
    ("feature_value_mode", "MEAN", "feature_value_mode: 'MEAN' is not valid"),
    ("num_workers", "zero", "num_workers: 'zero' is not valid"),
    ("extraction_mode", "magic", "extraction_mode: 'magic' is not valid"),
    ("deep_learning_model", "alexnet", "deep_learning_model: 'alexnet' is not valid"),
    ("report", "verbose", "report: 'verbose' is not valid"),
    ("bin_size", -1, "bin_size: -1 is not valid"),
    ("roi_num", 0, "roi_num: 0 is not valid"),
    ("IBSI_based_parameters", {"radiomics_Bogus": 1}, "IBSI_based_parameters: unknown key 'radiomics_Bogus'"),
    ("IBSI_based_parameters", {"radiomics_DiscType": "FBX"}, "radiomics_DiscType: 'FBX' is not valid"),
])
def test_unknown_parameter_values_named(tmp_path, two_cases, key, value, fragment):
    result = process_batch(*two_cases, tmp_path / "out", categories="stat", **{key: value})
    assert result["success"] is False and result["processed_files"] == 0
    assert fragment in result["error"]


def test_num_workers_str_or_int_and_enable_parallelism(tmp_path, two_cases):
    for workers in ("2", 2):
        events = []
        result = process_batch(*two_cases, tmp_path / "out", categories="stat", num_workers=workers,
                               progress_fn=events.append)
        assert any("2 case(s) to process with 2 worker(s)" in line for line in result["logs"])
        assert {e["pid"] for e in events if e["event"] == "case_start"} != {os.getpid()}
    events = []
    result = process_batch(*two_cases, tmp_path / "out", categories="stat", num_workers=4, enable_parallelism=False,
                           progress_fn=events.append)
    assert any("with 1 worker(s)" in line for line in result["logs"])
    assert {e["pid"] for e in events if e["event"] == "case_start"} == {os.getpid()}


def test_apply_preprocessing_rounds_mask_values(tmp_path):
    image, mask = case_arrays(0)
    write_nifti(tmp_path / "img.nii.gz", image)
    write_nifti(tmp_path / "msk.nii.gz", mask.astype(np.float32) * 0.98)  # 0.98 / 1.96
    result = process_batch(tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", tmp_path / "out", **STAT)
    assert result["processed_files"] == 0
    assert "msk.nii.gz: mask has non-integer values" in result["error"]
    assert "apply_preprocessing=True" in result["error"]
    result = process_batch(tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", tmp_path / "out",
                           apply_preprocessing=True, **STAT)
    assert result["features_extracted"]["ROI"].tolist() == ["label_1_lesion_1", "label_2_lesion_1"]


def test_min_roi_volume_drops_small_lesions_with_a_report_row(tmp_path, two_cases):
    result = process_batch(*two_cases, tmp_path / "out", min_roi_volume=200, **STAT)
    assert result["features_extracted"]["ROI"].tolist() == ["label_1_lesion_1"] * 2
    report = _report(result)
    dropped = report[report["Message"].str.contains("dropped: 180 voxels < min_roi_volume 200")]
    assert dropped["PatientID"].tolist() == ["p1", "p2"] and set(dropped["Level"]) == {"WARNING"}
    result = process_batch(*two_cases, tmp_path / "out", min_roi_volume=5000, **STAT)
    assert result["processed_files"] == 0
    assert "no ROI has at least 5000 voxels (min_roi_volume); largest: 1440 voxels" in result["error"]


def _multi_lesion_mask():
    mask = np.zeros((20, 32, 32), dtype=np.uint8)
    mask[2:6, 2:8, 2:8] = 1  # 144 voxels
    mask[10:12, 2:5, 2:5] = 1  # 18
    mask[15:18, 20:30, 20:30] = 1  # 300
    mask[2:6, 20:30, 2:6] = 2  # 160
    mask[10:13, 20:24, 20:24] = 2  # 48
    return mask


def test_roi_num_and_selection_mode(tmp_path):
    image, _ = case_arrays(3)
    write_nifti(tmp_path / "img.nii.gz", image)
    write_nifti(tmp_path / "msk.nii.gz", _multi_lesion_mask())
    args = (tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", tmp_path / "out")
    per_image = process_batch(*args, roi_num=2, roi_selection_mode="per_Img", **STAT)["features_extracted"]
    assert per_image["ROI"].tolist() == ["label_1_lesion_1", "label_2_lesion_1"]  # 300 and 160 voxels
    per_region = process_batch(*args, roi_num=1, roi_selection_mode="PER_REGION", **STAT)["features_extracted"]
    assert per_region["ROI"].tolist() == ["label_1_lesion_1", "label_2_lesion_1"]
    per_region = process_batch(*args, roi_num=2, roi_selection_mode="Per_Region", **STAT)
    assert per_region["features_extracted"]["ROI"].tolist() == [
        "label_1_lesion_1", "label_1_lesion_2", "label_2_lesion_1", "label_2_lesion_2"]
    report = _report(per_region)
    assert report["Message"].str.contains(r"label_1_lesion_3 \(18 voxels\) not selected: roi_num=2").any()


def test_feature_value_mode(tmp_path):
    image = np.full((20, 32, 32), 50.0, dtype=np.float32)
    _, mask = case_arrays(0)
    write_nifti(tmp_path / "img.nii.gz", image)
    write_nifti(tmp_path / "msk.nii.gz", mask)
    args = (tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", tmp_path / "out")
    real = process_batch(*args, feature_value_mode="REAL_VALUE", **STAT)["features_extracted"]
    assert np.isnan(real["stat_skew"]).all() and np.isnan(real["stat_kurt"]).all()  # 0/0 for a constant ROI
    approx = process_batch(*args, feature_value_mode="approximate_value", **STAT)["features_extracted"]
    assert (approx["stat_skew"] == 0.0).all() and (approx["stat_kurt"] == 0.0).all()
    assert (approx["stat_mean"] == 50.0).all()


def test_aggregation_lesion_per_image_and_per_region(tmp_path):
    image, _ = case_arrays(5)
    mask = _multi_lesion_mask()
    write_nifti(tmp_path / "img.nii.gz", image)
    write_nifti(tmp_path / "msk.nii.gz", mask)
    args = (tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", tmp_path / "out")
    result = process_batch(*args, aggregation_lesion=True, **STAT)
    frame = result["features_extracted"]
    assert frame["ROI"].tolist() == ["all_rois_aggregated"]
    union = image[mask > 0].astype(np.float64)
    # disjoint lesions: the voxel-weighted mean of means is the mean of the union, energies add up
    assert frame["stat_mean"].iloc[0] == pytest.approx(union.mean(), rel=1e-12)
    assert frame["stat_energy"].iloc[0] == pytest.approx(np.sum(union ** 2), rel=1e-12)
    assert _report(result)["Message"].str.contains("5 ROIs aggregated into 1 row").any()

    frame = process_batch(*args, aggregation_lesion=True, roi_selection_mode="per_region", **STAT)["features_extracted"]
    assert frame["ROI"].tolist() == ["label_1_aggregated", "label_2_aggregated"]
    for row, label in zip(frame.itertuples(), (1, 2)):
        values = image[mask == label].astype(np.float64)
        assert row.stat_mean == pytest.approx(values.mean(), rel=1e-12)
        assert row.stat_energy == pytest.approx(np.sum(values ** 2), rel=1e-12)


def test_aggregation_rules_from_registry():
    from PySERASlicerLib.rois import aggregate_rows, aggregation_rule

    assert aggregation_rule("morph_volume") == "sum"
    assert aggregation_rule("stat_energy") == "sum"
    assert aggregation_rule("stat_mean") == "weighted_mean"
    rows = [{"PatientID": "p", "ROI": "a", "stat_mean": 1.0, "stat_energy": 10.0, "stat_skew": float("nan")},
            {"PatientID": "p", "ROI": "b", "stat_mean": 4.0, "stat_energy": float("nan"), "stat_skew": 2.0}]
    out = aggregate_rows(rows, [3, 1], "x")
    assert out == {"PatientID": "p", "ROI": "x", "stat_mean": 1.75, "stat_energy": 10.0, "stat_skew": 2.0}
    assert aggregate_rows(rows, [3, 1], "x", deep=True)["stat_mean"] == 2.5


def test_callback_start_end_per_roi(tmp_path, two_cases):
    calls = []
    result = process_batch(*two_cases, tmp_path / "out", callback_fn=lambda *a: calls.append(a), **STAT)
    assert result["processed_files"] == 2
    assert calls == [(flag, case, roi) for case in ("p1", "p2") for roi in ("label_1_lesion_1", "label_2_lesion_1")
                     for flag in ("START", "END")]


def _lines(result, level):
    return [line for line in result["logs"] if f" - {level} - " in line]


def test_report_levels_keep_the_more_severe_and_do_not_leak(tmp_path, two_cases):
    image_folder, mask_folder = two_cases
    (image_folder / "orphan.nii.gz").write_bytes((image_folder / "p1.nii.gz").read_bytes())  # -> ERROR row
    args = (image_folder, mask_folder, tmp_path / "out")
    kwargs = dict(min_roi_volume=200, **STAT)  # -> WARNING rows (small lesions dropped)
    full = process_batch(*args, report="all", **kwargs)
    assert _lines(full, "INFO") and _lines(full, "WARNING") and _lines(full, "ERROR")
    assert process_batch(*args, report="info", **kwargs)["logs"] and _lines(process_batch(*args, report="info",
                                                                                          **kwargs), "INFO")
    warning = process_batch(*args, report="warning", **kwargs)
    assert not _lines(warning, "INFO") and _lines(warning, "WARNING") and _lines(warning, "ERROR")
    error = process_batch(*args, report="error", **kwargs)
    assert not _lines(error, "INFO") and not _lines(error, "WARNING") and _lines(error, "ERROR")
    logger = logging.getLogger("PySERASlicerLib")
    level_before = (logger.level, logger.disabled, logging.root.manager.disable)
    none = process_batch(*args, report="none", **kwargs)
    assert none["logs"] == [] and none["processed_files"] == 2
    # the Report sheet still names the failure: a failed case never disappears
    assert _report(none)["Message"].str.contains("No matching mask found for orphan.nii.gz").any()
    assert (logger.level, logger.disabled, logging.root.manager.disable) == level_before
    again = process_batch(*args, report="all", **kwargs)
    assert len(again["logs"]) == len(full["logs"])


def test_ibsi_based_parameters_and_bin_size(tmp_path, two_cases):
    """bin_size and IBSI_based_parameters reach the engine: FBS bins of width bin_size from the ROI
    minimum (ih_max), and radiomics_isQuntzStat chooses the resampled or the original image for stat_*."""
    ibsi = {"radiomics_DiscType": "FBS", "radiomics_isScale": 1, "radiomics_isotVoxSize": 1.3,
            "radiomics_VoxInterp": "linear", "radiomics_ROIInterp": "linear"}
    image, mask = case_arrays(0)
    values = image[mask == 1].astype(np.float64)
    frames = {}
    for bin_size in (10, 25):
        result = process_batch(*two_cases, tmp_path / "out", bin_size=bin_size, categories="ih,stat",
                               enable_parallelism=False, IBSI_based_parameters=ibsi)
        frames[bin_size] = result["features_extracted"]
        parameters = pd.read_excel(result["excel_path"], sheet_name="Parameters")
        assert {"discretisation.bin_width": str(float(bin_size)),
                "resampling.statistics_on_resampled": "True"}.items() <= dict(
            zip(parameters["Parameter"], parameters["Value"].astype(str))).items()
    for bin_size, frame in frames.items():
        row = frame.iloc[0]
        assert row["ih_max"] == np.floor((row["stat_max"] - row["stat_min"]) / bin_size) + 1
    resampled = frames[25].iloc[0]
    original = process_batch(*two_cases, tmp_path / "out", categories="stat", enable_parallelism=False,
                             IBSI_based_parameters={**ibsi, "radiomics_isQuntzStat": 0})["features_extracted"].iloc[0]
    # statistics of the original voxels, untouched by the interpolation to 1.3 mm
    assert original["stat_mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert original["stat_max"] == values.max() and original["stat_mean"] != resampled["stat_mean"]


def test_settings_object_with_pysera_overrides(tmp_path, two_cases):
    settings = Settings.from_pysera(categories="stat", roi_num=1)
    result = process_batch(*two_cases, tmp_path / "out", settings=settings, enable_parallelism=False)
    assert result["features_extracted"]["ROI"].tolist() == ["label_1_lesion_1"] * 2
    result = process_batch(*two_cases, tmp_path / "out", settings=settings, roi_num=2, enable_parallelism=False)
    assert len(result["features_extracted"]) == 4


def test_temporary_files_path_used_for_rtstruct_and_cleared(tmp_path):
    spacing, origin = (1.0, 1.0, 2.0), (0.0, 0.0, 0.0)
    stored = (np.random.default_rng(0).integers(0, 50, (10, 24, 24)) + 1000).astype(np.int16)
    uids = write_series(tmp_path / "ct", stored, spacing, origin)
    _, affine = world_geometry(spacing, origin, (1, 0, 0, 0, 1, 0))
    contours = []
    for k in range(2, 7):
        z = index_to_world(affine, (0, 0, k))[2]
        contours.append(square(3.5, 12.5, 4.5, 15.5, z))
    write_rtstruct(tmp_path / "rs.dcm", {"GTV": contours, "Small": [square(18.5, 20.5, 18.5, 20.5, 4.0)]}, uids)
    temp = tmp_path / "tmpfiles"
    seen = []

    def callback(flag, case, roi):
        if flag == "START":
            seen.append(sorted(p.name for p in temp.rglob("*.npy")))

    result = process_batch(tmp_path / "ct", tmp_path / "rs.dcm", tmp_path / "out", temporary_files_path=str(temp),
                           callback_fn=callback, min_roi_volume=1, **STAT)
    assert result["features_extracted"]["ROI"].tolist() == ["GTV", "Small"]
    assert seen[0] == ["000_GTV.npy", "001_Small.npy"]
    assert not temp.exists()  # emptied and removed after the run
    gtv = result["features_extracted"].iloc[0]
    expected = stored[2:7, 5:16, 4:13].astype(np.float64) - 1024
    assert gtv["stat_mean"] == pytest.approx(expected.mean(), rel=1e-12)


def test_numpy_inputs_with_spacing(tmp_path):
    image, mask = case_arrays(2)
    result = process_batch(image, mask, tmp_path / "out", spacing=(0.5, 0.5, 3.0), **STAT)
    assert result["processed_files"] == 1
    assert not any("assuming 1 x 1 x 1 mm" in line for line in result["logs"])
    result = process_batch(image, mask, tmp_path / "out", **STAT)
    assert any("assuming 1 x 1 x 1 mm" in line for line in result["logs"])


def test_deep_feature_mode_dispatches_to_the_deep_module_and_aggregates_by_mean(tmp_path):
    from PySERASlicerLib.engine.deep import DeepDependencyError, import_torch
    from PySERASlicerLib.settings import DeepSettings

    try:
        import_torch()  # the engine's own import path (with the CPU-torch torchvision fix)
    except DeepDependencyError as exc:
        pytest.skip(f"torch/torchvision not installed: {exc}")

    write_case(tmp_path, "p1", 0)
    args = (tmp_path / "images", tmp_path / "masks", tmp_path / "out")
    settings = Settings.from_pysera(extraction_mode="deep_feature", enable_parallelism=False)
    no_weights = settings.replace(deep=DeepSettings(weights_path=str(tmp_path / "none.pth")))
    missing = process_batch(*args, settings=no_weights)  # checked once, before any case
    assert missing["processed_files"] == 0 and missing["failed_files"] == 0
    assert str(tmp_path / "none.pth") in missing["error"] and "unexpected" not in missing["error"]
    settings = settings.replace(deep=DeepSettings(weights_path="random:1"))  # explicit test-only weights
    per_roi = process_batch(*args, settings=settings)["features_extracted"]
    assert len(per_roi) == 2 and per_roi.columns[2].startswith("resnet50_")
    aggregated = process_batch(*args, settings=settings, aggregation_lesion=True)["features_extracted"]
    assert aggregated["ROI"].tolist() == ["all_rois_aggregated"]
    np.testing.assert_allclose(aggregated.iloc[0, 2:].to_numpy(float), per_roi.iloc[:, 2:].to_numpy(float).mean(axis=0),
                               rtol=1e-12)


def test_images_read_ahead_keep_each_case_its_own_values_errors_and_warnings(tmp_path):
    """With one worker the next case's image is read while a case is extracted: each case still
    gets its own features, a bad image is that case's Report row only, and a reading warning
    (a .npy image has no spacing) stays with its case."""
    for index, name in enumerate(("p1", "p2", "p4")):
        write_case(tmp_path, name, index)
    image, mask = case_arrays(3)
    image[0, 0, 0] = np.nan  # p3: refused when its (read-ahead) image is read
    write_case(tmp_path, "p3", 3, image=image, mask=mask)
    np.save(tmp_path / "images" / "p5.npy", case_arrays(4)[0])
    np.save(tmp_path / "masks" / "p5.npy", case_arrays(4)[1])
    result = process_batch(tmp_path / "images", tmp_path / "masks", tmp_path / "out", **STAT)
    assert result["processed_files"] == 4 and result["failed_files"] == 1
    assert result["error"].startswith("p3: ") and "p3.nii.gz" in result["error"] and "NaN" in result["error"]
    frame = result["features_extracted"].set_index(["PatientID", "ROI"])
    for name, suffix in (("p1", ".nii.gz"), ("p2", ".nii.gz"), ("p4", ".nii.gz"), ("p5", ".npy")):
        alone = process_batch(tmp_path / "images" / f"{name}{suffix}", tmp_path / "masks" / f"{name}{suffix}",
                              output_path=None, **STAT)["features_extracted"]
        assert len(alone) == 2
        own = frame.loc[name]
        assert own.index.tolist() == alone["ROI"].tolist()
        np.testing.assert_array_equal(own.to_numpy(dtype=float), alone.drop(columns=["PatientID", "ROI"])
                                      .to_numpy(dtype=float))
    report = _report(result)
    errors = report[report["Level"] == "ERROR"]
    assert errors["PatientID"].tolist() == ["p3"]
    spacing_warnings = report[report["Message"].astype(str).str.contains("no voxel spacing")]
    assert spacing_warnings["PatientID"].tolist() == ["p5"]


@pytest.mark.parametrize("case_timeout", [None, 60], ids=["in-process", "pool-worker"])
def test_masks_read_ahead_keep_their_warnings_and_errors_with_their_cases(tmp_path, case_timeout):
    """A plain mask file is read ahead with its image (in this process, and in a pool worker:
    case_timeout starts one): p3's cropped mask is placed on its image's grid with p3's warning,
    p4's truncated mask is p4's Report row, and p3's values equal those with its full mask."""
    from batch_fixtures import SPACING

    for index, name in enumerate(("p1", "p2", "p3", "p4")):
        write_case(tmp_path, name, index)
    mask = case_arrays(2)[1]
    write_nifti(tmp_path / "full_p3.nii.gz", mask)
    write_nifti(tmp_path / "masks" / "p3.nii.gz", mask[1:, 2:, 3:], origin=(3 * SPACING[0], 2 * SPACING[1], SPACING[2]))
    truncated = tmp_path / "masks" / "p4.nii.gz"
    truncated.write_bytes(truncated.read_bytes()[:100])
    result = process_batch(tmp_path / "images", tmp_path / "masks", tmp_path / "out", case_timeout=case_timeout,
                           **STAT)
    assert result["processed_files"] == 3 and result["failed_files"] == 1
    assert result["error"].startswith("p4: ") and "p4.nii.gz: cannot read image" in result["error"]
    report = _report(result)
    placed = report[report["Message"].astype(str).str.contains("masks/p3.nii.gz: ", regex=False)]
    assert placed["PatientID"].tolist() == ["p3"] and placed["Level"].tolist() == ["WARNING"]
    alone = process_batch(tmp_path / "images" / "p3.nii.gz", tmp_path / "full_p3.nii.gz", output_path=None,
                          **STAT)["features_extracted"].drop(columns=["PatientID", "ROI"])
    own = result["features_extracted"].set_index("PatientID").loc["p3"].drop(columns=["ROI"])
    np.testing.assert_array_equal(own.to_numpy(dtype=float), alone.to_numpy(dtype=float))


@pytest.mark.parametrize("case_timeout", [None, 60], ids=["in-process", "pool-worker"])
def test_an_empty_or_disjoint_mask_read_ahead_is_its_cases_row_only(tmp_path, case_timeout):
    """Masks read ahead (p3, p4) that are empty, or lie outside their image, give their case's
    clear error; the cases around them keep their rows."""
    from batch_fixtures import SPACING

    for index, name in enumerate(("p1", "p2", "p3", "p4", "p5")):
        write_case(tmp_path, name, index)
    mask = case_arrays(2)[1]
    write_nifti(tmp_path / "masks" / "p3.nii.gz", np.zeros_like(mask))
    write_nifti(tmp_path / "masks" / "p4.nii.gz", mask, origin=(500.0 * SPACING[0], 0.0, 0.0))
    result = process_batch(tmp_path / "images", tmp_path / "masks", tmp_path / "out", case_timeout=case_timeout,
                           **STAT)
    assert result["processed_files"] == 3 and result["failed_files"] == 2
    assert sorted(result["features_extracted"]["PatientID"].unique()) == ["p1", "p2", "p5"]
    errors = _report(result).query("Level == 'ERROR'").set_index("PatientID")["Message"]
    assert sorted(errors.index) == ["p3", "p4"]
    assert "p3.nii.gz: the mask is empty" in errors["p3"]
    assert "p4.nii.gz: the mask does not overlap the image" in errors["p4"]


def test_the_first_case_reads_and_imports_alone_before_any_image_is_read_ahead(tmp_path):
    """In a fresh process (a user's script) the first case runs with no read-ahead thread: it
    imports the readers and the engine's lazy modules alone, as two threads importing one package
    at once can break it (case_extraction.read_inputs_ahead); from the second case on the next image is read ahead."""
    for index in range(4):
        write_case(tmp_path, f"p{index}", index)
    script = f"""
import threading
from PySERASlicerLib import process_batch
seen = []
def note(event):
    if event["event"] in ("case_start", "case_end"):
        readers = any(t.name.startswith("pysera-read") for t in threading.enumerate())
        seen.append(f"{{event['event']}}:{{event['index']}}:{{readers}}")
result = process_batch({str(tmp_path / 'images')!r}, {str(tmp_path / 'masks')!r}, None,
                       categories="stat", enable_parallelism=False, progress_fn=note)
assert result["processed_files"] == 4, result["error"]
print(" ".join(seen))
"""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root / "PySERASlicer"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = done.stdout.split()
    assert seen[:2] == ["case_start:0:False", "case_end:0:False"]
    assert "case_start:2:True" in seen
