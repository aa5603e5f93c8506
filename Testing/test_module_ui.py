"""The module's .ui loads with PySide6 (offscreen) and matches what PySERASlicer.py uses."""

from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[1] / "PySERASlicer"
UI_FILE = MODULE / "Resources" / "UI" / "PySERASlicer.ui"
MODULE_FILE = MODULE / "PySERASlicer.py"


def ui_widget_names():
    return {w.get("name") for w in ET.parse(UI_FILE).getroot().iter("widget")}


def ui_parameter_names():
    names = {}
    for widget in ET.parse(UI_FILE).getroot().iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                names[prop.find("string").text] = widget.get("name")
    return names


def module_ui_attributes():
    """Every ``self.ui.<name>`` the module file uses."""
    return set(re.findall(r"self\.ui\.([A-Za-z_][A-Za-z0-9_]*)", MODULE_FILE.read_text()))


def parameter_node_fields():
    tree = ast.parse(MODULE_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "PySERASlicerParameterNode":
            return {stmt.target.id for stmt in node.body if isinstance(stmt, ast.AnnAssign)}
    raise AssertionError("PySERASlicerParameterNode not found")


@pytest.fixture(scope="module")
def loaded_ui():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    QtCore = pytest.importorskip("PySide6.QtCore")
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    ui_file = QtCore.QFile(str(UI_FILE))
    assert ui_file.open(QtCore.QFile.ReadOnly)
    widget = QUiLoader().load(ui_file)
    ui_file.close()
    assert widget is not None, "QUiLoader could not load the .ui"
    yield widget
    widget.deleteLater()
    app.processEvents()


def test_every_widget_the_module_uses_exists_in_the_loaded_ui(loaded_ui):
    from PySide6.QtCore import QObject

    loaded = {child.objectName() for child in loaded_ui.findChildren(QObject)}
    missing = sorted(module_ui_attributes() - loaded)
    assert not missing, f"PySERASlicer.py uses widgets missing from the .ui: {missing}"


def test_bound_widgets_keep_their_parameter_names_when_loaded(loaded_ui):
    from PySide6.QtCore import QObject

    for parameter, widget_name in ui_parameter_names().items():
        widget = loaded_ui.findChild(QObject, widget_name)
        assert widget is not None, widget_name
        assert widget.property("SlicerParameterName") == parameter


def test_every_slicer_parameter_name_is_a_parameter_node_field():
    fields = parameter_node_fields()
    unknown = sorted(set(ui_parameter_names()) - fields)
    assert not unknown, f".ui binds parameters the parameter node lacks: {unknown}"
    assert {"inputVolume", "inputMask", "outputTable"} <= set(ui_parameter_names())


def test_ui_names_used_by_the_module_are_declared_in_the_xml():
    assert module_ui_attributes() <= ui_widget_names()
