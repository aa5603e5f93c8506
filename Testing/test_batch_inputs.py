"""Batch inputs (folder layouts, DICOM patients with RTSTRUCT/SEG, cases CSV, settings JSON) and
outputs (Excel sheets, CSV twin, names that never overwrite, provenance with sha256)."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import PySERASlicerLib
import pytest
from batch_fixtures import case_arrays, write_case, write_cases_csv, write_nifti
from dicom_fixtures import ct_volume, index_to_world, square, world_geometry, write_rtstruct, write_seg, write_series
from PySERASlicerLib import process_batch, run_batch_csv
from PySERASlicerLib.export import unique_stem

STAT = dict(categories="stat", enable_parallelism=False)
SPACING, ORIGIN = (1.0, 1.0, 2.0), (-5.0, -6.0, 10.0)


def _dicom_patient(root: Path, name: str, seed: int, kind: str = "rtstruct") -> np.ndarray:
    """images/<name>/ = CT series, masks/<name>/ = RTSTRUCT or SEG with one box 'GTV'; returns the box."""
    stored = ct_volume((8, 20, 18), seed=seed)
    uids = write_series(root / "images" / name, stored, SPACING, ORIGIN)
    _, affine = world_geometry(SPACING, ORIGIN, (1, 0, 0, 0, 1, 0))
    box = np.zeros(stored.shape, dtype=bool)
    box[2:6, 4:12, 3:10] = True
    (root / "masks" / name).mkdir(parents=True)
    if kind == "rtstruct":
        contours = []
        for k in range(2, 6):
            lo, hi = index_to_world(affine, (2.5, 3.5, k)), index_to_world(affine, (9.5, 11.5, k))
            contours.append(square(lo[0], hi[0], lo[1], hi[1], lo[2]))
        write_rtstruct(root / "masks" / name / "rs.dcm", {"GTV": contours}, uids)
    else:
        write_seg(root / "masks" / name / "seg.dcm", {"GTV": box}, uids, SPACING, ORIGIN)
    return stored.astype(np.float64)[box] - 1024


def test_patient_subfolders_dicom_rtstruct_seg_and_nifti(tmp_path):
    values_a = _dicom_patient(tmp_path, "patient_a", 1, "rtstruct")
    values_b = _dicom_patient(tmp_path, "patient_b", 2, "seg")
    image, mask = case_arrays(3)
    write_nifti(tmp_path / "images" / "patient_c" / "scan.nii.gz", image)
    write_nifti(tmp_path / "masks" / "patient_c" / "segmentation.nii.gz", mask)
    # a patient folder with two images is reported, not guessed
    write_nifti(tmp_path / "images" / "patient_d" / "one.nii.gz", image)
    write_nifti(tmp_path / "images" / "patient_d" / "two.nii.gz", image)
    write_nifti(tmp_path / "masks" / "patient_d" / "m.nii.gz", mask)
    result = process_batch(tmp_path / "images", tmp_path / "masks", tmp_path / "out", **STAT)
    frame = result["features_extracted"].set_index(["PatientID", "ROI"])
    assert result["processed_files"] == 3
    assert frame.loc[("patient_a", "GTV"), "stat_mean"] == pytest.approx(values_a.mean(), rel=1e-12)
    assert frame.loc[("patient_b", "GTV"), "stat_mean"] == pytest.approx(values_b.mean(), rel=1e-12)
    assert frame.loc[("patient_c", "label_1_lesion_1"), "stat_mean"] == pytest.approx(
        image[mask == 1].astype(np.float64).mean(), rel=1e-12)
    assert "patient_d: " in result["error"] and "holds 2 files (one.nii.gz, two.nii.gz)" in result["error"]
    report = pd.read_excel(result["excel_path"], sheet_name="Report")
    assert report[report["Level"] == "ERROR"]["PatientID"].tolist() == ["patient_d"]


def test_flat_folders_unmatched_names_are_report_rows(tmp_path):
    write_case(tmp_path, "p1", 0)
    write_case(tmp_path, "p2", 1)
    image, mask = case_arrays(2)
    write_nifti(tmp_path / "images" / "lonely_image.nii.gz", image)
    write_nifti(tmp_path / "masks" / "lonely_mask.nii.gz", mask)
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    result = process_batch(tmp_path / "images", tmp_path / "masks", tmp_path / "out", **STAT)
    assert result["processed_files"] == 2
    assert f"lonely_image: No matching mask found for lonely_image.nii.gz in {tmp_path / 'masks'}" in result["error"]
    report = pd.read_excel(result["excel_path"], sheet_name="Report").set_index("PatientID")
    assert report.loc["lonely_image", "Level"] == "ERROR"
    assert report.loc["lonely_mask", "Level"] == "WARNING"
    assert "has no matching image" in report.loc["lonely_mask", "Message"]


def test_folder_without_images_and_missing_paths(tmp_path):
    (tmp_path / "empty_images").mkdir()
    (tmp_path / "masks").mkdir()
    result = process_batch(tmp_path / "empty_images", tmp_path / "masks", tmp_path / "out", **STAT)
    assert result["success"] is False
    assert result["error"] == (f"image_input {tmp_path / 'empty_images'}: the folder holds no image files, DICOM "
                               "series or patient folders")
    result = process_batch(tmp_path / "nope", tmp_path / "masks", tmp_path / "out", **STAT)
    assert "image_input" in result["error"] and "file or folder not found" in result["error"]


def test_split_dicom_makes_one_case_per_echo(tmp_path):
    echo = ct_volume((6, 12, 12), seed=4)
    uids = write_series(tmp_path / "mr", echo, SPACING, ORIGIN, modality="MR", intercept=0, prefix="e1",
                        per_slice=lambda k: {"EchoTime": "10"})
    write_series(tmp_path / "mr", echo * 2, SPACING, ORIGIN, modality="MR", intercept=0, prefix="e2",
                 series_uid=uids["series"], study_uid=uids["study"], frame_uid=uids["frame"],
                 per_slice=lambda k: {"EchoTime": "30"})
    mask = np.zeros((6, 12, 12), dtype=np.uint8)
    mask[1:5, 2:9, 3:8] = 1
    write_nifti(tmp_path / "mask.nii.gz", mask, spacing=SPACING, origin=ORIGIN)
    default = process_batch(tmp_path / "mr", tmp_path / "mask.nii.gz", tmp_path / "out", **STAT)
    assert default["features_extracted"]["PatientID"].tolist() == ["mr"]
    assert any("2 volumes split by echo time (10, 30); using volume 0" in line for line in default["logs"])
    split = process_batch(tmp_path / "mr", tmp_path / "mask.nii.gz", tmp_path / "out", split_dicom=True, **STAT)
    frame = split["features_extracted"].set_index("PatientID")
    assert list(frame.index) == ["mr_1", "mr_2"]
    assert frame.loc["mr_2", "stat_mean"] == pytest.approx(2 * frame.loc["mr_1", "stat_mean"], rel=1e-12)


def test_cases_csv_with_roi_label_and_settings_file(tmp_path):
    for index in range(3):
        write_case(tmp_path, f"p{index}", index)
    rows = [("first", "images/p0.nii.gz", "masks/p0.nii.gz", ""),
            ("second_label2", "images/p1.nii.gz", "masks/p1.nii.gz", "2"),
            ("missing", "images/none.nii.gz", "masks/p2.nii.gz", ""),
            ("bad_label", "images/p2.nii.gz", "masks/p2.nii.gz", "7")]
    cases = write_cases_csv(tmp_path / "cases.csv", rows)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"categories": "stat", "min_roi_volume": 5, "enable_parallelism": False,
                                    "IBSI_based_parameters": {"radiomics_DataType": "CT"}}))
    result = run_batch_csv(str(cases), str(settings), str(tmp_path / "out"))
    frame = result["features_extracted"]
    assert frame[["PatientID", "ROI"]].values.tolist() == [
        ["first", "label_1_lesion_1"], ["first", "label_2_lesion_1"], ["second_label2", "label_2_lesion_1"]]
    assert result["processed_files"] == 2 and result["failed_files"] == 2
    assert f"missing: {tmp_path / 'images' / 'none.nii.gz'}: file or folder not found" in result["error"]
    assert "bad_label: roi_label '7' is not in the mask; labels/structures present: 1, 2" in result["error"]
    parameters = pd.read_excel(result["excel_path"], sheet_name="Parameters")
    values = dict(zip(parameters["Parameter"], parameters["Value"].astype(str)))
    assert values["modality"] == "CT" and values["rois.min_roi_volume"] == "5"
    assert values["cases_csv"].startswith(str(cases))
    # the same through process_batch(cases_csv=...)
    again = process_batch(cases_csv=str(cases), output_path=str(tmp_path / "out2"), categories="stat",
                          min_roi_volume=5, enable_parallelism=False,
                          IBSI_based_parameters={"radiomics_DataType": "CT"})
    pd.testing.assert_frame_equal(again["features_extracted"], frame)


def test_cases_csv_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("id,img,msk\na,b,c\n")
    result = process_batch(cases_csv=str(tmp_path / "bad.csv"), output_path=str(tmp_path / "out"), **STAT)
    assert "missing column(s) case_id, image, mask" in result["error"]
    result = process_batch(tmp_path, tmp_path, cases_csv=str(tmp_path / "bad.csv"), output_path=str(tmp_path), **STAT)
    assert "give either cases_csv or image_input/mask_input" in result["error"]


def test_outputs_sheets_csv_twin_and_provenance(tmp_path):
    image_path, mask_path = write_case(tmp_path, "p1", 0)
    result = process_batch(tmp_path / "images", tmp_path / "masks", tmp_path / "out", **STAT)
    sheets = pd.read_excel(result["excel_path"], sheet_name=None)
    assert list(sheets) == ["Radiomics_Features", "Parameters", "Report", "Feature_Definitions"]
    features = sheets["Radiomics_Features"]
    pd.testing.assert_frame_equal(features, pd.read_csv(result["csv_path"]))
    np.testing.assert_allclose(features["stat_mean"], result["features_extracted"]["stat_mean"], rtol=1e-14)
    assert Path(result["provenance_path"]) == Path(result["excel_path"]).with_suffix(".json")

    record = json.loads(Path(result["provenance_path"]).read_text())
    image_sha = hashlib.sha256(image_path.read_bytes()).hexdigest()
    mask_sha = hashlib.sha256(mask_path.read_bytes()).hexdigest()
    provenance = record["provenance"]
    assert provenance["inputs"]["p1"] == {"image": f"{image_path} sha256:{image_sha}",
                                          "mask": f"{mask_path} sha256:{mask_sha}"}
    assert provenance["version"] == PySERASlicerLib.__version__ and provenance["host"] == socket.gethostname()
    assert provenance["started"] <= provenance["finished"]
    assert record["settings"]["categories"] == ["stat"]
    excel_sha = hashlib.sha256(Path(result["excel_path"]).read_bytes()).hexdigest()
    assert record["outputs"][result["excel_path"]] == excel_sha
    parameters = sheets["Parameters"]
    inputs = parameters[parameters["Section"] == "inputs"].set_index("Parameter")["Value"]
    assert inputs["p1.image"].endswith(image_sha)
    assert set(parameters["Section"]) == {"settings", "pysera", "provenance", "inputs"}


def test_output_names_sort_by_time_and_never_overwrite(tmp_path, monkeypatch):
    import time as time_module

    write_case(tmp_path, "p1", 0)
    monkeypatch.setattr(time_module, "strftime", lambda fmt, *a: "20250101_120000" if "%H%M%S" in fmt and "_" in fmt
                        else "2025-01-01T12:00:00")
    paths = [process_batch(tmp_path / "images", tmp_path / "masks", tmp_path / "out", **STAT)["excel_path"]
             for _ in range(3)]
    assert [Path(p).name for p in paths] == ["extracted_radiomics_features_20250101_120000.xlsx",
                                             "extracted_radiomics_features_20250101_120000_2.xlsx",
                                             "extracted_radiomics_features_20250101_120000_3.xlsx"]
    assert unique_stem(tmp_path / "out").name == "extracted_radiomics_features_20250101_120000_4"
