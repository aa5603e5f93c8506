"""ROIs on which features are undefined still give rows: NaN where undefined, and one Report
warning per ROI naming those features (one-voxel ROI, single-voxel components, constant ROI)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PySERASlicerLib import process_batch
from PySERASlicerLib.case_extraction import extract_case
from PySERASlicerLib.cases import Case
from PySERASlicerLib.image import Image
from PySERASlicerLib.settings import Settings

ID_COLUMNS = {"PatientID", "ROI"}


def _image(shape=(12, 20, 20), seed=0):
    return np.random.default_rng(seed).normal(100, 20, shape).astype(np.float32)


def _undefined_warnings(result):
    report = pd.read_excel(result["excel_path"], sheet_name="Report")
    return report[(report["Level"] == "WARNING") & report["Message"].str.contains("undefined for this ROI")]


def _nan_features(frame: pd.DataFrame, row: int):
    return {c for c in frame.columns if c not in ID_COLUMNS and isinstance(frame[c].iloc[row], float)
            and math.isnan(frame[c].iloc[row])}


def _check_warning_names_the_nan_features(frame, warnings):
    assert len(warnings) == len(frame), "one warning per ROI"
    for row, message in enumerate(warnings["Message"]):
        named = set(message.split("APPROXIMATE_VALUE): ", 1)[1].split(", "))
        assert named == _nan_features(frame, row)


def test_one_voxel_roi_gives_a_row_with_nan(tmp_path):
    mask = np.zeros((12, 20, 20), np.uint8)
    mask[5, 8, 8] = 1
    result = process_batch(_image(), mask, str(tmp_path / "out"), spacing=(1, 1, 1), min_roi_volume=1,
                           enable_parallelism=False, categories="all", dimensions="all")
    assert result["success"] and not result["error"], result["error"]
    frame = result["features_extracted"]
    assert len(frame) == 1
    nan = _nan_features(frame, 0)
    assert {"stat_skew", "cm_joint_entr_3D_avg", "morph_pca_elongation"} <= nan
    assert frame["stat_mean"].iloc[0] == pytest.approx(float(_image()[5, 8, 8]))
    warnings = _undefined_warnings(result)
    _check_warning_names_the_nan_features(frame, warnings)
    assert "the intensity mask has 1 voxel(s)" in warnings["Message"].iloc[0]


def test_two_thousand_single_voxel_components():
    """The case itself (no Excel file: writing 2000 rows would dominate the test's time)."""
    shape = (20, 20, 40)
    mask = np.zeros(shape, np.uint8)
    mask[::2, ::2, ::2] = 1  # 10 x 10 x 20 = 2000 isolated voxels: 2000 lesions of label 1
    settings = Settings.from_pysera(min_roi_volume=1, roi_num=5000, enable_parallelism=False, categories="glcm",
                                    dimensions="3d")
    result = extract_case(Case("dust", Image(_image(shape), (1, 1, 1)), mask), settings)
    assert not result.error, result.error
    frame = pd.DataFrame(result.rows)
    assert len(frame) == 2000
    assert frame["cm_joint_entr_3D_avg"].isna().all()
    warnings = pd.DataFrame([e.as_row() for e in result.entries if e.level == "WARNING"])
    _check_warning_names_the_nan_features(frame, warnings[warnings["Message"].str.contains("undefined for this ROI")])


def test_constant_roi_gives_a_row_with_nan_where_undefined(tmp_path):
    image = np.full((12, 20, 20), 7, np.float32)
    mask = np.zeros(image.shape, np.uint8)
    mask[2:10, 4:16, 4:16] = 1
    result = process_batch(image, mask, str(tmp_path / "out"), spacing=(1, 1, 1), enable_parallelism=False,
                           categories="stat,glcm,glrlm", dimensions="1st,3d")
    assert not result["error"], result["error"]
    frame = result["features_extracted"]
    assert len(frame) == 1
    assert frame["stat_mean"].iloc[0] == 7 and frame["stat_var"].iloc[0] == 0
    assert {"stat_skew", "cm_corr_3D_avg"} <= _nan_features(frame, 0)
    warnings = _undefined_warnings(result)
    _check_warning_names_the_nan_features(frame, warnings)
    assert "every voxel of the ROI has the same intensity" in warnings["Message"].iloc[0]
