"""examples/: the files the README shows, run as a user would (the CLI in a subprocess)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
from PySERASlicerLib.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_two_settings_files_describe_the_same_run():
    ours = Settings.from_json(str(EXAMPLES / "ct_settings.json"))
    pysera = Settings.from_json(str(EXAMPLES / "ct_settings_pysera.json"))
    assert ours.column_names.value == "ibsi" and pysera.column_names.value == "pysera"
    assert pysera == ours.replace(column_names=pysera.column_names)
    assert ours.modality.value == "CT" and ours.resampling.enabled and ours.discretisation.bin_width == 25


def test_the_readme_shows_each_example_file():
    blocks = re.findall(r"```json\n(.*?)```", README, re.S)
    shown = [json.loads(block) for block in blocks]
    for name in ("ct_settings.json", "ct_settings_pysera.json"):
        assert f"examples/{name}" in README
        assert json.loads((EXAMPLES / name).read_text()) in shown, name
    for line in (EXAMPLES / "cases.csv").read_text().splitlines():
        assert line in README


def test_the_cases_csv_runs_with_the_example_settings(tmp_path):
    """Both cases (the CT phantom as NIfTI and as DICOM + RTSTRUCT) with the PySERA-key settings."""
    with open(EXAMPLES / "cases.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("image", "mask"):
            assert (EXAMPLES / row[key]).exists(), row[key]
    done = subprocess.run([sys.executable, "-m", "PySERASlicerLib.cli", "batch", "--cases", str(EXAMPLES / "cases.csv"),
                           "--settings", str(EXAMPLES / "ct_settings_pysera.json"), "--output", str(tmp_path),
                           "--enable-parallelism", "false"],
                          capture_output=True, text=True, cwd=ROOT / "PySERASlicer", timeout=600)
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(next(tmp_path.glob("*.csv")))
    assert frame["PatientID"].tolist() == [row["case_id"] for row in rows]
    assert "morph_volume_mesh" in frame.columns and "glcm_joint_max_3D_comb" in frame.columns
    # the same phantom read from NIfTI and from DICOM + RTSTRUCT gives the same volume (within 1 %)
    volumes = frame["morph_volume_mesh"].tolist()
    assert abs(volumes[0] - volumes[1]) <= 0.01 * volumes[0]
