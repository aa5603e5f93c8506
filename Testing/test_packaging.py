"""pyproject.toml builds without setuptools' deprecation warnings (PEP 639 licence fields) and
names only package data that exists."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_builds_quietly_with_an_spdx_licence(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} predates PEP 639 licence expressions (>= 77)")
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "PySERASlicer" / "PySERASlicerLib", source / "PySERASlicer" / "PySERASlicerLib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
                           "--wheel-dir", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stdout + done.stderr
    # the old `license = {text = ...}` table printed this BuildBackendWarning three times per build
    assert "project.license` as a TOML table is deprecated" not in log
    assert "BuildBackendWarning" not in log and "SetuptoolsDeprecationWarning" not in log
    wheel = next(tmp_path.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
        names = archive.namelist()
    assert "License-Expression: MIT" in text
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert "PySERASlicerLib/api.py" in names and "PySERASlicerLib/settings.py" in names


def test_package_data_names_only_files_that_exist():
    text = (ROOT / "pyproject.toml").read_text()
    assert "presets/*.json" not in text
    assert 'license = {text' not in text
