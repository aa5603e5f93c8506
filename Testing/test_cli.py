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
from PySERASlicerLib import process_batch
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


def test_every_description_of_the_cases_csv_names_all_its_columns():
    """The CLI help (a real subprocess), process_batch's and start_batch's docstrings and the
    Slicer module's tooltip name every column read_cases_csv reads, optional ones included."""
    import ast
    import xml.etree.ElementTree as ElementTree

    from PySERASlicerLib.cases import CSV_COLUMNS, OPTIONAL_CSV_COLUMNS

    texts = {command: subprocess.run([sys.executable, "-m", "PySERASlicerLib.cli", command, "--help"],
                                     capture_output=True, text=True, cwd=ROOT / "PySERASlicer", timeout=120).stdout
             for command in ("extract", "batch")}
    texts["process_batch"] = process_batch.__doc__
    # read from the source: slicer_logic imports slicer, which the Python 3.9 (Slicer 5.6) set has no wheel of
    logic = ast.parse((ROOT / "PySERASlicer" / "PySERASlicerLib" / "slicer_logic.py").read_text())
    texts["start_batch"] = next(ast.get_docstring(node) for node in ast.walk(logic)
                                if isinstance(node, ast.FunctionDef) and node.name == "start_batch")
    ui = ElementTree.parse(ROOT / "PySERASlicer" / "Resources" / "UI" / "PySERASlicer.ui")
    texts["ui"] = next(p.findtext("string") for p in ui.iter("property")
                       if p.get("name") == "toolTip" and "case_id" in (p.findtext("string") or ""))
    for where, text in texts.items():
        flat = " ".join(text.split())
        missing = [c for c in CSV_COLUMNS + OPTIONAL_CSV_COLUMNS if c not in flat]
        assert missing == [], (where, missing, flat)


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
    """--extraction-mode deep_feature with --weights; missing weights stop the run before any case
    (exit 2: nothing could start, nothing written) with a message naming the expected file instead
    of random weights."""
    from PySERASlicerLib.engine.deep import DeepDependencyError, import_torch

    try:
        import_torch()
    except DeepDependencyError as exc:
        pytest.skip(f"torch/torchvision not installed: {exc}")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    write_case(tmp_path, "p1", 0)
    common = ["extract", "--image", str(tmp_path / "images"), "--mask", str(tmp_path / "masks"),
              "--enable-parallelism", "false", "--extraction-mode", "deep_feature", "--deep-learning-model", "resnet50"]
    assert main(common + ["--output", str(tmp_path / "missing")]) == 2
    assert "resnet50-0676ba61.pth" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists() or not any((tmp_path / "missing").iterdir())
    # explicit random initialisation is an opt-in for tests and smoke runs only
    assert main(common + ["--output", str(tmp_path / "out"), "--weights", "random:0", "--quiet"]) == 0
    frame = pd.read_csv(next((tmp_path / "out").glob("*.csv")))
    assert [c for c in frame.columns if c.startswith("resnet50_")] == [f"resnet50_{i:04d}" for i in range(2048)]


# ---------------------------------------------------------------------------------------------
# A new user's mistakes, through the console script path (subprocess): one message each, the
# exit code of the docs, and no output files when nothing could start.
# ---------------------------------------------------------------------------------------------
def _run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "PySERASlicerLib.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT / "PySERASlicer", timeout=300)


def _assert_not_started(completed, fragment, output):
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert fragment in completed.stderr
    assert completed.stderr.count(fragment) == 1, completed.stderr  # each message once
    assert not Path(output).exists() or not any(Path(output).iterdir())  # nothing written


def test_missing_settings_file_is_file_not_found(tmp_path):
    write_case(tmp_path, "p1", 0)
    out = tmp_path / "out"
    done = _run_cli("extract", "--image", tmp_path / "images", "--mask", tmp_path / "masks", "--output", out,
                    "--settings", tmp_path / "nonexist.json")
    _assert_not_started(done, "nonexist.json'", out)
    assert "file not found" in done.stderr and "not valid JSON" not in done.stderr


def test_mistyped_option_gets_the_closest_one_and_the_subcommand_usage(tmp_path):
    done = _run_cli("extract", "--image", "a.nii", "--mask", "b.nii", "--categores", "stat")
    assert done.returncode == 2
    assert "unrecognized arguments: --categores (did you mean --categories?)" in done.stderr
    assert "usage: pysera-slicer extract" in done.stderr


def test_pysera_spellings_are_aliases(tmp_path):
    """--bin_size (PySERA's keyword), --image-input / --mask-input (PySERA's CLI), --IBSI_based_parameters."""
    write_case(tmp_path, "p1", 0)
    out = tmp_path / "out"
    done = _run_cli("extract", "--image-input", tmp_path / "images" / "p1.nii.gz", "--mask_input",
                    tmp_path / "masks" / "p1.nii.gz", "--output_path", out, "--categories", "ih",
                    "--bin_size", "7", "--enable_parallelism=false", "--IBSI_based_parameters",
                    '{"radiomics_DataType": "CT"}')
    assert done.returncode == 0, done.stderr
    parameters = pd.read_excel(next(out.glob("*.xlsx")), sheet_name="Parameters")
    values = dict(zip(parameters["Parameter"], parameters["Value"].astype(str)))
    assert values["discretisation.bin_width"] == "7.0" and values["modality"] == "CT"


def test_bad_paths_header_and_empty_folder_exit_2_without_output(tmp_path):
    write_case(tmp_path, "p1", 0)
    out = tmp_path / "out"
    done = _run_cli("extract", "--image", tmp_path / "nonexist.nii.gz", "--mask", tmp_path / "masks", "--output",
                    out)
    _assert_not_started(done, "nonexist.nii.gz: file or folder not found", out)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("id,img,msk\np1,images/p1.nii.gz,masks/p1.nii.gz\n")
    done = _run_cli("batch", "--cases", bad_csv, "--output", out)
    _assert_not_started(done, "missing column(s) case_id, image, mask", out)
    (tmp_path / "empty").mkdir()
    done = _run_cli("extract", "--image", tmp_path / "empty", "--mask", tmp_path / "masks", "--output", out)
    _assert_not_started(done, "holds no image files", out)
    done = _run_cli("extract", "--image", tmp_path / "images", "--mask", tmp_path / "masks", "--output", out,
                    "--settings", '{"bin_sise": 25}')
    _assert_not_started(done, "'bin_sise' (did you mean 'bin_size'?)", out)


def test_unmatched_names_exit_2_and_a_failed_case_exit_1_counted(tmp_path):
    write_case(tmp_path / "a", "p1", 0)
    write_case(tmp_path / "b", "other", 0)
    out = tmp_path / "out"
    done = _run_cli("extract", "--image", tmp_path / "a" / "images", "--mask", tmp_path / "b" / "masks",
                    "--output", out, "--enable-parallelism", "false")
    _assert_not_started(done, "p1: No matching mask found", out)
    assert "cases processed" not in done.stdout
    # one good case, one image without a mask: exit 1, the orphan counted as failed
    (tmp_path / "a" / "images" / "orphan.nii.gz").write_bytes((tmp_path / "a" / "images" / "p1.nii.gz").read_bytes())
    done = _run_cli("extract", "--image", tmp_path / "a" / "images", "--mask", tmp_path / "a" / "masks",
                    "--output", out, "--enable-parallelism", "false", "--categories", "stat")
    assert done.returncode == 1, done.stderr
    assert "cases processed: 1, failed: 1," in done.stdout
    assert done.stderr.count("orphan: No matching mask found") == 1
    report = pd.read_excel(next(out.glob("*.xlsx")), sheet_name="Report")
    assert (report["Level"] == "ERROR").sum() == 1


def test_a_run_is_reproduced_from_its_provenance_json(tmp_path):
    write_case(tmp_path, "p1", 0)
    first = tmp_path / "first"
    done = _run_cli("extract", "--image", tmp_path / "images", "--mask", tmp_path / "masks", "--output", first,
                    "--categories", "stat,ih", "--bin-size", "12", "--enable-parallelism", "false",
                    "--column-names", "pysera")
    assert done.returncode == 0, done.stderr
    provenance = next(first.glob("*.json"))
    assert f"rerun with the same settings: --settings {provenance}" in done.stdout
    again = tmp_path / "again"
    done = _run_cli("extract", "--image", tmp_path / "images", "--mask", tmp_path / "masks", "--output", again,
                    "--settings", provenance)
    assert done.returncode == 0, done.stderr
    sheets = [pd.read_excel(next(folder.glob("*.xlsx")), sheet_name=None) for folder in (first, again)]
    settings_rows = [s["Parameters"][s["Parameters"]["Section"] == "settings"].reset_index(drop=True)
                     for s in sheets]
    pd.testing.assert_frame_equal(settings_rows[0], settings_rows[1])
    pd.testing.assert_frame_equal(sheets[0]["Radiomics_Features"], sheets[1]["Radiomics_Features"])
    assert "ih_entropy" in sheets[1]["Radiomics_Features"].columns
