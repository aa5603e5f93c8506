"""PySERA radiomics for 3D Slicer: the module (Module, ParameterNode, Widget, Logic, Test).

The widget is thin: it binds the .ui to a parameter node, asks the logic for a background job,
polls it with a QTimer (Slicer never freezes) and shows the resulting table and plots. All
behaviour lives in the bundled ``PySERASlicerLib`` package, tested without the Slicer
application: ``gui_state`` (parameter node <-> Settings), ``slicer_logic`` (runs, exports),
``slicer_bridge`` (MRML <-> arrays, tables, plots), ``dependencies`` (missing packages).

Python 3.9 (Slicer 5.6/5.8): the parameter node's hints are evaluated at run time, so they use
``typing.Optional``/``Union``/``List``; no ``from __future__ import annotations`` here.
"""

import importlib
import logging
import pathlib
from typing import Annotated, List, Optional, Union

import qt
import slicer
from PySERASlicerLib import dependencies, gui_state
from PySERASlicerLib.settings import PRESET_DESCRIPTIONS
from PySERASlicerLib.slicer_bridge import numeric_feature_columns, plot_features, show_plot, show_table
from PySERASlicerLib.slicer_logic import (
    ExtractionLogic,
    csv_export_path,
    errors_text,
    export_table,
    export_table_csv,
    show_response_maps,
)
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLPlotChartNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
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
            "IBSI-compliant radiomics (PySERA features, deep features) for volumes and segmentations, or for "
            "folders of images and masks. Extraction runs in a background process; results appear as a table, "
            "plot and Excel/CSV export. Documentation: <a href=\"{url}\">{url}</a>"
        ).format(url=gui_state.HOMEPAGE_URL)
        self.parent.acknowledgementText = _(
            "Reimplements the PySERA library's process_batch (MIT). IBSI reference data: Zwanenburg et al., "
            "Radiology 2020;295:328-338."
        )


@parameterNodeWrapper
class PySERASlicerParameterNode:
    """Everything the GUI edits; saved with the scene.

    The settings fields mirror ``PySERASlicerLib.gui_state.PARAMETERS`` (same names, types and
    defaults; Testing/test_slicer_gui_state.py checks it). ``inputVolumes`` and ``segmentIds``
    are wired by hand (no GUI connector exists for a checkable node combo box or a segment
    selector); ``segmentIds`` holds segment ids comma-joined, "" meaning all segments.
    """

    # inputs
    inputVolumes: List[vtkMRMLScalarVolumeNode]
    inputMask: Optional[Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]]
    segmentIds: str = ""
    # batch
    batchImageFolder: pathlib.Path
    batchMaskFolder: pathlib.Path
    batchCasesCsv: pathlib.Path
    batchScheduler: str = ""  # Dask scheduler address; empty = this machine
    # outputs
    outputTable: vtkMRMLTableNode
    resultTable: vtkMRMLTableNode
    plotChart: vtkMRMLPlotChartNode
    outputFolder: pathlib.Path = pathlib.Path.home() / "PySERA"
    # settings file, preset and the hidden full settings JSON (see gui_state)
    settingsFile: pathlib.Path
    preset: Annotated[str, Choice(['pysera_default', 'digital_phantom', 'ibsi_A', 'ibsi_B', 'ibsi_C', 'ibsi_D',
                                   'ibsi_E', 'ct', 'mr', 'pet', 'custom'])] = 'pysera_default'
    baseSettings: str = ""
    # settings fields (gui_state.PARAMETERS)
    modality: Annotated[str, Choice(['CT', 'PET', 'MRI', 'OTHER'])] = 'OTHER'
    petSuv: bool = True
    dicomGantryTilt: Annotated[str, Choice(['regularize', 'error'])] = 'regularize'
    dicomMissingSlices: Annotated[str, Choice(['error', 'interpolate'])] = 'error'
    categoryDiag: bool = True
    categoryMorph: bool = True
    categoryIp: bool = False
    categoryStat: bool = False
    categoryIh: bool = False
    categoryIvh: bool = False
    categoryGlcm: bool = True
    categoryGlrlm: bool = True
    categoryGlszm: bool = True
    categoryGldzm: bool = False
    categoryNgtdm: bool = True
    categoryNgldm: bool = True
    categoryMi: bool = False
    dimension1st: bool = True
    dimension2d: bool = True
    dimension2_5d: bool = False
    dimension3d: bool = False
    featureNames: str = ''
    discretisationMethod: Annotated[str, Choice(['FBS', 'FBN', 'NONE'])] = 'FBS'
    binWidth: Annotated[float, WithinRange(0.001, 1000000.0)] = 25.0
    binNumber: Annotated[int, WithinRange(1, 100000)] = 32
    resamplingMode: Annotated[str, Choice(['off', '2D', '3D'])] = 'off'
    voxelSize: Annotated[float, WithinRange(0.01, 100.0)] = 2.0
    voxelSize2D: Annotated[float, WithinRange(0.01, 100.0)] = 2.0
    imageInterpolator: Annotated[str, Choice(['nearest', 'linear', 'cubic'])] = 'nearest'
    roiInterpolator: Annotated[str, Choice(['nearest', 'linear', 'cubic'])] = 'nearest'
    roiPartialVolume: Annotated[float, WithinRange(0.01, 1.0)] = 0.5
    roundIntensities: bool = False
    statisticsOnResampled: bool = True
    rangeEnabled: bool = False
    rangeLower: Annotated[float, WithinRange(-1000000.0, 1000000.0)] = -1000.0
    rangeUpper: Annotated[float, WithinRange(-1000000.0, 1000000.0)] = 400.0
    outlierFilter: bool = False
    ivhType: Annotated[int, Choice([0, 1, 2, 3])] = 3
    ivhContinuous: bool = True
    ivhBinSize: Annotated[float, WithinRange(0.001, 1000000.0)] = 2.0
    minRoiVolume: Annotated[int, WithinRange(0, 1000000000)] = 10
    roiNum: Annotated[int, WithinRange(1, 100000)] = 10
    roiSelectionMode: Annotated[str, Choice(['per_Img', 'per_region'])] = 'per_Img'
    combineRois: bool = False
    aggregationLesion: bool = False
    applyPreprocessing: bool = False
    featureValueMode: Annotated[str, Choice(['REAL_VALUE', 'APPROXIMATE_VALUE'])] = 'REAL_VALUE'
    extractionMode: Annotated[str, Choice(['handcrafted_feature', 'deep_feature'])] = 'handcrafted_feature'
    deepModel: Annotated[str, Choice(['resnet50', 'vgg16', 'densenet121'])] = 'resnet50'
    deepWeights: pathlib.Path
    numWorkers: Annotated[int, WithinRange(0, 256)] = 0
    enableParallelism: bool = True
    reportLevel: Annotated[str, Choice(['all', 'info', 'warning', 'error', 'none'])] = 'all'
    columnNames: Annotated[str, Choice(['ibsi', 'pysera'])] = 'ibsi'
    filtersText: str = ''  # IBSI-2 filter list (JSON), wired by hand to filtersTextEdit


class PySERASlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._binding = None
        self._running = None
        self._timer = None
        self._updatingGUI = False

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/PySERASlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = PySERASlicerLogic()
        # connectGui once per parameter node: on Slicer 5.6/5.8 it returns no tag to undo it with
        self._binding = gui_state.GuiBinding(
            connect_gui=lambda wrapper: wrapper.connectGui(self.ui),
            disconnect_gui=lambda wrapper, tag: wrapper.disconnectGui(tag),
            on_modified=self.updateGUIFromParameterNode)

        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onPollJob)
        self.ui.errorsTextEdit.visible = False
        # the preset combo box is not bound: choosing a preset overwrites every settings field
        for index, name in enumerate(gui_state.PRESET_CHOICES):
            self.ui.presetComboBox.addItem(name)
            description = PRESET_DESCRIPTIONS.get(name, _("Custom settings (edited or loaded from a file)"))
            self.ui.presetComboBox.setItemData(index, description, qt.Qt.ToolTipRole)
        self.ui.dependencyLabel.text = dependencies.status_text()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # widgets without a parameterNodeWrapper connector: wired by hand
        self.ui.inputVolumesSelector.connect("checkedNodesChanged()", self.onVolumesChecked)
        self.ui.inputMaskSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onMaskSelected)
        self.ui.segmentSelector.connect("segmentSelectionChanged(QStringList)", self.onSegmentsSelected)
        # "activated" fires on a user's choice only, not when updateGUIFromParameterNode sets the text
        self.ui.presetComboBox.connect("activated(int)", self.onPresetActivated)
        self.ui.categoriesAllButton.connect("clicked()", lambda: self.setAll(gui_state.CATEGORY_FIELDS, True))
        self.ui.categoriesNoneButton.connect("clicked()", lambda: self.setAll(gui_state.CATEGORY_FIELDS, False))
        self.ui.dimensionsAllButton.connect("clicked()", lambda: self.setAll(gui_state.DIMENSION_FIELDS, True))
        self.ui.dimensionsNoneButton.connect("clicked()", lambda: self.setAll(gui_state.DIMENSION_FIELDS, False))
        self.ui.loadSettingsButton.connect("clicked()", self.onLoadSettings)
        self.ui.saveSettingsButton.connect("clicked()", self.onSaveSettings)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.batchRunButton.connect("clicked(bool)", self.onBatchRunButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.showTableButton.connect("clicked()", self.onShowTable)
        self.ui.exportExcelButton.connect("clicked()", self.onExportExcel)
        self.ui.exportCsvButton.connect("clicked()", self.onExportCsv)
        self.ui.plotButton.connect("clicked()", self.onPlot)
        self.ui.addFilterComboBox.addItem(_("Add a filter..."))
        for name in gui_state.FILTER_EXAMPLES:
            self.ui.addFilterComboBox.addItem(name)
        self.ui.addFilterComboBox.connect("activated(int)", self.onAddFilter)
        self.ui.filtersTextEdit.connect("textChanged()", self.onFiltersEdited)
        self.ui.showResponseMapButton.connect("clicked()", self.onShowResponseMaps)
        self.ui.plotFilterLineEdit.connect(
            "textChanged(QString)", lambda text: self.updatePlotFeatureList(self.ui.resultTableSelector.currentNode()))
        # the signal's node: the wrapper stores resultTable only after this slot has run
        self.ui.resultTableSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updatePlotFeatureList)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancelButton()
        if self._binding:
            self._binding.release()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # the widget binding stays (see gui_state.GuiBinding); only our refresh stops
        if self._binding:
            self._binding.pause()

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancelButton()
        # the parameter node is reset now: the hand-wired slots must not write into it
        self._binding.pause()
        self._parameterNode = None

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Connect the parameter node (once; Slicer keeps the same node across scene closes)."""
        self._updatingGUI = True  # connectGui writes every widget: not a user edit
        try:
            self._binding.bind(self.logic.getParameterNode())
        finally:
            self._updatingGUI = False
        node = self._parameterNode = self._binding.wrapper
        if not list(node.inputVolumes):
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume and not firstVolume.IsA("vtkMRMLLabelMapVolumeNode"):
                node.inputVolumes = [firstVolume]
        if not node.inputMask:
            firstSegmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            if firstSegmentation:
                gui_state.choose_mask(node, firstSegmentation)
        self.updateGUIFromParameterNode()

    # -- parameter node -> manually wired widgets ---------------------------------------------------
    def updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        node = self._parameterNode
        if node is None or self._updatingGUI:
            return
        self._updatingGUI = True
        try:
            wanted = {v.GetID() for v in node.inputVolumes if v is not None}
            combo = self.ui.inputVolumesSelector
            for index in range(combo.nodeCount()):
                volume = combo.nodeFromIndex(index)
                state = qt.Qt.Checked if volume.GetID() in wanted else qt.Qt.Unchecked
                if combo.checkState(volume) != state:
                    combo.setCheckState(volume, state)
            mask = node.inputMask
            segmentation = mask if mask is not None and mask.IsA("vtkMRMLSegmentationNode") else None
            selector = self.ui.segmentSelector
            if selector.currentNode() != segmentation:
                selector.setCurrentNode(segmentation)
            selector.enabled = segmentation is not None
            if segmentation is not None:
                selected = gui_state.selected_segment_ids(node.segmentIds, gui_state.segment_ids_of(segmentation))
                if sorted(selector.selectedSegmentIDs()) != sorted(selected):
                    selector.setSelectedSegmentIDs(selected)
            self.ui.binWidthSpinBox.enabled = node.discretisationMethod == "FBS"
            self.ui.binNumberSpinBox.enabled = node.discretisationMethod == "FBN"
            resampled = node.resamplingMode != "off"
            for widget in (self.ui.imageInterpolatorComboBox, self.ui.roiInterpolatorComboBox,
                           self.ui.roiPartialVolumeSpinBox, self.ui.roundIntensitiesCheckBox,
                           self.ui.statisticsOnResampledCheckBox):
                widget.enabled = resampled
            self.ui.voxelSizeSpinBox.enabled = node.resamplingMode == "3D"
            self.ui.voxelSize2DSpinBox.enabled = node.resamplingMode == "2D"
            self.ui.rangeLowerSpinBox.enabled = self.ui.rangeUpperSpinBox.enabled = node.rangeEnabled
            self.ui.ivhBinSizeSpinBox.enabled = node.ivhContinuous
            self.ui.deepModelComboBox.enabled = self.ui.deepWeightsPathLineEdit.enabled = (
                node.extractionMode == "deep_feature")
            # the wrapper writes an unset path, Path(), as "."; this observer runs after it (priority)
            for name in gui_state.PATH_FIELDS:
                pathEdit = getattr(self.ui, name + "PathLineEdit")
                if not gui_state.path_text(getattr(node, name)) and pathEdit.currentPath:
                    pathEdit.currentPath = ""
            if self.ui.filtersTextEdit.toPlainText() != node.filtersText:
                self.ui.filtersTextEdit.setPlainText(node.filtersText)
            self.ui.showResponseMapButton.enabled = bool(node.filtersText.strip()) and bool(list(node.inputVolumes))
            if self.ui.presetComboBox.currentText != node.preset:
                self.ui.presetComboBox.setCurrentText(node.preset)
            self.ui.presetComboBox.toolTip = PRESET_DESCRIPTIONS.get(node.preset, _("Custom settings"))
        finally:
            self._updatingGUI = False
        preset = gui_state.effective_preset(gui_state.read_values(node))
        if preset != node.preset:
            node.preset = preset  # an edited field turns the preset into "custom"
            return
        self._checkCanApply()

    # -- manually wired widgets -> parameter node ---------------------------------------------------
    def onVolumesChecked(self) -> None:
        if self._parameterNode is None or self._updatingGUI:
            return
        self._parameterNode.inputVolumes = list(self.ui.inputVolumesSelector.checkedNodes())

    def onMaskSelected(self, maskNode) -> None:
        # connected before the wrapper's binding, so inputMask is not stored yet: use the signal's node
        if self._parameterNode is None or self._updatingGUI:
            return
        gui_state.choose_mask(self._parameterNode, maskNode)

    def onSegmentsSelected(self, segmentIds) -> None:
        node = self._parameterNode
        if node is None or self._updatingGUI or node.inputMask is None:
            return
        if not node.inputMask.IsA("vtkMRMLSegmentationNode"):
            return
        node.segmentIds = gui_state.segment_selection_value(list(segmentIds),
                                                            gui_state.segment_ids_of(node.inputMask))

    def onPresetActivated(self, index: int) -> None:
        name = self.ui.presetComboBox.itemText(index)
        if not self._parameterNode or name not in PRESET_DESCRIPTIONS:
            return
        with slicer.util.NodeModify(self._parameterNode):
            gui_state.write_values(self._parameterNode, gui_state.preset_values(name))

    def onAddFilter(self, index: int) -> None:
        if index <= 0 or self._parameterNode is None:
            return
        name = self.ui.addFilterComboBox.itemText(index)
        self.ui.addFilterComboBox.setCurrentIndex(0)
        with slicer.util.tryWithErrorDisplay(_("Fix the filter list first."), waitCursor=False):
            self._parameterNode.filtersText = gui_state.add_filter_text(self._parameterNode.filtersText, name)

    def onFiltersEdited(self) -> None:
        if self._parameterNode is None or self._updatingGUI:
            return
        self._parameterNode.filtersText = self.ui.filtersTextEdit.toPlainText()

    def onShowResponseMaps(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not compute the response maps."), waitCursor=True):
            volumes = [v for v in self._parameterNode.inputVolumes if v is not None]
            if not volumes:
                raise ValueError(_("Choose an input volume first."))
            settings = gui_state.settings_from_node(self._parameterNode)
            nodes = self.logic.showResponseMaps(volumes[0], settings)
            self.ui.statusLabel.text = _("Response maps added: {names}").format(
                names=", ".join(n.GetName() for n in nodes))

    def setAll(self, names, checked: bool) -> None:
        if self._parameterNode:
            with slicer.util.NodeModify(self._parameterNode):
                gui_state.set_all(self._parameterNode, names, checked)

    def onLoadSettings(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not load the settings file."), waitCursor=True):
            path = gui_state.path_value(self._parameterNode.settingsFile)
            if path is None:
                raise ValueError(_("Choose a settings JSON file first."))
            with slicer.util.NodeModify(self._parameterNode):
                gui_state.load_settings_file(self._parameterNode, path)
            self.ui.statusLabel.text = _("Settings loaded from {path}").format(path=path)

    def onSaveSettings(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not save the settings file."), waitCursor=True):
            path = gui_state.path_value(self._parameterNode.settingsFile)
            if path is None:
                raise ValueError(_("Type the name of the settings JSON file to write."))
            gui_state.save_settings_file(self._parameterNode, path)
            self.ui.statusLabel.text = _("Settings saved to {path}").format(path=path)

    # -- run readiness --------------------------------------------------------------------------
    def _allValues(self) -> dict:
        node = self._parameterNode
        values = gui_state.read_values(node)
        for name in ("batchImageFolder", "batchMaskFolder", "batchCasesCsv", "outputFolder"):
            values[name] = getattr(node, name)
        return values

    def _checkCanApply(self) -> None:
        node = self._parameterNode
        if node is None:
            return
        busy = self._running is not None
        values = self._allValues()
        single = gui_state.single_case_problems(list(node.inputVolumes), node.inputMask, values)
        self.ui.applyButton.enabled = not single and not busy
        self.ui.applyButton.toolTip = "\n".join(single) or _("Extract features in a background process.")
        batch = gui_state.batch_problems(values)
        self.ui.batchRunButton.enabled = not batch and not busy
        self.ui.batchRunButton.toolTip = "\n".join(batch) or _("Run the batch in a background process.")
        hasTable = node.resultTable is not None
        for button in (self.ui.showTableButton, self.ui.exportExcelButton, self.ui.exportCsvButton,
                       self.ui.plotButton):
            button.enabled = hasTable

    # -- dependencies ---------------------------------------------------------------------------
    def ensureDependencies(self, settings=None, excel: bool = True, frame: bool = True, cluster: bool = False) -> bool:
        """Ask, then install what a run needs (pandas, openpyxl, distributed for a cluster; torch
        via PyTorchUtils). Callers must not show a wait cursor around this: it asks first."""
        requirements = (dependencies.needed_for_settings(settings, excel, frame, cluster) if settings is not None
                        else dependencies.needed(excel=excel, frame=frame, cluster=cluster))
        items = dependencies.missing(requirements)
        if not items:
            return True
        pipItems = [m for m in items if not m.requirement.torch]
        if pipItems:
            if not slicer.util.confirmOkCancelDisplay(dependencies.confirmation_text(pipItems),
                                                      windowTitle=_("Install Python packages")):
                return False
            with slicer.util.WaitCursor():
                slicer.util.pip_install(dependencies.pip_requirements(pipItems))
        if dependencies.torch_items(items) and not self._installTorch():
            return False
        importlib.invalidate_caches()
        self.ui.dependencyLabel.text = dependencies.status_text()
        still = dependencies.missing(requirements)
        if still:
            slicer.util.errorDisplay(_("Still missing: ") + "; ".join(m.describe() for m in still))
            return False
        if dependencies.needs_restart(items):
            slicer.util.infoDisplay(_("Packages were upgraded: restart Slicer before extracting."))
            return False
        return True

    def _installTorch(self) -> bool:
        """torch/torchvision through the PyTorch extension when present (right CUDA build)."""
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            PyTorchUtils = None
        if PyTorchUtils is not None:
            torchLogic = PyTorchUtils.PyTorchUtilsLogic()
            if not torchLogic.torchInstalled():
                torch = torchLogic.installTorch(askConfirmation=True,
                                                torchVersionRequirement=dependencies.torch_version_requirement())
                if torch is None:
                    return False
        remaining = dependencies.torch_items(dependencies.missing([dependencies.TORCH, dependencies.TORCHVISION]))
        if not remaining:
            return True
        text = dependencies.confirmation_text(remaining)
        if PyTorchUtils is None:
            text += _("\n\nTip: the PyTorch extension installs a GPU-enabled torch for your system.")
        if not slicer.util.confirmOkCancelDisplay(text, windowTitle=_("Install PyTorch")):
            return False
        with slicer.util.WaitCursor():
            slicer.util.pip_install(dependencies.pip_requirements(remaining))
        return True

    # -- running --------------------------------------------------------------------------------
    # No wait cursor over ensureDependencies: it may ask before installing.
    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the extraction.")):
            node = self._parameterNode
            settings = gui_state.settings_from_node(node)
            # the table is filled from plain rows: a GUI run needs no pandas, only torch for deep features
            if not self.ensureDependencies(settings, excel=False, frame=False):
                return
            with slicer.util.WaitCursor():
                running = self.logic.start(list(node.inputVolumes), node.inputMask, settings,
                                           segment_ids=gui_state.run_segment_ids(node.inputMask, node.segmentIds),
                                           table_node=node.outputTable)
            self._startPolling(running)

    def onBatchRunButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the batch.")):
            node = self._parameterNode
            settings = gui_state.settings_from_node(node)
            scheduler = node.batchScheduler.strip()
            if not self.ensureDependencies(settings, excel=True, cluster=bool(scheduler)):
                return
            with slicer.util.WaitCursor():
                running = self.logic.start_batch(settings, gui_state.path_value(node.outputFolder),
                                                 table_node=node.outputTable,
                                                 **gui_state.batch_inputs(self._allValues()),
                                                 **({"scheduler": scheduler} if scheduler else {}))
            self._startPolling(running)

    def _startPolling(self, running) -> None:
        self._running = running
        self.ui.progressBar.setRange(0, 100)
        self.ui.progressBar.setValue(0)
        self.ui.statusLabel.text = _("Starting...")
        self.ui.errorsTextEdit.visible = False
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
        self.ui.progressBar.setRange(0, 100)
        self.ui.cancelButton.enabled = False
        self._checkCanApply()

    def onPollJob(self) -> None:
        """Called by the QTimer: never blocks."""
        if self._running is None:
            self._stopPolling()
            return
        try:
            progress = self._running.poll()
        except Exception as exc:  # never leave the timer firing on an error
            self._running = None
            self._stopPolling()
            self._showErrors(str(exc))
            self.ui.statusLabel.text = _("Extraction failed.")
            return
        if progress.state == "running":
            if progress.cases_total:
                self.ui.progressBar.setValue(int(100 * progress.fraction))
            else:  # batch: number of cases unknown, show a busy bar
                self.ui.progressBar.setRange(0, 0)
            self.ui.statusLabel.text = progress.text()
            return
        running, self._running = self._running, None
        self._stopPolling()
        if progress.state == "cancelled":
            self.ui.statusLabel.text = _("Cancelled.")
            return
        try:
            table, result = running.finish_table()
        except Exception as exc:
            self.ui.statusLabel.text = _("Extraction failed.")
            self._showErrors(str(exc))
            slicer.util.errorDisplay(_("Extraction failed."), detailedText=str(exc))
            return
        self.ui.progressBar.setValue(100)
        self._parameterNode.resultTable = table
        self.ui.summaryLabel.text = result.summary()
        self.ui.statusLabel.text = result.summary()
        self._showErrors(errors_text(result.report, result.errors))
        show_table(table)
        self.updatePlotFeatureList(table)

    def _showErrors(self, text: str) -> None:
        self.ui.errorsTextEdit.setPlainText(text)
        self.ui.errorsTextEdit.visible = bool(text)

    # -- results --------------------------------------------------------------------------------
    def updatePlotFeatureList(self, table) -> None:
        """List the numeric features of ``table`` (the results table selector's node)."""
        listWidget = self.ui.plotFeatureList
        selected = {item.text() for item in listWidget.selectedItems()}
        listWidget.clear()
        if table is None:
            return
        text = self.ui.plotFilterLineEdit.text.strip().lower()
        for name in numeric_feature_columns(table):
            if text in name.lower():
                listWidget.addItem(name)
                if name in selected:
                    listWidget.item(listWidget.count - 1).setSelected(True)
        summaryText = table.GetAttribute("PySERA.Summary")
        if summaryText:
            self.ui.summaryLabel.text = summaryText

    def onShowTable(self) -> None:
        if self._parameterNode.resultTable is not None:
            show_table(self._parameterNode.resultTable)

    def onExportExcel(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Excel export failed.")):
            if not self.ensureDependencies(excel=True):
                return
            folder = self._exportFolder()
            with slicer.util.WaitCursor():
                xlsx, csv = export_table(self._parameterNode.resultTable, folder)
            self.ui.statusLabel.text = _("Saved {xlsx} and {csv}").format(xlsx=xlsx, csv=csv)

    def onExportCsv(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("CSV export failed."), waitCursor=True):
            table = self._parameterNode.resultTable
            path = export_table_csv(table, csv_export_path(self._exportFolder(), table.GetName()))
            self.ui.statusLabel.text = _("Saved {path}").format(path=path)

    def _exportFolder(self) -> pathlib.Path:
        folder = gui_state.path_value(self._parameterNode.outputFolder)
        if folder is None:
            raise ValueError(_("Choose an output folder first."))
        return folder

    def onPlot(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not plot the features."), waitCursor=True):
            features = [item.text() for item in self.ui.plotFeatureList.selectedItems()]
            chart = plot_features(self._parameterNode.resultTable, features, self._parameterNode.plotChart)
            self._parameterNode.plotChart = chart
            show_plot(chart)


class PySERASlicerLogic(ScriptedLoadableModuleLogic, ExtractionLogic):
    """Console/headless API (blocking; see PySERASlicerLib.slicer_logic for the details)::

        logic = PySERASlicerLogic()
        frame, table = logic.extract(volumeNode, segmentationNode, categories="all", dimensions="1st,3d")
        frame, table = logic.extract([ct, pet], segmentationNode, preset="ibsi_C",
                                     segment_ids=["Segment_1"])
        running = logic.start_batch(settings, "out", image_folder="images", mask_folder="masks")
        frame, table, result = running.finish()
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        ExtractionLogic.__init__(self)

    def getParameterNode(self):
        return PySERASlicerParameterNode(super().getParameterNode())

    @staticmethod
    def showResponseMaps(volumeNode, settings):
        """One new volume node per filter of ``settings`` (``slicer_logic.show_response_maps``)."""
        return show_response_maps(volumeNode, settings)

    @staticmethod
    def settingsFromParameterNode(parameterNode):
        """The Settings the GUI describes (``gui_state.settings_from_node``)."""
        return gui_state.settings_from_node(parameterNode)


class PySERASlicerTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Developer mode > Reload and Test; ctest under ``--testing``): the GUI
    flows through the real widgets and parameterNodeWrapper, and the console API.

    In testing mode dialogs auto-accept and pip may have no network, so what needs a package
    Slicer does not bundle (pandas, for the console's DataFrame) is skipped when it is missing,
    and the final message says what was skipped. Outside testing mode the test asks first and
    installs it. See docs/slicer_module.md, "Self-test inside Slicer".
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.skipped = []
        for test in (self.test_module_binds_its_parameter_node_once, self.test_gui_end_to_end,
                     self.test_cancel_leaves_no_worker_process, self.test_missing_deep_weights_stop_before_any_case,
                     self.test_extract_from_console):
            self.setUp()
            test()
        message = _("PySERA self-test passed.")
        if self.skipped:
            message += " " + _("Skipped: {parts}").format(parts="; ".join(self.skipped))
        logging.info(message)
        self.delayDisplay(message)

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _widget():
        slicer.util.selectModule("PySERASlicer")
        return slicer.modules.pyseraslicer.widgetRepresentation().self()

    def _synthetic_case(self, name="CT", seed=0):
        import numpy as np

        rng = np.random.default_rng(seed)
        voxels = rng.normal(40, 10, (20, 40, 40)).astype(np.int16)
        ijkToRAS = np.diag([0.8, 0.8, 2.5, 1.0])
        volume = slicer.util.addVolumeFromArray(voxels, ijkToRAS, name=name)
        segmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
        masks = {}
        if segmentation is None:
            segmentation = self._segmentation(volume, voxels.shape, "Seg", (
                ("tumor", (slice(5, 12), slice(10, 25), slice(12, 30))),
                ("node", (slice(12, 18), slice(20, 35), slice(5, 15)))), masks)
        return volume, segmentation, voxels, masks

    @staticmethod
    def _segmentation(volume, shape, name, boxes, masks=None):
        import numpy as np

        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        for segmentName, box in boxes:
            mask = np.zeros(shape, np.uint8)
            mask[box] = 1
            segmentId = segmentation.GetSegmentation().AddEmptySegment("", segmentName)
            slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentation, segmentId, volume)
            if masks is not None:
                masks[segmentName] = mask
        return segmentation

    def _waitForWidget(self, widget, seconds=120):
        """Process events (the widget's QTimer polls the job) until the run has ended."""
        for _index in range(seconds * 10):
            slicer.app.processEvents()
            if widget._running is None:
                return
            qt.QThread.msleep(100)
        self.fail("the extraction did not finish")

    def _pandasAvailable(self, purpose):
        """pandas for ``purpose``: installed after asking outside testing mode; in testing mode
        nothing is installed and the caller skips (recorded in ``self.skipped``)."""
        if not dependencies.missing([dependencies.PANDAS]):
            return True
        if not slicer.app.testingEnabled() and slicer.util.confirmOkCancelDisplay(
                _("The self-test's {purpose} needs pandas, which Slicer does not bundle. Install it now "
                  "(pip install {pip})?").format(purpose=purpose, pip=dependencies.PANDAS.pip)):
            with slicer.util.WaitCursor():
                slicer.util.pip_install(dependencies.PANDAS.pip)
            importlib.invalidate_caches()
            if not dependencies.missing([dependencies.PANDAS]):
                return True
        self.skipped.append(_("{purpose} (pandas is not installed)").format(purpose=purpose))
        logging.warning("PySERASlicerTest: skipped %s: pandas is not installed", purpose)
        return False

    # -- tests ----------------------------------------------------------------------------------
    def test_module_binds_its_parameter_node_once(self):
        """enter()/exit() and a scene close must not stack widget bindings (5.6/5.8's connectGui
        returns no tag to undo it with)."""
        self.delayDisplay("Parameter node binding")
        widget = self._widget()
        connections = widget._binding.connections
        for _visit in range(3):
            slicer.util.selectModule("Data")
            slicer.util.selectModule("PySERASlicer")
        slicer.mrmlScene.Clear()
        self.assertEqual(widget._binding.connections, connections)
        self.assertIs(widget._parameterNode.parameterNode, widget.logic.getParameterNode().parameterNode)
        # one edit still reaches the widget (the binding is alive)
        widget._parameterNode.binWidth = 7.0
        self.assertEqual(widget.ui.binWidthSpinBox.value, 7.0)
        widget.ui.binWidthSpinBox.value = 9.0
        self.assertEqual(widget._parameterNode.binWidth, 9.0)

    def test_gui_end_to_end(self):
        self.delayDisplay("GUI extraction")
        volume, segmentation, _voxels, _masks = self._synthetic_case("CT")
        second, _segmentation, _voxels2, _masks2 = self._synthetic_case("CT follow-up", seed=1)
        other = self._segmentation(volume, _voxels.shape, "Other", (("liver", (slice(2, 9), slice(5, 20),
                                                                               slice(5, 20))),))
        widget = self._widget()
        node = widget._parameterNode
        segments = segmentation.GetSegmentation()
        tumorId = segments.GetSegmentIdBySegmentName("tumor")
        # inputs through the widgets: two volumes, a segmentation, one segment
        node.inputVolumes = [volume, second]
        self.assertEqual(len(widget.ui.inputVolumesSelector.checkedNodes()), 2)
        widget.ui.inputMaskSelector.setCurrentNode(segmentation)
        self.assertIs(node.inputMask, segmentation)
        widget.ui.segmentSelector.setSelectedSegmentIDs([tumorId])
        self.assertEqual(node.segmentIds, tumorId)
        # another mask: kept (not reverted by the wrapper), with all of its segments
        widget.ui.inputMaskSelector.setCurrentNode(other)
        self.assertIs(node.inputMask, other)
        self.assertIs(widget.ui.inputMaskSelector.currentNode(), other)
        self.assertEqual(node.segmentIds, "")
        widget.ui.inputMaskSelector.setCurrentNode(segmentation)
        self.assertIs(widget.ui.segmentSelector.currentNode(), segmentation)
        widget.ui.segmentSelector.setSelectedSegmentIDs([tumorId])
        self.assertEqual(node.segmentIds, tumorId)
        # unset path fields are blank, not "."
        for name in gui_state.PATH_FIELDS:
            self.assertEqual(getattr(widget.ui, name + "PathLineEdit").currentPath, "", name)
        # parameters: preset, then None/All buttons and single families
        widget.ui.presetComboBox.setCurrentText("ibsi_C")
        widget.onPresetActivated(widget.ui.presetComboBox.currentIndex)
        self.assertEqual(node.resamplingMode, "3D")
        widget.ui.categoriesNoneButton.click()
        self.assertFalse(widget.ui.applyButton.enabled)
        widget.ui.categoryStatCheckBox.checked = True
        widget.ui.categoryMorphCheckBox.checked = True
        widget.ui.dimensionsNoneButton.click()
        widget.ui.dimension1stCheckBox.checked = True
        self.assertEqual(node.preset, "custom")
        self.assertTrue(widget.ui.applyButton.enabled)
        # run in the background, then check table, summary, plot and exports
        widget.ui.applyButton.click()
        self.assertFalse(widget.ui.applyButton.enabled)
        self._waitForWidget(widget)
        table = node.resultTable
        self.assertIsNotNone(table, widget.ui.errorsTextEdit.plainText)
        self.assertEqual(table.GetNumberOfRows(), 2)  # two cases x one segment
        self.assertIn("2 ROI(s)", widget.ui.summaryLabel.text)
        self.assertEqual(widget.ui.presetComboBox.count, len(gui_state.PRESET_CHOICES))  # not re-added per run
        # the feature list follows the results-table selector at once
        widget.ui.resultTableSelector.setCurrentNode(None)
        self.assertEqual(widget.ui.plotFeatureList.count, 0)
        widget.ui.resultTableSelector.setCurrentNode(table)
        self.assertEqual(widget.ui.plotFeatureList.count, len(numeric_feature_columns(table)))
        widget.ui.plotFeatureList.setCurrentRow(0)
        widget.ui.plotButton.click()
        self.assertIsNotNone(node.plotChart)
        self.assertEqual(node.plotChart.GetNumberOfPlotSeriesNodes(), 1)
        import tempfile

        node.outputFolder = pathlib.Path(tempfile.mkdtemp())
        widget.ui.exportCsvButton.click()
        self.assertEqual(len(list(node.outputFolder.glob("*.csv"))), 1)
        # settings JSON round trip through the GUI
        node.settingsFile = node.outputFolder / "settings.json"
        widget.ui.saveSettingsButton.click()
        node.binWidth = 5.0
        widget.ui.loadSettingsButton.click()
        self.assertEqual(node.binWidth, 25.0)
        # a segment deleted after it was chosen is dropped from the next run
        nodeSegmentId = segments.GetSegmentIdBySegmentName("node")
        node.segmentIds = gui_state.join_ids([tumorId, nodeSegmentId])
        segments.RemoveSegment(nodeSegmentId)
        widget.ui.applyButton.click()
        self._waitForWidget(widget)
        self.assertEqual(node.resultTable.GetNumberOfRows(), 2, widget.ui.errorsTextEdit.plainText)
        logging.info(widget.ui.summaryLabel.text)
        self.delayDisplay("GUI extraction passed")

    def test_cancel_leaves_no_worker_process(self):
        self.delayDisplay("Cancel")
        volume, segmentation, _voxels, _masks = self._synthetic_case("CT")
        widget = self._widget()
        node = widget._parameterNode
        node.inputVolumes = [volume]
        widget.ui.inputMaskSelector.setCurrentNode(segmentation)
        with slicer.util.NodeModify(node):  # every family and dimension: the worker is busy for seconds
            gui_state.write_values(node, gui_state.preset_values("pysera_default"))
            gui_state.set_all(node, gui_state.CATEGORY_FIELDS, True)
            gui_state.set_all(node, gui_state.DIMENSION_FIELDS, True)
        widget.ui.applyButton.click()
        for _index in range(300):  # the QTimer's first poll starts the worker
            slicer.app.processEvents()
            if widget._running is not None and widget._running.job is not None:
                break
            qt.QThread.msleep(20)
        self.assertIsNotNone(widget._running, widget.ui.errorsTextEdit.plainText)
        process = widget._running.job.process
        self.assertIsNone(process.poll())  # the worker is running
        widget.ui.cancelButton.click()
        self.assertIsNone(widget._running)
        self.assertIsNotNone(process.poll(), "the worker process is still running after Cancel")
        self.assertIn("Cancelled", widget.ui.statusLabel.text)
        self.assertTrue(widget.ui.applyButton.enabled)
        self.delayDisplay("Cancel passed")

    def test_missing_deep_weights_stop_before_any_case(self):
        self.delayDisplay("Deep weights check")
        from PySERASlicerLib.engine.deep import DeepDependencyError, WeightsUnavailableError

        volume, segmentation, _voxels, _masks = self._synthetic_case("CT")
        widget = self._widget()
        node = widget._parameterNode
        node.extractionMode = "deep_feature"
        self.assertTrue(widget.ui.deepWeightsPathLineEdit.enabled)
        import tempfile

        missing = pathlib.Path(tempfile.mkdtemp()) / "resnet50-missing.pth"
        node.deepWeights = missing
        settings = gui_state.settings_from_node(node)
        self.assertEqual(settings.deep.weights_path, str(missing))
        # a fresh Slicer has no torch: then that is what the check names first
        torchMissing = bool(dependencies.missing([dependencies.TORCH, dependencies.TORCHVISION]))
        with self.assertRaises(DeepDependencyError if torchMissing else WeightsUnavailableError) as raised:
            widget.logic.start([volume, volume], segmentation, settings)
        self.assertIn("PyTorch" if torchMissing else str(missing), str(raised.exception))
        node.extractionMode = "handcrafted_feature"
        node.deepWeights = pathlib.Path()
        self.delayDisplay("Deep weights check passed")

    def test_extract_from_console(self):
        self.delayDisplay("Console extraction")
        volume, segmentation, voxels, masks = self._synthetic_case()
        logic = PySERASlicerLogic()
        # the non-blocking path needs no extra package
        table, result = logic.start(volume, segmentation, categories="stat", dimensions="1st").finish_table(120)
        self.assertEqual(table.GetNumberOfRows(), 2)
        self.assertAlmostEqual(result.rows[0]["stat_mean"], float(voxels[masks["tumor"] > 0].mean()), places=6)
        if not self._pandasAvailable(_("console extraction returning a DataFrame")):
            return
        frame, table = logic.extract(volume, segmentation, categories="stat", dimensions="1st")
        self.assertEqual(table.GetNumberOfRows(), 2)
        self.assertAlmostEqual(float(frame["stat_mean"][0]), float(voxels[masks["tumor"] > 0].mean()), places=6)
        self.delayDisplay("Console extraction passed")
