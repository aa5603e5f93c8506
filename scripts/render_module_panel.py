"""Render the module panel from the real .ui to a PNG (PySide6, offscreen), for the README and
the Extensions Index screenshot until a screenshot from a real Slicer exists.

Slicer's CTK/MRML widgets do not exist outside Slicer; stand-ins drawn with plain Qt widgets
show where they are (a collapsible section as a titled group box, a path field as a line edit,
a node selector as a combo box). Combo boxes get the choices the parameter node declares, as
Slicer's parameterNodeWrapper fills them. So the picture shows the real layout, labels,
defaults and tooltips' widgets, not Slicer's look. Usage::

    QT_QPA_PLATFORM=offscreen python scripts/render_module_panel.py Resources/Screenshot01.png
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UI_FILE = ROOT / "PySERASlicer" / "Resources" / "UI" / "PySERASlicer.ui"
sys.path.insert(0, str(ROOT / "PySERASlicer"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# the .ui connects mrmlSceneChanged(vtkMRMLScene*) signals that the stand-ins do not have
os.environ.setdefault("QT_LOGGING_RULES", "qt.core.qobject.connect=false")


def _stand_in_classes():
    from PySide6.QtCore import Property
    from PySide6.QtWidgets import QComboBox, QGroupBox, QLineEdit, QPushButton, QWidget

    class ctkCollapsibleButton(QGroupBox):  # noqa: N801 - the .ui's class name
        def _get_text(self):
            return self.title()

        text = Property(str, _get_text, QGroupBox.setTitle)

    class ctkPathLineEdit(QLineEdit):  # noqa: N801
        pass

    class ctkDirectoryButton(QPushButton):  # noqa: N801
        def __init__(self, parent=None):
            super().__init__("~/PySERA", parent)

    class qMRMLNodeComboBox(QComboBox):  # noqa: N801
        def __init__(self, parent=None):
            super().__init__(parent)
            self.addItem("None")

    class qMRMLCheckableNodeComboBox(qMRMLNodeComboBox):  # noqa: N801
        pass

    class qMRMLWidget(QWidget):  # noqa: N801
        pass

    class qMRMLSegmentSelectorWidget(QComboBox):  # noqa: N801
        def __init__(self, parent=None):
            super().__init__(parent)
            self.addItem("All segments")

    return [ctkCollapsibleButton, ctkPathLineEdit, ctkDirectoryButton, qMRMLNodeComboBox,
            qMRMLCheckableNodeComboBox, qMRMLWidget, qMRMLSegmentSelectorWidget]


def render(output: Path, width: int = 460) -> Path:
    from PySERASlicerLib import gui_state
    from PySide6.QtCore import QFile, QObject
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox, QWidget

    app = QApplication.instance() or QApplication([])
    loader = QUiLoader()
    for cls in _stand_in_classes():
        loader.registerCustomWidget(cls)
    ui_file = QFile(str(UI_FILE))
    if not ui_file.open(QFile.ReadOnly):
        raise OSError(f"cannot open {UI_FILE}")
    panel = loader.load(ui_file)
    ui_file.close()
    if panel is None:
        raise RuntimeError(f"QUiLoader could not load {UI_FILE}: {loader.errorString()}")
    defaults = gui_state.defaults()  # what a fresh parameter node writes into the widgets
    choices = {p.name: p.choices for p in gui_state.PARAMETERS}
    for widget in panel.findChildren(QWidget):
        name = widget.property("SlicerParameterName")
        if name not in defaults:
            continue
        value = defaults[name]
        if isinstance(widget, QComboBox) and choices.get(name):
            widget.addItems([str(c) for c in choices[name]])
            widget.setCurrentText(str(value))
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            widget.setValue(value)
    preset = panel.findChild(QObject, "presetComboBox")
    preset.addItems(list(gui_state.PRESET_CHOICES))
    preset.setCurrentText(gui_state.DEFAULT_PRESET)
    for name in ("errorsTextEdit",):
        panel.findChild(QObject, name).setVisible(False)
    panel.resize(width, panel.sizeHint().height())
    panel.adjustSize()
    panel.resize(width, panel.height())
    output.parent.mkdir(parents=True, exist_ok=True)
    if not panel.grab().save(str(output)):
        raise OSError(f"could not write {output}")
    panel.deleteLater()
    app.processEvents()
    return output


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Resources" / "Screenshot01.png"
    print(render(target))
