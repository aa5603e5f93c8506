"""Filtered-image features (IBSI-2 phase 2 chain): settings, column names, and that filtering only
the ROI's box plus the filter's reach gives the values of filtering the whole image."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from batch_fixtures import write_case
from PySERASlicerLib import Image, Settings, SettingsError, apply_filter, process_batch
from PySERASlicerLib.engine.features.stat import statistics
from PySERASlicerLib.engine.filters.features import filter_reach, filtered_features
from PySERASlicerLib.engine.filters.spec import parse_filter
from PySERASlicerLib.engine.pipeline import extract_roi
from PySERASlicerLib.settings import Interpolator, ResamplingSettings, ResegmentationSettings

ROOT = Path(__file__).resolve().parents[1]

#: Each reaches further than the local-intensity-peak margin the chain keeps anyway (9 voxels
#: in-plane, 5 across slices here), so a reach that is too short shows.
FINITE_FILTERS = [
    {"filter": "mean", "support": 25, "dimensions": "2D"},
    {"filter": "log", "sigma_mm": 4.0},
    {"filter": "laws", "kernel": "L5E5E5", "rotation_invariant": True, "energy_delta": 7},
    {"filter": "gabor", "sigma_mm": 3.0, "lambda_mm": 1.5, "gamma": 1.5, "rotation_invariant": True,
     "theta_step_deg": 45, "dimensions": "2D"},
    {"filter": "wavelet", "wavelet": "db3", "set": "HHL", "level": 2, "rotation_invariant": True},
    {"filter": "laws", "kernel": "E5E5", "boundary": "zero", "dimensions": "2D", "energy_delta": 7},
]


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(7)
    array = np.rint(rng.normal(0, 200, size=(20, 48, 44))).astype(np.int16)
    image = Image(array, spacing=(0.8, 0.8, 2.0), modality="CT", source="noise")
    mask = np.zeros(array.shape, bool)
    mask[8:13, 1:9, 30:43] = True  # touches the image border along i at the far end: not along j
    mask[4:6, 20:30, 10:20] = True
    return image, mask


def _whole_image_statistics(image, mask, settings, entry):
    response = apply_filter(image, entry).array
    lo, hi = settings.resegmentation.range_lower, settings.resegmentation.range_upper
    int_mask = mask & (image.array >= lo) & (image.array <= hi)
    return statistics(response[int_mask])


@pytest.mark.parametrize("entry", FINITE_FILTERS, ids=lambda e: parse_filter(e).label)
def test_cropped_filtering_equals_whole_image_filtering(case, entry):
    image, mask = case
    settings = Settings(categories=("stat",), dimensions=("1st",), filters=(entry,),
                        resegmentation=ResegmentationSettings(range_enabled=True, range_lower=-300, range_upper=400))
    values, warnings = filtered_features(image, mask, settings)
    label = parse_filter(entry).label
    expected = _whole_image_statistics(image, mask, settings, entry)
    assert set(values) == {f"{tag}_{label}" for tag in expected}
    for tag, value in expected.items():
        assert values[f"{tag}_{label}"] == pytest.approx(value, rel=1e-9, abs=1e-9), tag
    assert warnings == []


def test_periodic_boundary_filters_the_whole_image():
    """A periodic boundary wraps to the far side of the image: an ROI at one border needs it."""
    rng = np.random.default_rng(11)
    image = Image(rng.normal(0, 100, size=(6, 60, 60)), spacing=(1.0, 1.0, 2.0), source="noise")
    mask = np.zeros(image.array.shape, bool)
    mask[1:5, 20:30, 0:8] = True
    entry = {"filter": "mean", "support": 5, "boundary": "periodic", "dimensions": "2D"}
    settings = Settings(categories=("stat",), dimensions=("1st",), filters=(entry,))
    values, _ = filtered_features(image, mask, settings)
    expected = statistics(apply_filter(image, entry).array[mask])
    for tag, value in expected.items():
        assert values[f"{tag}_mean_m5_2D_periodic"] == pytest.approx(value, rel=1e-9, abs=1e-9), tag


def test_filter_reach_is_small_for_local_filters_and_none_for_fourier_filters():
    assert filter_reach(parse_filter({"filter": "log", "sigma_mm": 1.5}), (1.0, 1.0, 3.0)) == (6, 6, 2)
    assert filter_reach(parse_filter({"filter": "mean", "support": 5, "dimensions": "2D"}), (1, 1, 1)) == (2, 2, 0)
    assert filter_reach(parse_filter({"filter": "wavelet", "wavelet": "db3", "set": "HHH", "level": 2}),
                        (1, 1, 1)) == (9, 9, 9)
    assert filter_reach(parse_filter({"filter": "simoncelli"}), (1, 1, 1)) is None
    assert filter_reach(parse_filter({"filter": "mean", "support": 3, "boundary": "periodic"}), (1, 1, 1)) is None


def test_resampled_chain_with_reach_margin_equals_whole_grid(case):
    """With interpolation the box plus reach still gives the values of filtering the whole
    resampled grid (computed here by keeping the whole grid in the chain)."""
    from PySERASlicerLib.engine.processing import prepare_roi, resampling_grid

    image, mask = case
    resampling = ResamplingSettings(enabled=True, voxel_size_mm=1.0, image_interpolator=Interpolator.CUBIC,
                                    roi_interpolator=Interpolator.LINEAR, round_intensities=True)
    entries = ({"filter": "log", "sigma_mm": 4.0}, {"filter": "simoncelli", "level": 2})
    settings = Settings(categories=("stat",), dimensions=("1st",), resampling=resampling, filters=entries)
    values, _ = filtered_features(image, mask, settings)
    grid = resampling_grid(image.size_ijk, image.spacing, resampling)
    whole = prepare_roi(image, mask, settings, margin_voxels=grid.size)
    assert whole.image.array.shape == tuple(reversed(grid.size))
    for entry in entries:
        expected = statistics(apply_filter(whole.image, entry).array[whole.int_mask])
        label = parse_filter(entry).label
        for tag, value in expected.items():
            assert values[f"{tag}_{label}"] == pytest.approx(value, rel=1e-9, abs=1e-9), (label, tag)


def test_extract_roi_adds_filter_columns_and_keeps_the_original_ones(case):
    image, mask = case
    plain = Settings(categories=("stat", "ih"), dimensions=("1st",))
    filtered = plain.replace(filters=({"filter": "log", "sigma_mm": 1.5}, {"filter": "mean", "support": 3}),
                             filter_categories=("stat",))
    base = extract_roi(image, mask, plain, threads=1).values
    values = extract_roi(image, mask, filtered, threads=1).values
    assert {k: values[k] for k in base} == base
    extra = [k for k in values if k not in base]
    assert extra[:2] == ["stat_mean_log_s1.5", "stat_var_log_s1.5"] and len(extra) == 36
    assert "stat_rms_mean_m3" in extra


def test_filter_categories_on_request(case):
    image, mask = case
    settings = Settings(categories=("stat",), dimensions=("1st", "3d"), filters=({"filter": "mean", "support": 3},),
                        filter_categories=("stat", "glcm"))
    values = extract_roi(image, mask, settings, threads=1).values
    assert "cm_joint_max_3D_avg_mean_m3" in values and "stat_mean_mean_m3" in values


@pytest.mark.parametrize("data, key", [
    ({"filters": [{"filter": "log"}]}, "filters[0].sigma_mm"),
    ({"filters": [{"filter": "mean", "support": 3}, {"filter": "gabor", "sigma_mm": 1, "lambda_mm": 1, "gamma": 0}]},
     "filters[1].gamma"),
    ({"filters": {"filter": "mean"}}, "filters"),
    ({"filter_categories": ["morph"]}, "filter_categories"),
])
def test_settings_errors_name_the_key(data, key):
    with pytest.raises(SettingsError, match=key.replace("[", r"\[").replace("]", r"\]")):
        Settings.from_dict(data)


def test_settings_json_round_trip_keeps_the_filters():
    settings = Settings(filters=({"filter": "riesz_log", "sigma_mm": 3, "order": [1, 0, 0]},
                                 {"filter": "laws", "kernel": "l5s5", "dimensions": "2d"}))
    again = Settings.from_json(settings.to_json())
    assert again == settings
    assert [f.label for f in again.filters] == ["riesz_log_s3_o100", "laws_l5s5_2D"]


def test_process_batch_filters_keyword_adds_columns_and_report_rows(tmp_path):
    image_path, mask_path = write_case(tmp_path, "p1", 0)
    result = process_batch(str(image_path), str(mask_path), str(tmp_path / "out"), categories="stat",
                           enable_parallelism=False, filters=[{"filter": "log", "sigma_mm": 2.0, "dimensions": "2D"}])
    assert result["success"], result["error"]
    frame = result["features_extracted"]
    assert "stat_mean" in frame.columns and "stat_mean_log_s2_2D" in frame.columns
    report = pd.read_excel(result["excel_path"], sheet_name="Report")
    assert report["Message"].str.contains('filter log_s2_2D: {"filter": "log", "dimensions": "2D"').any()
    bad = process_batch(str(image_path), str(mask_path), str(tmp_path / "out2"), categories="stat",
                        filters=[{"filter": "log", "sigma_mm": 0}])
    assert not bad["success"] and "filters[0].sigma_mm" in bad["error"]


def test_phase2_script_entries_run_through_process_batch(tmp_path):
    """Every phase 2 filter id is a valid entry; two configuration-A ids on the CT phantom through
    process_batch (the full script takes about a minute: scripts/ibsi2_phase2.py)."""
    spec = importlib.util.spec_from_file_location("ibsi2_phase2", ROOT / "scripts" / "ibsi2_phase2.py")
    phase2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(phase2)
    ids = []
    for dimensions in ("2D", "3D"):
        entries = phase2.phase2_entries(dimensions)
        Settings(filters=[entry for _, entry in entries])  # all valid, labels unique
        ids += [fid for fid, _ in entries]
    assert ids == [f"{n}.{c}" for c in "AB" for n in range(1, 10)]
    entries = [entry for fid, entry in phase2.phase2_entries("2D") if fid in ("1.A", "3.A")]
    result = process_batch(str(phase2.IMAGE), str(phase2.MASK), str(tmp_path), settings=phase2.configuration("2D"),
                           filters=entries)
    row = result["features_extracted"].iloc[0]
    assert row["stat_mean_ibsi2_1A"] == pytest.approx(row["stat_mean"])  # no filter: the image itself
    assert row["stat_min"] >= -1000 and np.isfinite(row["stat_var_ibsi2_3A"])


def test_filters_beside_pysera_keys_in_a_settings_file(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('{"bin_size": 10, "IBSI_based_parameters": {"radiomics_DataType": "CT"}, '
                    '"filters": [{"filter": "mean", "support": 3}], "filter_categories": "stat,ih"}')
    settings = Settings.from_json(str(path))
    assert settings.discretisation.bin_width == 10 and settings.modality.value == "CT"
    assert [f.label for f in settings.filters] == ["mean_m3"] and settings.filter_categories == ("stat", "ih")
    preset = Settings.from_any({"preset": "ibsi_A", "filters": [{"filter": "log", "sigma_mm": 1}]})
    assert preset.resegmentation.range_lower == -500 and preset.filters[0].label == "log_s1"


def test_filters_reach_pool_workers(tmp_path):
    """Two cases in two worker processes: the filter entries travel with the settings."""
    for index in range(2):
        write_case(tmp_path, f"p{index}", index)
    result = process_batch(str(tmp_path / "images"), str(tmp_path / "masks"), None, categories="stat",
                           num_workers=2, filters=[{"filter": "wavelet", "wavelet": "db2", "set": "HL",
                                                    "dimensions": "2D"}])
    frame = result["features_extracted"]
    assert result["success"] and frame["PatientID"].nunique() == 2
    assert frame["stat_mean_wavelet_db2_hl_l1_2D"].notna().all()


def test_deep_mode_reports_that_filters_are_ignored(tmp_path):
    """The warning comes with the settings, before any case runs (here: a missing input)."""
    result = process_batch(str(tmp_path / "missing.nii.gz"), str(tmp_path / "missing_mask.nii.gz"), None,
                           extraction_mode="deep_feature", filters=[{"filter": "mean", "support": 3}])
    assert not result["success"]
    assert any("filters are ignored by extraction_mode deep_feature" in str(line) for line in result["logs"])


def test_filter_columns_follow_the_column_name_style_and_are_defined(tmp_path):
    from PySERASlicerLib.engine.registry import specs_by_tag, split_filtered_column

    image_path, mask_path = write_case(tmp_path, "p1", 0)
    entries = [{"filter": "mean", "support": 3}]
    ibsi = process_batch(str(image_path), str(mask_path), str(tmp_path / "ibsi"), categories="stat,glcm",
                         dimensions="1st,3d", enable_parallelism=False, filters=entries,
                         settings=Settings(filter_categories=("stat", "glcm")))
    pysera = process_batch(str(image_path), str(mask_path), None, categories="stat,glcm", dimensions="1st,3d",
                           enable_parallelism=False, filters=entries, column_names="pysera",
                           settings=Settings(filter_categories=("stat", "glcm")))
    spec = specs_by_tag()["cm_joint_max_3D_avg"]
    assert "cm_joint_max_3D_avg_mean_m3" in ibsi["features_extracted"].columns
    assert f"{spec.pysera_tag}_mean_m3" in pysera["features_extracted"].columns
    assert split_filtered_column("cm_joint_max_3D_avg_mean_m3") == (spec, "mean_m3")
    assert split_filtered_column("PatientID") is None and split_filtered_column("stat_mean") is None
    definitions = pd.read_excel(ibsi["excel_path"], sheet_name="Feature_Definitions")
    row = definitions[definitions["Column"] == "stat_mean_mean_m3"].iloc[0]
    assert row["IBSI code"] == "Q4LE" and row["IBSI name"] == "Mean intensity of the mean_m3 response map"
