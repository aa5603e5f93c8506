"""IBSI-2 filters from the command line: ``pysera-slicer filter`` writes a response map,
``extract --filters file.json`` adds the filtered-image columns; real subprocesses and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from batch_fixtures import write_case
from ibsi2_support import phantom_path, reference_map, tolerance

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "PySERASlicer"))
    return subprocess.run([sys.executable, "-m", "PySERASlicerLib.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_filter_command_writes_the_consensus_response_map(tmp_path):
    output = tmp_path / "map.nii.gz"
    done = _cli("filter", "--image", str(phantom_path("impulse")), "--output", str(output),
                "--filter", json.dumps({"filter": "log", "sigma_mm": 3.0, "boundary": "zero"}))
    assert done.returncode == 0, done.stderr
    assert "log_s3_zero" in done.stdout
    written = sitk.ReadImage(str(output))
    source = sitk.ReadImage(str(phantom_path("impulse")))
    assert written.GetSize() == source.GetSize() and written.GetSpacing() == source.GetSpacing()
    assert written.GetOrigin() == source.GetOrigin() and written.GetDirection() == source.GetDirection()
    reference, bound = reference_map("2.a")
    assert np.max(np.abs(sitk.GetArrayFromImage(written) - reference)) <= tolerance("2.a") - bound


def test_filter_command_takes_a_json_file_and_reports_bad_entries(tmp_path):
    entry = tmp_path / "gabor.json"
    entry.write_text(json.dumps({"filter": "gabor", "sigma_mm": 5, "lambda_mm": 2, "rotation_invariant": True}))
    done = _cli("filter", "--image", str(phantom_path("impulse")), "--filter", str(entry),
                "--output", str(tmp_path / "m.nii.gz"))
    assert done.returncode == 2 and "--filter.theta_step_deg" in done.stderr
    assert not (tmp_path / "m.nii.gz").exists()
    missing = _cli("filter", "--image", str(tmp_path / "nope.nii.gz"), "--filter", '{"filter": "mean", "support": 3}',
                   "--output", str(tmp_path / "m.nii.gz"))
    assert missing.returncode == 1 and "nope.nii.gz" in missing.stderr


def test_extract_with_a_filters_file_adds_labelled_columns_and_records_the_parameters(tmp_path):
    write_case(tmp_path, "p1", 0)
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"filters": [{"filter": "log", "sigma_mm": 1.5},
                                               {"filter": "wavelet", "wavelet": "haar", "set": "LLH",
                                                "dimensions": "3D", "label": "haar_llh"}],
                                   "filter_categories": ["stat"]}))
    done = _cli("extract", "--image", str(tmp_path / "images" / "p1.nii.gz"), "--mask",
                str(tmp_path / "masks" / "p1.nii.gz"), "--output", str(tmp_path / "out"), "--categories", "stat",
                "--enable-parallelism", "false", "--filters", str(filters))
    assert done.returncode == 0, done.stderr
    csv_path = done.stdout.split("CSV:")[1].split()[0]
    frame = pd.read_csv(csv_path)
    assert {"stat_mean", "stat_mean_log_s1.5", "stat_rms_haar_llh"} <= set(frame.columns)
    assert len([c for c in frame.columns if c.startswith("stat_")]) == 18 * 3
    excel = done.stdout.split("Excel:")[1].split()[0]
    parameters = pd.read_excel(excel, sheet_name="Parameters")
    values = dict(zip(parameters["Parameter"], parameters["Value"].astype(str)))
    assert values["filters[0].sigma_mm"] == "1.5" and values["filters[1].wavelet"] == "haar"
    provenance = json.loads(Path(done.stdout.split("JSON:")[1].split()[0]).read_text())
    assert provenance["settings"]["filters"][0] == {"filter": "log", "dimensions": "3D", "boundary": "mirror",
                                                    "sigma_mm": 1.5, "cutoff": 4.0, "label": "log_s1.5"}


def test_extract_with_a_bad_filters_file_exits_2_naming_the_key(tmp_path):
    write_case(tmp_path, "p1", 0)
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps([{"filter": "laws", "kernel": "E5Q5S5"}]))
    done = _cli("extract", "--image", str(tmp_path / "images" / "p1.nii.gz"), "--mask",
                str(tmp_path / "masks" / "p1.nii.gz"), "--output", str(tmp_path / "out"), "--filters", str(filters))
    assert done.returncode == 2 and "filters[0].kernel" in done.stderr
