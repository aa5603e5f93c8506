"""``PySERASlicerLib.process_batch``: PySERA 2.1.5's parameters in PySERA's order, ``None`` =
"not given" for every settings keyword, and a package import that stays cheap."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import PySERASlicerLib
from PySERASlicerLib.settings import PYSERA_KEYS, SETTINGS_KEYWORDS

ROOT = Path(__file__).resolve().parents[1]
PYSERA_PARAMETERS = (Path(__file__).resolve().parent / "Data" / "pysera" /
                     "process_batch_parameters_2.1.5.txt").read_text().split()


def test_signature_lists_pysera_parameters_in_pysera_order():
    parameters = list(inspect.signature(PySERASlicerLib.process_batch).parameters.values())
    assert [p.name for p in parameters[: len(PYSERA_PARAMETERS)]] == PYSERA_PARAMETERS
    positional = [p.name for p in parameters if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert positional == PYSERA_PARAMETERS  # PySERA's positional calls mean the same here
    extras = [p.name for p in parameters if p.kind == p.KEYWORD_ONLY]
    assert {"column_names", "settings", "cases_csv", "spacing", "case_timeout", "resume"} <= set(extras)


def test_every_settings_keyword_defaults_to_none():
    signature = inspect.signature(PySERASlicerLib.process_batch)
    for name in SETTINGS_KEYWORDS + ("IBSI_based_parameters", "callback_fn", "settings"):
        assert signature.parameters[name].default is None, name
    # the settings keywords are exactly the PySERA keys that are process_batch arguments
    assert set(SETTINGS_KEYWORDS) == {k for k in PYSERA_KEYS if not k.startswith("radiomics_")}


def test_help_documents_the_parameters():
    doc = inspect.getdoc(PySERASlicerLib.process_batch)
    for word in ("column_names", "settings", "cases_csv", "None", "docs/parameters.md"):
        assert word in doc


def test_the_package_modules_import_no_circle():
    """Imports point down (api -> batch -> pool, io/dicom_masks -> dicom/seg/rtstruct): no module
    of the package imports, even inside a function, a module that imports it back."""
    import ast

    package = ROOT / "PySERASlicer" / "PySERASlicerLib"
    modules = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(here[:len(here) - node.level + 1] + (node.module.split(".") if node.module else []))
                submodules = {f"{base}.{alias.name}" for alias in node.names} & modules.keys()
                # `from . import worker` imports the submodule; `from .x import name` imports x
                edges |= submodules or ({base} & modules.keys())
        graph[name] = edges - {name}

    def imported_by(start):
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(graph[module])
        return seen

    circles = sorted(name for name in graph if name in imported_by(name))
    assert circles == [], circles


def test_importing_the_package_is_cheap():
    """No numpy/pandas/engine at ``import PySERASlicerLib``, and the signature readable.

    What the import costs in seconds is measured by scripts/benchmark.py, not asserted here: a
    timed test fails on a loaded machine and says nothing about the cause.
    """
    code = ("import sys, json, inspect; import PySERASlicerLib; "
            "n = len(inspect.signature(PySERASlicerLib.process_batch).parameters); "
            "heavy = [m for m in ('numpy', 'pandas', 'scipy', 'SimpleITK', 'PySERASlicerLib.batch', "
            "'PySERASlicerLib.engine') if m in sys.modules]; print(json.dumps([n, heavy]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "PySERASlicer",
                          check=True)
    n, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert heavy == []
    assert n >= len(PYSERA_PARAMETERS)


def test_a_keyword_equal_to_the_default_wins_over_settings(tmp_path):
    """process_batch(settings=<file with bin_size 50>, bin_size=25) extracts with 25."""
    from batch_fixtures import write_case
    from PySERASlicerLib import Settings

    image, mask = write_case(tmp_path, "p1", 0)
    common = dict(output_path=None, enable_parallelism=False, dimensions="1st")
    coarse = Settings.from_json('{"bin_size": 50, "categories": "ih"}')
    written = PySERASlicerLib.process_batch(str(image), str(mask), settings=coarse, bin_size=25, **common)
    default = PySERASlicerLib.process_batch(str(image), str(mask), categories="ih", **common)
    from_file = PySERASlicerLib.process_batch(str(image), str(mask), settings=coarse, **common)
    frames = [r["features_extracted"].set_index("ROI")["ih_range"] for r in (written, default, from_file)]
    assert (frames[0] == frames[1]).all()  # 25 won
    assert (frames[0] != frames[2]).any()  # and 50 really differs
