"""PySERA radiomics for 3D Slicer: the module (Module, ParameterNode, Widget, Logic, Test).

The widget is thin: it binds the .ui to a parameter node, asks the logic for a background job,
polls it with a QTimer (Slicer never freezes) and shows the resulting table. All behaviour lives
in the bundled ``PySERASlicerLib`` package (engine, jobs, Slicer bridge), tested without the
Slicer application.
"""

import logging
import os
from typing import Annotated, Optional, Union

import qt
import slicer
import vtk
from PySERASlicerLib.settings import PRESET_DESCRIPTIONS, DiscretisationMethod, Settings, preset_settings
from PySERASlicerLib.slicer_bridge import show_table
from PySERASlicerLib.slicer_logic import ExtractionLogic, summary
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#: How often the widget polls a running job (ms).
POLL_INTERVAL_MS = 200


class PySERASlicer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("PySERA Radiomics")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["PySERA for 3D Slicer developers"]
        self.parent.helpText = _(
            "IBSI-compliant radiomics (557 PySERA features, deep features) for volumes and segmentations. "
            "Extraction runs in a background process; results appear as a table and export to Excel/CSV."
        )
        self.parent.acknowledgementText = _(
            "Reimplements the PySERA library's process_batch (MIT). IBSI reference data: Zwanenburg et al., "
            "Radiology 2020;295:328-338."
        )


@parameterNodeWrapper
class PySERASlicerParameterNode:
    """Everything the GUI edits; saved with the scene."""

    inputVolume: vtkMRMLScalarVolumeNode
    inputMask: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]
    outputTable: vtkMRMLTableNode
    preset: str = "pysera_default"
    categories: str = "diag,morph,glcm,glrlm,glszm,ngtdm,ngldm"
    dimensions: str = "1st,2d"
    binSize: Annotated[float, WithinRange(0.001, 10000.0)] = 25.0


def settings_from_parameter_node(parameterNode) -> Settings:
    """Settings of a run: the preset, overridden by the categories, dimensions and bin size."""
    return Settings.from_pysera(
        base=preset_settings(parameterNode.preset),
        categories=parameterNode.categories,
        dimensions=parameterNode.dimensions,
        bin_size=parameterNode.binSize,
    )


class PySERASlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._running = None
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/PySERASlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = PySERASlicerLogic()

        for name, description in PRESET_DESCRIPTIONS.items():
            self.ui.presetComboBox.addItem(name)
            self.ui.presetComboBox.setItemData(self.ui.presetComboBox.count - 1, description, qt.Qt.ToolTipRole)

        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onPollJob)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.presetComboBox.connect("currentTextChanged(QString)", self.onPresetChanged)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancelButton()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancelButton()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume and not firstVolume.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume = firstVolume
        if not self._parameterNode.inputMask:
            firstSegmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            if firstSegmentation:
                self._parameterNode.inputMask = firstSegmentation

    def setParameterNode(self, inputParameterNode: Optional[PySERASlicerParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        ready = bool(self._parameterNode and self._parameterNode.inputVolume and self._parameterNode.inputMask)
        self.ui.applyButton.enabled = ready and self._running is None
        self.ui.applyButton.toolTip = _("Extract features in a background process.") if ready else _(
            "Select an image volume and a segmentation or labelmap.")

    def onPresetChanged(self, name: str) -> None:
        if not self._parameterNode or name not in PRESET_DESCRIPTIONS:
            return
        preset = preset_settings(name)
        disc = preset.discretisation
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.categories = ",".join(preset.categories)
            self._parameterNode.dimensions = ",".join(preset.dimensions)
            self._parameterNode.binSize = float(
                disc.bin_number if disc.method == DiscretisationMethod.FBN else disc.bin_width)

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the extraction."), waitCursor=True):
            node = self._parameterNode
            settings = settings_from_parameter_node(node)
            self._running = self.logic.start(node.inputVolume, node.inputMask, settings,
                                             table_node=node.outputTable)
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.text = _("Starting...")
            self.ui.cancelButton.enabled = True
            self._checkCanApply()
            self._timer.start()

    def onCancelButton(self) -> None:
        if self._running is not None:
            self._running.cancel()
            self._running = None
            self.ui.statusLabel.text = _("Cancelled.")
        self._stopPolling()

    def _stopPolling(self) -> None:
        if self._timer:
            self._timer.stop()
        self.ui.cancelButton.enabled = False
        self._checkCanApply()

    def onPollJob(self) -> None:
        """Called by the QTimer: never blocks."""
        if self._running is None:
            self._stopPolling()
            return
        progress = self._running.poll()
        if progress.total:
            self.ui.progressBar.setValue(int(100 * progress.fraction))
        self.ui.statusLabel.text = f"{progress.message} ({progress.elapsed:.0f} s)"
        if progress.state == "running":
            return
        running, self._running = self._running, None
        self._stopPolling()
        try:
            frame, table, result = running.finish()
        except Exception as exc:
            self.ui.statusLabel.text = _("Extraction failed.")
            slicer.util.errorDisplay(_("Extraction failed."), detailedText=str(exc))
            return
        self._parameterNode.outputTable = table
        self.ui.progressBar.setValue(100)
        problems = [r["Message"] for r in result.report if r["Level"] == "ERROR"]
        self.ui.statusLabel.text = summary(frame, result.seconds) + (
            f" — {len(problems)} error(s): {problems[0]}" if problems else "")
        show_table(table)


class PySERASlicerLogic(ScriptedLoadableModuleLogic, ExtractionLogic):
    """Console/headless API::

        logic = slicer.modules.pyseraslicer.widgetRepresentation().self().logic  # or PySERASlicerLogic()
        frame, table = logic.extract(volumeNode, segmentationNode, categories="all", dimensions="1st,3d")
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        ExtractionLogic.__init__(self)

    def getParameterNode(self):
        return PySERASlicerParameterNode(super().getParameterNode())


class PySERASlicerTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Developer mode > Reload and Test): drives the logic and the GUI."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_extract_from_console()
        self.setUp()
        self.test_gui_end_to_end()

    def _synthetic_case(self):
        import numpy as np

        rng = np.random.default_rng(0)
        voxels = rng.normal(40, 10, (20, 40, 40)).astype(np.int16)
        ijkToRAS = np.diag([0.8, 0.8, 2.5, 1.0])
        volume = slicer.util.addVolumeFromArray(voxels, ijkToRAS, name="CT")
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Seg")
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        mask = np.zeros(voxels.shape, np.uint8)
        mask[5:12, 10:25, 12:30] = 1
        segmentId = segmentation.GetSegmentation().AddEmptySegment("", "tumor")
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentation, segmentId, volume)
        return volume, segmentation, voxels, mask

    def test_extract_from_console(self):
        self.delayDisplay("Console extraction")
        volume, segmentation, voxels, mask = self._synthetic_case()
        frame, table = PySERASlicerLogic().extract(volume, segmentation, categories="stat", dimensions="1st")
        self.assertEqual(table.GetNumberOfRows(), 1)
        self.assertAlmostEqual(float(frame["stat_mean"][0]), float(voxels[mask > 0].mean()), places=6)
        self.delayDisplay("Console extraction passed")

    def test_gui_end_to_end(self):
        self.delayDisplay("GUI extraction")
        volume, segmentation, _, _ = self._synthetic_case()
        widget = slicer.modules.pyseraslicer.widgetRepresentation().self()
        slicer.util.selectModule("PySERASlicer")
        widget._parameterNode.inputVolume = volume
        widget._parameterNode.inputMask = segmentation
        widget._parameterNode.categories = "stat,morph"
        widget._parameterNode.dimensions = "1st"
        widget.ui.applyButton.click()
        for _ in range(600):
            slicer.app.processEvents()
            if widget._running is None:
                break
            qt.QThread.msleep(100)
        table = widget._parameterNode.outputTable
        self.assertIsNotNone(table)
        self.assertEqual(table.GetNumberOfRows(), 1)
        logging.info(os.linesep.join(widget.ui.statusLabel.text.split("—")))
        self.delayDisplay("GUI extraction passed")
