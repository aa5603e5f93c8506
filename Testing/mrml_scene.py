"""A Qt-free Slicer scene for tests, on the PyPI ``slicer-core`` wheel.

Creates a scene and the module logics that ``slicer.util`` looks up at call time
(volumes, segmentations, tables, colors, subject hierarchy) and publishes them as
``slicer.mrmlScene`` / ``slicer.modules.<name>.logic()``, as the Slicer application does.
``slicer.app`` is None: code that needs the GUI must guard for it.
(Not named slicer_core.py: that name would shadow the wheel's own ``slicer_core`` package.)
"""

from __future__ import annotations

import types

import numpy as np


class _Module:
    def __init__(self, logic):
        self._logic = logic

    def logic(self):
        return self._logic


class SlicerCoreScene:
    def __init__(self):
        import slicer
        import slicer.util
        from vtkmodules.vtkCommonCore import vtkCollection, vtkOutputWindow

        output = vtkOutputWindow()
        output.SetDisplayModeToAlwaysStdErr()
        vtkOutputWindow.SetInstance(output)

        self.slicer = slicer
        self.scene = slicer.vtkMRMLScene()
        crosshair = slicer.vtkMRMLCrosshairNode()
        crosshair.SetCrosshairName("default")
        self.scene.AddNode(crosshair)
        app_logic = slicer.vtkSlicerApplicationLogic()
        app_logic.SetMRMLScene(self.scene)
        app_logic.GetColorLogic().SetMRMLScene(self.scene)
        app_logic.GetColorLogic().AddDefaultColorNodes()
        app_logic.SetSliceLogics(vtkCollection())
        app_logic.SetViewLogics(vtkCollection())
        self.app_logic = app_logic
        logics = {"colors": app_logic.GetColorLogic()}
        for key, cls, app_name in (
            ("volumes", slicer.vtkSlicerVolumesLogic, "Volumes"),
            ("segmentations", slicer.vtkSlicerSegmentationsModuleLogic, "Segmentations"),
            ("subjecthierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic, "SubjectHierarchy"),
            ("tables", slicer.vtkSlicerTablesLogic, "Tables"),
        ):
            logic = cls()
            logic.SetMRMLScene(self.scene)
            logic.SetMRMLApplicationLogic(app_logic)
            app_logic.SetModuleLogic(app_name, logic)
            logics[key] = logic
        self.logics = logics
        slicer.mrmlScene = self.scene
        slicer.modules = types.SimpleNamespace(**{k: _Module(v) for k, v in logics.items()})
        slicer.app = None
        slicer.util = slicer.util

    def add_volume(self, array: np.ndarray, ijk_to_ras: np.ndarray, name: str = "CT",
                   class_name: str = "vtkMRMLScalarVolumeNode"):
        return self.slicer.util.addVolumeFromArray(array, ijk_to_ras, name=name, nodeClassName=class_name)

    def add_segmentation(self, reference_volume, masks: dict, name: str = "Segmentation", reference=None):
        """Segments from bool arrays on ``reference`` (default: the reference volume) grid."""
        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
        for segment_name, mask in masks.items():
            segment_id = node.GetSegmentation().AddEmptySegment("", segment_name)
            self.slicer.util.updateSegmentBinaryLabelmapFromArray(
                np.asarray(mask, dtype=np.uint8), node, segment_id, reference or reference_volume)
        return node


class ParameterView:
    """Attribute access to a real ``vtkMRMLScriptedModuleNode``, stored the way Slicer's
    ``parameterNodeWrapper`` stores it (``serializers.py``, 5.6-5.10): a node field as a node
    reference (plus an empty parameter of the same name), any other field as a string parameter.
    The wrapper itself needs Slicer's Qt; this gives the Qt-free slot decisions of
    ``gui_state`` a real parameter node to write into and real ``ModifiedEvent``s to fire.
    """

    def __init__(self, parameter_node, node_fields=("inputMask",)):
        object.__setattr__(self, "parameterNode", parameter_node)
        object.__setattr__(self, "_node_fields", tuple(node_fields))

    def __getattr__(self, name):
        if name in self._node_fields:
            return self.parameterNode.GetNodeReference(name)
        return self.parameterNode.GetParameter(name)

    def __setattr__(self, name, value):
        if name in self._node_fields:
            self.parameterNode.SetParameter(name, "")
            self.parameterNode.SetNodeReferenceID(name, value.GetID() if value is not None else None)
        else:
            self.parameterNode.SetParameter(name, str(value))

    def StartModify(self):  # noqa: N802 - the wrapper's (VTK's) names
        return self.parameterNode.StartModify()

    def EndModify(self, was_modifying):  # noqa: N802
        return self.parameterNode.EndModify(was_modifying)


def module_parameter_node(scene, module_name: str = "PySERASlicer"):
    """The module's parameter node as ``ScriptedLoadableModuleLogic.getParameterNode`` makes it:
    the scene's singleton ``vtkMRMLScriptedModuleNode`` tagged with the module name."""
    import slicer

    node = scene.GetSingletonNode(module_name, "vtkMRMLScriptedModuleNode")
    if node is None:
        node = slicer.vtkMRMLScriptedModuleNode()
        node.SetSingletonTag(module_name)
        node.SetAttribute("ModuleName", module_name)
        node = scene.AddNode(node)
    return node


def observer_count(vtk_object) -> int:
    """How many observers (any event) a VTK object has: VTK numbers observer tags 1, 2, ... per
    object and ``GetCommand(tag)`` answers None for a removed one."""
    probe = vtk_object.AddObserver("ModifiedEvent", lambda caller, event: None)
    try:
        return sum(vtk_object.GetCommand(tag) is not None for tag in range(1, probe))
    finally:
        vtk_object.RemoveObserver(probe)
