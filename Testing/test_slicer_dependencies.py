"""Which optional packages are missing, found without importing them."""

from __future__ import annotations

import subprocess
import sys

from PySERASlicerLib import dependencies as deps
from PySERASlicerLib.settings import Settings


def fake_environment(installed):
    """spec_finder / version_reader over a dict {module: version or None (no metadata)}."""
    def spec_finder(module):
        return object() if module in installed else None

    def version_reader(distribution):
        return installed.get(distribution)

    return spec_finder, version_reader


def test_requirement_strings_have_lower_bounds_only():
    for requirement in deps.REQUIREMENTS:
        assert requirement.pip == f"{requirement.distribution}>={requirement.minimum}"
        assert "==" not in requirement.pip and "<" not in requirement.pip
    assert deps.PANDAS.pip == "pandas>=1.5"


def test_needed_depends_on_the_run():
    assert deps.needed(deep=False, excel=False) == [deps.PANDAS]
    assert deps.needed(deep=False) == [deps.PANDAS, deps.OPENPYXL]
    assert deps.needed_for_settings(Settings(extraction_mode="deep_feature")) == [
        deps.PANDAS, deps.OPENPYXL, deps.TORCH, deps.TORCHVISION]


def test_missing_reports_absent_and_too_old_packages():
    finder, reader = fake_environment({"pandas": "1.4.3", "openpyxl": "3.1.5", "torch": "2.3.0+cu121"})
    items = deps.missing(deps.REQUIREMENTS, finder, reader)
    assert [m.requirement.module for m in items] == ["pandas", "torchvision"]
    assert items[0].reason == "version 1.4.3 < 1.5" and items[1].reason == "not installed"
    assert deps.pip_requirements(items) == ["pandas>=1.5", "torchvision>=0.16"]
    assert deps.pip_requirements(items, include_torch=False) == ["pandas>=1.5"]
    assert [m.requirement.module for m in deps.torch_items(items)] == ["torchvision"]
    text = deps.confirmation_text(items)
    assert "pandas (DataFrames, batch runs" in text and "pip install pandas>=1.5 torchvision>=0.16" in text


def test_a_module_without_metadata_counts_as_installed():
    finder, reader = fake_environment({"pandas": None, "openpyxl": None})
    assert deps.missing([deps.PANDAS, deps.OPENPYXL], finder, reader) == []


def test_version_comparison():
    assert deps.version_tuple("2.1.0+cu121") == (2, 1, 0)
    assert deps.version_tuple("1.26rc1") == (1, 26)
    assert deps.satisfies("1.5", "1.5.0") and deps.satisfies("2.0", "1.5")
    assert not deps.satisfies("1.4.9", "1.5") and not deps.satisfies("0.15.2", "0.16")
    assert deps.satisfies("10.0", "9.9")


def test_status_text_names_what_is_missing():
    finder, reader = fake_environment({"pandas": "2.2.0"})
    text = deps.status_text(deps.REQUIREMENTS, finder, reader)
    assert text.startswith("Not yet available: openpyxl (Excel export): not installed")
    assert "torch" in text and "installed on first use, after asking" in text
    finder, reader = fake_environment({m.module: "99" for m in deps.REQUIREMENTS})
    assert deps.status_text(deps.REQUIREMENTS, finder, reader) == ""


def test_real_environment_check_does_not_import_the_packages():
    code = ("import sys; from PySERASlicerLib import dependencies as d; "
            "m = d.missing(d.REQUIREMENTS); "
            "print(sorted(x.requirement.module for x in m)); "
            "print('pandas' in sys.modules, 'openpyxl' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": deps.__file__.rsplit("PySERASlicerLib", 1)[0], "PATH": ""}).stdout
    missing_line, imported_line = out.strip().splitlines()
    assert "pandas" not in missing_line and "openpyxl" not in missing_line  # installed in the test venv
    assert imported_line == "False False False"
    assert deps.installed_version("pandas") is not None
    assert deps.find_spec("no_such_module_pysera") is None
    assert deps.find_spec("no_such_parent.child") is None
