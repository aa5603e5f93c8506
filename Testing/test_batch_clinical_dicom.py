"""process_batch on a whole-body-PET-like case: a PET series in Bq/ml and an 11-segment DICOM SEG
whose lesions share one label and whose frames sit 0.02 voxel off the PET slices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clinical_dicom_fixtures import PET_TAGS, write_clinical_seg, write_pet_series
from PySERASlicerLib import process_batch

SHAPE = (12, 30, 30)
SPACING, ORIGIN = (4.0, 4.0, 3.0), (-20.0, -20.0, 0.0)
START_FACTOR = 70_000.0 / (370e6 * 2.0 ** (-3600.0 / 6586.2))
RUN = dict(categories="stat", dimensions="1st", enable_parallelism=False, roi_num=20, min_roi_volume=1)


def _segments():
    """Segment 1 'Liver' and ten 'Neoplasm, Secondary' boxes, the last one up to the last slice."""
    segments = []
    liver = np.zeros(SHAPE, bool)
    liver[2:8, 2:10, 2:12] = True
    segments.append(("Liver", liver))
    for n in range(10):
        lesion = np.zeros(SHAPE, bool)
        j, i = 12 + 3 * (n // 5), 2 + 5 * (n % 5)
        lesion[n + 1:n + 3, j:j + 2, i:i + 3] = True
        segments.append(("Neoplasm, Secondary", lesion))
    return segments


@pytest.fixture
def pet_case(tmp_path):
    stored = np.random.default_rng(5).integers(200, 9000, SHAPE).astype(np.int16)
    uids = write_pet_series(tmp_path / "pet", stored, SPACING, ORIGIN)
    segments = _segments()
    write_clinical_seg(tmp_path / "seg.dcm", segments, uids, SPACING, ORIGIN, slice_offset_voxels=0.02)
    return tmp_path, stored, segments


def test_every_segment_is_a_row_in_suv_and_the_report_says_so(pet_case):
    tmp_path, stored, segments = pet_case
    result = process_batch(tmp_path / "pet", tmp_path / "seg.dcm", tmp_path / "out", **RUN)
    frame = result["features_extracted"]
    names = ["Liver"] + [f"Neoplasm, Secondary_{n}" for n in range(2, 12)]
    assert sorted(frame["ROI"]) == sorted(names)
    by_roi = frame.set_index("ROI")
    for name, (_, mask) in zip(names, segments):
        assert by_roi.loc[name, "stat_mean"] == pytest.approx(stored[mask].mean() * START_FACTOR, rel=1e-9), name

    report = pd.read_excel(result["excel_path"], sheet_name="Report")
    messages = list(report["Message"])
    for number, name in enumerate(names, start=1):
        voxels = int(segments[number - 1][1].sum())
        label = segments[number - 1][0]
        assert f"seg.dcm: segment {number} {label!r} read as ROI {name!r} ({voxels} voxels)" in messages
    assert any("segments 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 share the label" in m for m in messages)
    suv_rows = report[report["Message"].str.startswith("PET converted to SUV")]
    assert len(suv_rows) == 1 and suv_rows["Level"].iloc[0] == "INFO"
    assert f"factor {START_FACTOR:.6g}" in suv_rows["Message"].iloc[0]
    provenance = json.loads(Path(result["provenance_path"]).read_text())["provenance"]
    (inputs,) = provenance["inputs"].values()
    assert f"factor {START_FACTOR:.6g}" in inputs["pet_suv"] and "PatientWeight 70" in inputs["pet_suv"]


def test_suv_switched_off_by_the_pysera_style_key(pet_case):
    tmp_path, stored, segments = pet_case
    result = process_batch(tmp_path / "pet", tmp_path / "seg.dcm", tmp_path / "out", **RUN,
                           IBSI_based_parameters={"radiomics_SUV": 0})
    liver = result["features_extracted"].set_index("ROI").loc["Liver"]
    assert liver["stat_mean"] == pytest.approx(stored[segments[0][1]].mean(), rel=1e-12)


def test_missing_weight_is_a_report_warning_and_features_use_stored_values(tmp_path):
    stored = np.random.default_rng(6).integers(200, 9000, SHAPE).astype(np.int16)
    uids = write_pet_series(tmp_path / "pet", stored, SPACING, ORIGIN, tags={**PET_TAGS, "PatientWeight": None})
    liver = _segments()[0]
    write_clinical_seg(tmp_path / "seg.dcm", [liver], uids, SPACING, ORIGIN)
    result = process_batch(tmp_path / "pet", tmp_path / "seg.dcm", tmp_path / "out", **RUN)
    assert result["features_extracted"]["stat_mean"].iloc[0] == pytest.approx(stored[liver[1]].mean(), rel=1e-12)
    report = pd.read_excel(result["excel_path"], sheet_name="Report")
    warning = report[report["Message"].str.contains("PET SUV not computed")]
    assert list(warning["Level"]) == ["WARNING"]
    assert "missing PatientWeight (0010,1030)" in warning["Message"].iloc[0]
