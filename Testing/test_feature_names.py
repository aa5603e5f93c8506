"""``features=``: only the named features, in place of categories x dimensions (in this process,
in pool worker processes and from the command line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from batch_fixtures import case_arrays, write_case
from PySERASlicerLib import process_batch
from PySERASlicerLib.engine.pipeline import extract_roi
from PySERASlicerLib.export import DEFINITIONS_SHEET, FEATURES_SHEET
from PySERASlicerLib.image import Image
from PySERASlicerLib.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]
#: IBSI tags and PySERA names mixed, one name twice, not in output order
NAMES = ["glcm_contrast_3D_avg", "morph_volume", "stat_mean", "ngt_coarseness_3D", "stat_mean", "ih_entropy"]
#: the same features as output columns (IBSI tags, registry order)
COLUMNS = ["morph_volume", "stat_mean", "ih_entropy", "cm_contrast_3D_avg", "ngt_coarseness_3D"]


@pytest.fixture
def two_cases(tmp_path):
    for index, name in enumerate(("p1", "p2")):
        write_case(tmp_path, name, index)
    return tmp_path / "images", tmp_path / "masks"


def _full_run(two_cases, tmp_path) -> pd.DataFrame:
    result = process_batch(*two_cases, output_path=None, categories="all", dimensions="all",
                           enable_parallelism=False)
    assert result["success"], result["error"]
    return result["features_extracted"]


def test_named_features_are_the_columns_with_the_values_of_a_full_run(tmp_path, two_cases):
    result = process_batch(*two_cases, tmp_path / "out", features=NAMES, enable_parallelism=False)
    assert result["success"], result["error"]
    frame = result["features_extracted"]
    assert list(frame.columns) == ["PatientID", "ROI", *COLUMNS]
    full = _full_run(two_cases, tmp_path)
    pd.testing.assert_frame_equal(frame, full[["PatientID", "ROI", *COLUMNS]], rtol=1e-12)
    # the Excel report holds the same columns, and its definitions sheet one row per feature
    excel = pd.read_excel(result["excel_path"], sheet_name=None)
    assert list(excel[FEATURES_SHEET].columns) == ["PatientID", "ROI", *COLUMNS]
    assert excel[DEFINITIONS_SHEET]["IBSI tag"].tolist() == COLUMNS
    provenance = json.loads(Path(result["provenance_path"]).read_text())
    assert provenance["settings"]["features"] == list(dict.fromkeys(NAMES))


def test_one_comma_separated_string_and_pysera_column_names(tmp_path, two_cases):
    result = process_batch(*two_cases, output_path=None, features=" stat_mean, glcm_contrast_3D_avg ,",
                           column_names="pysera", enable_parallelism=False)
    assert result["success"], result["error"]
    assert list(result["features_extracted"].columns[2:]) == ["stat_mean", "glcm_contrast_3D_avg"]


def test_only_the_families_of_the_named_features_run():
    image, mask = case_arrays(0)
    steps = []
    values = extract_roi(Image(image.astype(np.float64), (0.9, 0.9, 2.0)), mask == 1,
                         Settings(features=["stat_mean", "cm_contrast_3D_avg"]), on_step=steps.append).values
    assert list(values) == ["stat_mean", "cm_contrast_3D_avg"]
    assert sorted(set(steps)) == ["glcm", "stat"]


def test_an_unknown_name_stops_the_run_before_any_case_and_names_the_closest_feature(tmp_path, two_cases):
    output = tmp_path / "out"
    result = process_batch(*two_cases, output, features=["stat_mean", "morph_volum", "no_such_feature"],
                           enable_parallelism=False)
    assert not result["success"] and result["processed_files"] == 0
    assert "features: unknown feature name(s) 'morph_volum' (did you mean 'morph_volume'?), 'no_such_feature'" \
        in result["error"]
    assert not output.exists()  # nothing written
    with pytest.raises(SettingsError, match="features: 3 is not valid"):
        Settings(features=["stat_mean", 3])
    with pytest.raises(SettingsError, match="features: 7 is not valid"):
        Settings(features=7)


def test_names_from_a_set_or_a_previous_results_columns(tmp_path, two_cases):
    """A researcher reusing the columns of an earlier table (a pandas Index) or a set of names."""
    earlier = process_batch(*two_cases, output_path=None, features=NAMES, enable_parallelism=False)
    columns = earlier["features_extracted"].columns[2:]
    again = process_batch(*two_cases, output_path=None, features=columns, enable_parallelism=False)
    pd.testing.assert_frame_equal(again["features_extracted"], earlier["features_extracted"])
    assert Settings(features={"stat_mean", "morph_volume"}).features in (("stat_mean", "morph_volume"),
                                                                        ("morph_volume", "stat_mean"))


def test_named_features_in_pool_worker_processes_equal_those_in_this_process(tmp_path, two_cases):
    pooled = process_batch(*two_cases, output_path=None, features=NAMES, num_workers=2, enable_parallelism=True,
                           case_timeout=600)  # a timeout runs the cases in worker processes
    assert pooled["success"], pooled["error"]
    serial = process_batch(*two_cases, output_path=None, features=NAMES, enable_parallelism=False)
    pd.testing.assert_frame_equal(pooled["features_extracted"], serial["features_extracted"])


def test_settings_file_and_command_line_take_features(tmp_path, two_cases):
    assert Settings.from_json(json.dumps({"features": "stat_mean,morph_volume"})).features == \
        ("stat_mean", "morph_volume")
    assert Settings.from_dict(Settings(features=NAMES).to_dict()).features == tuple(dict.fromkeys(NAMES))
    completed = subprocess.run([sys.executable, "-m", "PySERASlicerLib.cli", "extract", "--image", str(two_cases[0]),
                                "--mask", str(two_cases[1]), "--output", str(tmp_path / "cli"),
                                "--features", "stat_mean,morph_volume", "--enable-parallelism", "false"],
                               capture_output=True, text=True, cwd=ROOT / "PySERASlicer", timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    frame = pd.read_csv(next((tmp_path / "cli").glob("*.csv")))
    assert list(frame.columns) == ["PatientID", "ROI", "morph_volume", "stat_mean"]
    wrong = subprocess.run([sys.executable, "-m", "PySERASlicerLib.cli", "extract", "--image", str(two_cases[0]),
                            "--mask", str(two_cases[1]), "--output", str(tmp_path / "wrong"),
                            "--features", "stat_maen"], capture_output=True, text=True, cwd=ROOT / "PySERASlicer",
                           timeout=300)
    assert wrong.returncode == 2 and "'stat_maen' (did you mean 'stat_mean'?)" in wrong.stderr


def test_categories_given_with_features_are_ignored_with_a_report_warning(tmp_path, two_cases):
    result = process_batch(*two_cases, tmp_path / "out", features=["stat_mean"], categories="glcm",
                           dimensions="3d", enable_parallelism=False)
    assert result["success"], result["error"]
    assert list(result["features_extracted"].columns) == ["PatientID", "ROI", "stat_mean"]
    report = pd.read_excel(result["excel_path"], sheet_name="Report")
    warnings = report[report["Level"] == "WARNING"]["Message"].tolist()
    assert "categories and dimensions ignored: features= names the features to compute" in warnings
