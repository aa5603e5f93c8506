"""``pysera-slicer extract`` / ``pysera-slicer batch``: every process_batch parameter as an option."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from batch_fixtures import write_case, write_cases_csv
from PySERASlicerLib.batch import process_batch
from PySERASlicerLib.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _options(command: str):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {option for action in sub._actions for option in action.option_strings}


def test_every_process_batch_parameter_is_an_option():
    """Each keyword of process_batch has a CLI option (callbacks and in-memory settings excepted)."""
    names = set(inspect.signature(process_batch).parameters) - {"callback_fn", "settings", "progress_fn"}
    aliases = {"image_input": "--image", "mask_input": "--mask", "output_path": "--output", "cases_csv": "--cases",
               "IBSI_based_parameters": "--ibsi-parameters"}
    options = _options("extract")
    missing = [n for n in names if aliases.get(n, "--" + n.replace("_", "-")) not in options]
    assert missing == []
    assert {"--cases", "--settings", "--output"} <= _options("batch")


def test_extract_with_options(tmp_path, capsys):
    write_case(tmp_path, "p1", 0)
    write_case(tmp_path, "p2", 1)
    code = main(["extract", "--image", str(tmp_path / "images"), "--mask", str(tmp_path / "masks"),
                 "--output", str(tmp_path / "out"), "--categories", "stat", "--enable-parallelism", "false",
                 "--roi-num", "1", "--roi-selection-mode", "PER_IMG", "--min-roi-volume", "5",
                 "--feature-value-mode", "APPROXIMATE_VALUE", "--ibsi-parameters", '{"radiomics_DataType": "CT"}'])
    out = capsys.readouterr().out
    assert code == 0
    assert "cases processed: 2, failed: 0, ROIs: 2, features per ROI: 18" in out
    excel = out.split("Excel: ")[1].split()[0]
    frame = pd.read_excel(excel, sheet_name="Radiomics_Features")
    assert frame["ROI"].tolist() == ["label_1_lesion_1"] * 2
    parameters = pd.read_excel(excel, sheet_name="Parameters")
    values = dict(zip(parameters["Parameter"], parameters["Value"].astype(str)))
    assert values["modality"] == "CT" and values["feature_value_mode"] == "APPROXIMATE_VALUE"


def test_batch_command_with_cases_and_settings(tmp_path):
    for index in range(3):
        write_case(tmp_path, f"p{index}", index)
    cases = write_cases_csv(tmp_path / "cases.csv", [(f"case{i}", f"images/p{i}.nii.gz", f"masks/p{i}.nii.gz", "1")
                                                     for i in range(3)])
    (tmp_path / "s.json").write_text(json.dumps({"preset": "pysera_default", "categories": ["stat"],
                                                 "enable_parallelism": False}))
    # a subprocess: the console script path users run
    completed = subprocess.run([sys.executable, "-m", "PySERASlicerLib.cli", "batch", "--cases", str(cases),
                                "--settings", str(tmp_path / "s.json"), "--output", str(tmp_path / "out")],
                               capture_output=True, text=True, cwd=ROOT / "PySERASlicer", timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "cases processed: 3, failed: 0, ROIs: 3" in completed.stdout
    csv_file = next((tmp_path / "out").glob("*.csv"))
    assert pd.read_csv(csv_file)["PatientID"].tolist() == ["case0", "case1", "case2"]


def test_failed_cases_exit_1_and_bad_values_exit_2(tmp_path, capsys):
    write_case(tmp_path, "p1", 0)
    (tmp_path / "images" / "orphan.nii.gz").write_bytes((tmp_path / "images" / "p1.nii.gz").read_bytes())
    base = ["extract", "--image", str(tmp_path / "images"), "--mask", str(tmp_path / "masks"), "--output",
            str(tmp_path / "out"), "--categories", "stat", "--enable-parallelism", "no"]
    assert main(base) == 1
    assert "orphan: No matching mask found" in capsys.readouterr().err
    assert main(base + ["--roi-selection-mode", "bogus"]) == 2
    assert "roi_selection_mode: 'bogus' is not valid" in capsys.readouterr().err
    assert main(base + ["--ibsi-parameters", "{not json"]) == 2
    with pytest.raises(SystemExit):
        main(["extract", "--image", "x"])  # --mask missing


def test_deep_feature_mode_from_the_command_line(tmp_path, capsys, monkeypatch):
    """--extraction-mode deep_feature with --weights; missing weights give exit 1 and a message naming
    the expected file instead of random weights."""
    from PySERASlicerLib.engine.deep import DeepDependencyError, import_torch

    try:
        import_torch()
    except DeepDependencyError as exc:
        pytest.skip(f"torch/torchvision not installed: {exc}")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    write_case(tmp_path, "p1", 0)
    common = ["extract", "--image", str(tmp_path / "images"), "--mask", str(tmp_path / "masks"),
              "--enable-parallelism", "false", "--extraction-mode", "deep_feature", "--deep-learning-model", "resnet50"]
    assert main(common + ["--output", str(tmp_path / "missing")]) == 1
    assert "resnet50-0676ba61.pth" in capsys.readouterr().err
    # explicit random initialisation is an opt-in for tests and smoke runs only
    assert main(common + ["--output", str(tmp_path / "out"), "--weights", "random:0", "--quiet"]) == 0
    frame = pd.read_csv(next((tmp_path / "out").glob("*.csv")))
    assert [c for c in frame.columns if c.startswith("resnet50_")] == [f"resnet50_{i:04d}" for i in range(2048)]
