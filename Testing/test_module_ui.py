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
    """Every ``self.ui.<name>`` (widget) and ``widget.ui.<name>`` (self-test) the module file uses."""
    return set(re.findall(r"(?:self|widget)\.ui\.([A-Za-z_][A-Za-z0-9_]*)", MODULE_FILE.read_text()))


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


def test_dicom_policy_combo_boxes_are_in_the_parameters_section(loaded_ui):
    from PySide6.QtWidgets import QComboBox, QWidget

    parameters = loaded_ui.findChild(QWidget, "parametersCollapsibleButton")
    for name, field in (("dicomGantryTiltComboBox", "dicomGantryTilt"),
                        ("dicomMissingSlicesComboBox", "dicomMissingSlices")):
        combo = parameters.findChild(QComboBox, name)
        assert combo is not None, name
        assert combo.property("SlicerParameterName") == field
        assert combo.toolTip()


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
    assert {"inputMask", "outputTable", "resultTable", "outputFolder", "batchImageFolder", "batchMaskFolder",
            "batchCasesCsv", "settingsFile"} <= set(ui_parameter_names())


def test_ui_names_used_by_the_module_are_declared_in_the_xml():
    assert module_ui_attributes() <= ui_widget_names()


def ui_widget_classes():
    return {w.get("name"): w.get("class") for w in ET.parse(UI_FILE).getroot().iter("widget")}


def ui_widget_properties(name):
    for widget in ET.parse(UI_FILE).getroot().iter("widget"):
        if widget.get("name") == name:
            props = {}
            for prop in widget.findall("property"):
                child = list(prop)[0]
                props[prop.get("name")] = child.text if child.tag != "stringlist" else [s.text for s in child]
            return props
    raise AssertionError(name)


def test_every_gui_setting_is_bound_to_a_widget_of_a_matching_class():
    """parameterNodeWrapper picks a connector by the exact widget class and the field type."""
    from PySERASlicerLib import gui_state

    bound = ui_parameter_names()
    classes = ui_widget_classes()
    for parameter in gui_state.PARAMETERS:
        assert parameter.name in bound, f"{parameter.name} has no widget in the .ui"
        widget_class = classes[bound[parameter.name]]
        if parameter.choices:
            expected = "QComboBox"
        else:
            expected = {bool: "QCheckBox", float: "QDoubleSpinBox", int: "QSpinBox",
                        Path: "ctkPathLineEdit", str: "QLineEdit"}[parameter.kind]
        assert widget_class == expected, (parameter.name, widget_class)
    for name in ("inputMask", "outputTable", "resultTable"):
        assert classes[bound[name]] == "qMRMLNodeComboBox", name
    for name in ("batchImageFolder", "batchMaskFolder", "batchCasesCsv", "settingsFile"):
        assert classes[bound[name]] == "ctkPathLineEdit", name
    assert classes[bound["outputFolder"]] == "ctkDirectoryButton"


def test_manually_wired_widgets_are_not_bound_and_have_the_right_class():
    classes = ui_widget_classes()
    bound_widgets = set(ui_parameter_names().values())
    assert classes["inputVolumesSelector"] == "qMRMLCheckableNodeComboBox"
    assert classes["segmentSelector"] == "qMRMLSegmentSelectorWidget"
    segment_props = ui_widget_properties("segmentSelector")
    assert segment_props["multiSelection"] == "true"
    assert segment_props["segmentationNodeSelectorVisible"] == "false"
    assert ui_widget_properties("inputVolumesSelector")["nodeTypes"] == ["vtkMRMLScalarVolumeNode"]
    assert ui_widget_properties("inputVolumesSelector")["showChildNodeTypes"] == "false"  # no labelmaps
    for name in ("inputVolumesSelector", "segmentSelector", "presetComboBox"):
        assert name not in bound_widgets, f"{name} is wired by hand; a connector would fight it"


def test_every_mrml_widget_gets_the_scene():
    root = ET.parse(UI_FILE).getroot()
    receivers = {c.find("receiver").text for c in root.iter("connection")
                 if c.find("slot").text == "setMRMLScene(vtkMRMLScene*)"}
    mrml = {name for name, cls in ui_widget_classes().items() if cls.startswith("qMRML") and name != "PySERASlicer"}
    assert mrml == receivers


def test_declared_custom_widgets_cover_every_non_qt_class():
    root = ET.parse(UI_FILE).getroot()
    declared = {c.find("class").text for c in root.iter("customwidget")}
    used = {cls for cls in ui_widget_classes().values() if not cls.startswith("Q")}
    assert used <= declared, sorted(used - declared)


def test_parameter_node_fields_used_by_the_module_exist():
    """``node.<field>`` / ``_parameterNode.<field>`` in PySERASlicer.py are declared fields."""
    from PySERASlicerLib import gui_state

    fields = parameter_node_fields()
    used = set(re.findall(r"(?:node|_parameterNode)\.([a-z][A-Za-z0-9_]*)\b", MODULE_FILE.read_text()))
    methods = {"connectGui", "disconnectGui", "GetSegmentation", "GetID", "IsA",
               "parameterNode"}  # the wrapper's MRML node
    unknown = sorted(u for u in used - fields - methods if not u[0].isupper())
    assert not unknown, unknown
    assert set(gui_state.SETTINGS_FIELDS) <= fields


def test_path_fields_have_a_path_line_edit_named_after_them():
    """The widget blanks an unset path (the wrapper writes Path() as ".") by the name
    ``<field>PathLineEdit``; each of those is bound to its field."""
    from PySERASlicerLib import gui_state

    bound = ui_parameter_names()
    for name in gui_state.PATH_FIELDS:
        assert bound.get(name) == name + "PathLineEdit", name
    assert "gui_state.PATH_FIELDS" in MODULE_FILE.read_text()


def _path_filters(name):
    return set(ui_widget_properties(name)["filters"].split("|"))


def test_settings_file_browse_opens_a_save_dialog_and_inputs_open_dialogs():
    """ctkPathLineEdit::browse uses QFileDialog::getSaveFileName when the Writable filter is set
    (CTK Libs/Widgets/ctkPathLineEdit.cpp), so Save needs no typing; inputs stay open dialogs."""
    assert {"ctkPathLineEdit::Files", "ctkPathLineEdit::Writable"} <= _path_filters("settingsFilePathLineEdit")
    for name in ("batchCasesCsvPathLineEdit", "deepWeightsPathLineEdit", "batchImageFolderPathLineEdit",
                 "batchMaskFolderPathLineEdit"):
        assert "ctkPathLineEdit::Writable" not in _path_filters(name), name
    assert "ctkPathLineEdit::Dirs" in _path_filters("deepWeightsPathLineEdit")  # a file or its folder


def test_deep_weights_field_is_in_the_loaded_ui(loaded_ui):
    from PySide6.QtCore import QObject

    widget = loaded_ui.findChild(QObject, "deepWeightsPathLineEdit")
    assert widget is not None and widget.property("SlicerParameterName") == "deepWeights"


def test_presets_are_added_to_the_combo_box_once_in_setup():
    """Runs must not re-add the 11 preset entries (they multiplied on every run)."""
    tree = ast.parse(MODULE_FILE.read_text())
    adders = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for method in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            for call in (n for n in ast.walk(method) if isinstance(n, ast.Call)):
                target = ast.unparse(call.func)
                if target.startswith("self.ui.presetComboBox.") and target.endswith(("addItem", "addItems",
                                                                                      "insertItem")):
                    adders.append(f"{cls.name}.{method.name}")
    assert adders == ["PySERASlicerWidget.setup"]
