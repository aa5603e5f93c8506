"""The extension's files are where Slicer expects them and every packaged file is listed."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "PySERASlicer"


def cmake_entries(path: Path, variable: str):
    text = path.read_text()
    block = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_every_package_file_is_listed_in_the_module_cmakelists():
    listed = set(cmake_entries(MODULE / "CMakeLists.txt", "MODULE_PYTHON_SCRIPTS"))
    actual = {p.relative_to(MODULE).as_posix() for p in (MODULE / "PySERASlicerLib").rglob("*.py")
              if "__pycache__" not in p.parts}
    missing = sorted(actual - listed)
    assert not missing, f"not listed in PySERASlicer/CMakeLists.txt (run scripts/update_cmake_lists.py): {missing}"
    assert "${MODULE_NAME}.py" in listed
    stale = sorted(p for p in listed - actual if not p.startswith("${"))
    assert not stale, f"listed but missing on disk: {stale}"


def test_resources_are_listed_and_exist():
    listed = cmake_entries(MODULE / "CMakeLists.txt", "MODULE_PYTHON_RESOURCES")
    assert "Resources/UI/PySERASlicer.ui" in listed and "Resources/Icons/PySERASlicer.png" in listed
    for entry in listed:
        assert (MODULE / entry).is_file(), entry
    actual = {p.relative_to(MODULE).as_posix() for p in (MODULE / "Resources").rglob("*") if p.is_file()}
    assert actual <= set(listed), sorted(actual - set(listed))


def test_top_level_cmakelists_declares_the_extension():
    text = (ROOT / "CMakeLists.txt").read_text()
    for variable in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                     "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert re.search(rf"set\({variable}\s", text), variable
    assert '"Quantification"' in text
    for line in ("find_package(Slicer REQUIRED)", "add_subdirectory(PySERASlicer)",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert line in text
    module_text = (MODULE / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule" in module_text and "WITH_GENERIC_TESTS" in module_text
    assert (ROOT / "Resources" / "PySERASlicer.png").is_file()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_cmakelists_is_up_to_date_with_its_generator():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import update_cmake_lists
    finally:
        sys.path.pop(0)
    assert (MODULE / "CMakeLists.txt").read_text() == update_cmake_lists.render()


def test_all_python_parses_as_python_39():
    files = [MODULE / "PySERASlicer.py", *(MODULE / "PySERASlicerLib").rglob("*.py")]
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))


def test_engine_does_not_import_gui_or_heavy_packages_at_import_time():
    code = (
        "import sys, PySERASlicerLib, PySERASlicerLib.batch, PySERASlicerLib.engine.pipeline, "
        "PySERASlicerLib.engine.registry as r, PySERASlicerLib.jobs, PySERASlicerLib.worker; r.all_specs(); "
        "bad = [m for m in ('slicer', 'qt', 'torch', 'torchvision', 'PySide6', 'vtk') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=MODULE, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _parameter_node_class_node(tree: ast.Module) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "PySERASlicerParameterNode":
            return node
    raise AssertionError("PySERASlicerParameterNode not found in PySERASlicer.py")


def test_parameter_node_annotations_evaluate_on_python_39():
    """Slicer's parameterNodeWrapper evaluates the class's annotations at import time
    (typing.get_type_hints) on Slicer's Python, 3.9 for Slicer 5.6/5.8: ``X | Y`` there is a
    TypeError, caught only at module load inside Slicer. Rebuild the class body without Slicer
    (stubs for the slicer imports, the real typing/pathlib) and evaluate every hint. Under the
    Python 3.9 run of scripts/test_slicer_compat.sh this is the real 3.9 evaluation."""
    import typing

    tree = ast.parse((MODULE / "PySERASlicer.py").read_text())
    cls = _parameter_node_class_node(tree)
    annotated = [stmt for stmt in cls.body if isinstance(stmt, ast.AnnAssign)]
    assert len(annotated) > 10
    # ``|`` between types only evaluates on Python >= 3.10; catch it on any interpreter.
    for stmt in annotated:
        assert not any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(stmt.annotation)), \
            f"{stmt.target.id}: use typing.Optional/Union, not X | Y (Slicer 5.6/5.8 run Python 3.9)"

    class _Stub:
        def __init__(self, *args, **kwargs):
            self.args = args

    namespace = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ("pathlib", "logging", "importlib"):
                    namespace[alias.asname or alias.name] = __import__(alias.name)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                name = alias.asname or alias.name
                if node.module == "typing":
                    namespace[name] = getattr(typing, alias.name)
                else:  # slicer / PySERASlicerLib names: a distinct class each
                    namespace[name] = type(name, (_Stub,), {})
    body = ast.Module(body=[ast.ClassDef(name=cls.name, bases=[], keywords=[], body=cls.body, decorator_list=[])],
                      type_ignores=[])
    # dont_inherit: this test module's ``from __future__ import annotations`` must not leak in;
    # PySERASlicer.py has none, so its hints are evaluated when the class body runs.
    exec(compile(ast.fix_missing_locations(body), "PySERASlicer.py", "exec", dont_inherit=True), namespace)
    hints = typing.get_type_hints(namespace[cls.name], globalns=namespace, include_extras=True)
    assert set(hints) == {stmt.target.id for stmt in annotated}
    # The shapes parameterNodeWrapper serialises: a list of volume nodes, an optional node of two types.
    assert typing.get_origin(hints["inputVolumes"]) is list
    assert typing.get_args(hints["inputVolumes"]) == (namespace["vtkMRMLScalarVolumeNode"],)
    assert set(typing.get_args(hints["inputMask"])) == {
        namespace["vtkMRMLSegmentationNode"], namespace["vtkMRMLLabelMapVolumeNode"], type(None)}
    assert hints["outputFolder"] is namespace["pathlib"].Path
    for name in ("preset", "binWidth", "modality"):
        assert typing.get_origin(hints[name]) is typing.Annotated, name


def cmake_variable(name: str) -> str:
    return re.search(rf'set\({name}\s+"([^"]*)"\)', (ROOT / "CMakeLists.txt").read_text()).group(1)


RAW_PREFIX = "https://raw.githubusercontent.com/pysera-slicer/PySERASlicer/main/"


def test_icon_and_screenshot_urls_name_files_of_this_repository():
    """The Extensions Index fetches these URLs from the pushed repository: each must be a file here."""
    urls = [cmake_variable("EXTENSION_ICONURL"), *cmake_variable("EXTENSION_SCREENSHOTURLS").split()]
    assert len(urls) >= 2
    for url in urls:
        assert url.startswith(RAW_PREFIX), url
        path = ROOT / url[len(RAW_PREFIX):]
        assert path.is_file(), f"{url} names {path}, which does not exist"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_screenshot_is_the_module_panel_rendered_from_the_ui(tmp_path):
    """Resources/Screenshot01.png is what scripts/render_module_panel.py draws from the current .ui
    (same size: regenerate it after a layout change), and the README captions it honestly."""
    pytest.importorskip("PySide6")
    from PySide6.QtGui import QImage

    fresh = tmp_path / "panel.png"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_module_panel.py"), str(fresh)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shipped, rendered = QImage(str(ROOT / "Resources" / "Screenshot01.png")), QImage(str(fresh))
    assert not shipped.isNull() and shipped.size() == rendered.size()
    assert rendered.height() > 1000  # every section of the panel, not an empty window
    readme = (ROOT / "README.md").read_text()
    assert "Resources/Screenshot01.png" in readme and "not a Slicer screenshot" in readme


def test_extensions_index_description_file_follows_the_catalog_schema():
    """PySERASlicer.json as the ExtensionsIndex (Slicer 5) wants it: file named after the CMake
    project, valid against the schema it names (copied into Testing/Data), LF line endings,
    a known category, an https git URL, the same category as the CMakeLists."""
    raw = (ROOT / "PySERASlicer.json").read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    entry = json.loads(raw)
    project = re.search(r"project\((\w+)\)", (ROOT / "CMakeLists.txt").read_text()).group(1)
    assert project == "PySERASlicer" and not project.lower().startswith("slicer")
    schema_file = ROOT / "Testing" / "Data" / "slicer_extensions_index" / Path(entry["$schema"].split("#")[0]).name
    schema = json.loads(schema_file.read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) <= set(entry), sorted(set(schema["required"]) - set(entry))
    kinds = {"string": str, "array": list, "integer": int, "boolean": bool}
    for key, value in entry.items():
        rule = schema["properties"].get(key)
        assert rule is not None, f"{key} is not allowed by {schema_file.name}"
        assert isinstance(value, kinds[rule["type"]]), key
        if "enum" in rule:
            assert value in rule["enum"], key
        if "minimum" in rule:
            assert rule["minimum"] <= value <= rule["maximum"], key
    assert entry["category"] == cmake_variable("EXTENSION_CATEGORY")
    assert entry["scm_url"].startswith("https://") and entry["scm_url"].endswith(".git")
    assert entry["build_dependencies"] == [] and cmake_variable("EXTENSION_DEPENDS") == "NA"


def test_help_text_links_the_online_homepage_not_a_source_file():
    from PySERASlicerLib import gui_state

    assert cmake_variable("EXTENSION_HOMEPAGE") == gui_state.HOMEPAGE_URL
    assert json.loads((ROOT / "PySERASlicer.json").read_text())["scm_url"].startswith(
        gui_state.HOMEPAGE_URL.split("#")[0])
    module_text = (MODULE / "PySERASlicer.py").read_text()
    help_text = module_text[module_text.index("helpText"):module_text.index("acknowledgementText")]
    assert "gui_state.HOMEPAGE_URL" in help_text and "docs/" not in help_text


def installed_module(destination: Path) -> Path:
    """The module as the extension installs it: only the files the module CMakeLists lists
    (no scripts/, no Testing/), under a qt-scripted-modules folder."""
    import shutil

    target = destination / "qt-scripted-modules"
    listed = cmake_entries(MODULE / "CMakeLists.txt", "MODULE_PYTHON_SCRIPTS") + cmake_entries(
        MODULE / "CMakeLists.txt", "MODULE_PYTHON_RESOURCES")
    for entry in listed:
        source = MODULE / entry.replace("${MODULE_NAME}", "PySERASlicer")
        (target / source.relative_to(MODULE)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / source.relative_to(MODULE))
    return target


def test_installed_extension_runs_headless_from_its_own_package(tmp_path):
    """The documented command for an installed extension runs the package's entry point
    (``python -m PySERASlicerLib`` / ``PySERASlicerLib.__main__.run``) from the installed files."""
    import numpy as np
    import SimpleITK as sitk

    installed = installed_module(tmp_path / "install")
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    voxels = (np.arange(8 * 14 * 14) % 37).astype(np.int16).reshape(8, 14, 14)
    mask = np.zeros(voxels.shape, np.uint8)
    mask[2:6, 3:11, 3:11] = 1
    for array, folder in ((voxels, images), (mask, masks)):
        sitk.WriteImage(sitk.GetImageFromArray(array), str(folder / "case1.nrrd"))
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"categories": ["stat"], "dimensions": ["1st"], "enable_parallelism": False}))
    env = dict(os.environ, PYTHONPATH=str(installed))
    where = subprocess.run([sys.executable, "-c", "import PySERASlicerLib; print(PySERASlicerLib.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(installed)), where.stdout + where.stderr
    done = subprocess.run([sys.executable, "-m", "PySERASlicerLib", "--images", str(images), "--masks", str(masks),
                           "--output", str(tmp_path / "out"), "--settings", str(settings)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((tmp_path / "out").glob("*.xlsx"))
    documented = 'Slicer --no-main-window --python-code "import PySERASlicerLib.__main__ as m; m.run()"'
    for doc in (ROOT / "README.md", ROOT / "docs" / "slicer_module.md"):
        assert documented in doc.read_text(), doc
