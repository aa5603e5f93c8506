"""The only module that imports ``slicer``: MRML nodes -> Image/MaskData, results -> table node.

* Volumes become :class:`Image` (Slicer's RAS converted to LPS; the array is copied, so the
  worker never touches Slicer memory).
* Segmentations become one bool mask per segment **on the volume's grid**: Slicer resamples
  segments stored on another geometry (``arrayFromSegmentBinaryLabelmap`` with the volume as
  reference). Overlapping segments stay separate ROIs.
* Labelmap volumes become a label map on the volume's grid (nearest-neighbour resampling
  when the grids differ).
* Feature rows become a ``vtkMRMLTableNode``: PatientID/ROI as string columns, features as
  double columns (descriptions from the feature registry).
* Chosen features across ROIs become a bar chart: a small plot-data table (a ``Label``
  column "case / ROI" plus the features), one ``vtkMRMLPlotSeriesNode`` per feature and a
  ``vtkMRMLPlotChartNode`` shown in the layout's plot view when there is a layout.

Works in the Slicer application and with the Qt-free ``slicer-core`` wheel (tests).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import slicer
import slicer.util

from .image import Image
from .io.geometry import resample_labels_to
from .io.readers import MaskData

STRING_COLUMNS = ("PatientID", "ROI")


def _ijk_to_ras(node) -> np.ndarray:
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    matrix = vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _check_untransformed(node) -> None:
    if node.GetParentTransformNode() is not None:
        raise ValueError(
            f"{node.GetName()}: node is under a transform; harden the transform (Data module) before extraction"
        )


def image_from_volume(volume_node, modality: str = "OTHER") -> Image:
    """A scalar volume node as an :class:`Image` (LPS geometry, array copied)."""
    if volume_node is None or not volume_node.IsA("vtkMRMLScalarVolumeNode"):
        raise ValueError("a scalar volume node is required")
    if volume_node.GetImageData() is None:
        raise ValueError(f"{volume_node.GetName()}: volume has no image data")
    _check_untransformed(volume_node)
    array = np.array(slicer.util.arrayFromVolume(volume_node), copy=True)
    if array.ndim != 3:
        raise ValueError(f"{volume_node.GetName()}: only single-component 3D volumes are supported")
    dicom_modality = volume_node.GetAttribute("DICOM.Modality") if hasattr(volume_node, "GetAttribute") else None
    return Image.from_ras_matrix(array, _ijk_to_ras(volume_node), modality=dicom_modality or modality,
                                 source=volume_node.GetName(), pet_suv=pet_suv_conversion(volume_node))


def pet_suv_conversion(volume_node, file_for_instance: Optional[Callable[[str], str]] = None):
    """The SUV conversion (:class:`~PySERASlicerLib.io.suv.SuvConversion`) of a PET volume loaded
    through Slicer's DICOM module, from the tags of its DICOM files; None for other volumes.

    The DICOM module keeps the volume's instance UIDs in the node attribute
    ``DICOM.instanceUIDs`` (space separated); ``file_for_instance`` maps a UID to its file
    (default ``slicer.dicomDatabase.fileForInstance``, absent outside the Slicer application).
    """
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    if not uids:
        return None
    if file_for_instance is None:
        database = getattr(slicer, "dicomDatabase", None)
        if database is None:
            return None
        file_for_instance = database.fileForInstance
    import pydicom

    from .io.suv import conversion_from_headers

    paths = [path for path in (file_for_instance(uid) for uid in uids) if path]
    if not paths:
        return None
    first = pydicom.dcmread(paths[0], stop_before_pixels=True)
    if str(first.get("Modality", "")).upper() != "PT":  # a CT/MR series: no need to read the others
        return None
    return conversion_from_headers([first] + [pydicom.dcmread(p, stop_before_pixels=True) for p in paths[1:]])


def volume_from_image(image: Image, name: str, volume_node=None):
    """A new (or the given) scalar volume node holding ``image`` (float64 as float32) with its
    geometry; the inverse of :func:`image_from_volume`."""
    array = image.array.astype(np.float32) if image.array.dtype == np.float64 else image.array
    if volume_node is None:
        return slicer.util.addVolumeFromArray(np.ascontiguousarray(array), image.ijk_to_ras(), name=name)
    slicer.util.updateVolumeFromArray(volume_node, np.ascontiguousarray(array))
    volume_node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(image.ijk_to_ras()))
    return volume_node


def segment_names(segmentation_node, segment_ids: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """``{segment_id: unique ROI name}`` for the chosen segments (all by default)."""
    segmentation = segmentation_node.GetSegmentation()
    all_ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    ids = list(all_ids if not segment_ids else segment_ids)
    unknown = [sid for sid in ids if sid not in all_ids]
    if unknown:
        raise ValueError(f"{segmentation_node.GetName()}: unknown segment id(s) {unknown}")
    names: Dict[str, str] = {}
    used = set()
    for sid in ids:
        base = segmentation.GetSegment(sid).GetName() or sid
        name, counter = base, 2
        while name in used:
            name, counter = f"{base} ({counter})", counter + 1
        used.add(name)
        names[sid] = name
    return names


def masks_from_segmentation(segmentation_node, volume_node,
                            segment_ids: Optional[Sequence[str]] = None) -> MaskData:
    """One bool mask per chosen segment, on the volume's grid (Slicer resamples as needed)."""
    _check_untransformed(segmentation_node)
    named = {}
    for sid, name in segment_names(segmentation_node, segment_ids).items():
        array = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, sid, volume_node)
        if array is None:
            array = np.zeros(slicer.util.arrayFromVolume(volume_node).shape, dtype=bool)
        named[name] = np.asarray(array) > 0
    return MaskData(named=named)


def masks_from_labelmap(labelmap_node, volume_node) -> MaskData:
    """A labelmap volume as a label map on the volume's grid."""
    _check_untransformed(labelmap_node)
    labels = Image.from_ras_matrix(np.array(slicer.util.arrayFromVolume(labelmap_node), copy=True),
                                   _ijk_to_ras(labelmap_node), source=labelmap_node.GetName())
    reference = image_from_volume(volume_node)
    if labels.same_geometry(reference, tolerance=1e-3):
        return MaskData(labels=labels.array.astype(np.int64))
    return MaskData(labels=resample_labels_to(labels.with_array(labels.array.astype(np.int64)), reference))


def masks_from_node(mask_node, volume_node, segment_ids: Optional[Sequence[str]] = None) -> MaskData:
    """Dispatch on the mask node type (segmentation or labelmap volume)."""
    if mask_node is None:
        raise ValueError("a segmentation or labelmap node is required")
    if mask_node.IsA("vtkMRMLSegmentationNode"):
        return masks_from_segmentation(mask_node, volume_node, segment_ids)
    if mask_node.IsA("vtkMRMLLabelMapVolumeNode"):
        return masks_from_labelmap(mask_node, volume_node)
    raise ValueError(f"{mask_node.GetName()}: expected a segmentation or labelmap node, got {mask_node.GetClassName()}")


def table_from_rows(rows: List[Dict[str, Any]], table_node=None, name: str = "PySERA features",
                    column_names: str = "ibsi"):
    """Fill (or create) a vtkMRMLTableNode: one row per ROI, string id columns, double features.
    Feature columns are named in the ``column_names`` style (IBSI tags or PySERA's names); each
    is described with its IBSI name, code and aggregation in both styles."""
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonCore import vtkStringArray

    from .engine.registry import rename_columns, spec_for_column, split_filtered_column

    if table_node is None:
        table_node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", name)
    keys: List[str] = []
    for row in rows:
        keys.extend(c for c in row if c not in keys)
    names = dict(zip(keys, rename_columns(keys, column_names)))
    rows = [{names[key]: value for key, value in row.items()} for row in rows]
    columns = [names[key] for key in keys]
    was_modifying = table_node.StartModify()
    table_node.RemoveAllColumns()
    table = table_node.GetTable()
    for column in columns:
        values = [row.get(column) for row in rows]
        if column in STRING_COLUMNS or any(isinstance(v, str) for v in values):
            array = vtkStringArray()
            for value in values:
                array.InsertNextValue("" if value is None else str(value))
        else:
            numbers = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            array = numpy_support.numpy_to_vtk(numbers, deep=True)
        array.SetName(column)
        table.AddColumn(array)
        spec, response = spec_for_column(column), ""
        if spec is None and split_filtered_column(column):
            spec, label = split_filtered_column(column)
            response = f" of the {label} response map"
        if spec is not None:
            table_node.SetColumnDescription(column, f"{spec.name}{response} [{spec.code}] ({spec.aggregation_name})")
    table_node.Modified()
    table_node.EndModify(was_modifying)
    return table_node


def rows_from_table(table_node) -> List[Dict[str, Any]]:
    """Inverse of :func:`table_from_rows` (strings for id columns, floats otherwise)."""
    table = table_node.GetTable()
    rows = []
    for r in range(table.GetNumberOfRows()):
        row = {}
        for c in range(table.GetNumberOfColumns()):
            column = table.GetColumn(c)
            name = column.GetName()
            value = table.GetValue(r, c)
            row[name] = value.ToString() if column.IsA("vtkStringArray") else value.ToDouble()
        rows.append(row)
    return rows


def numeric_feature_columns(table_node) -> List[str]:
    """Names of the numeric (feature) columns of a results table, in table order."""
    table = table_node.GetTable()
    names = []
    for c in range(table.GetNumberOfColumns()):
        column = table.GetColumn(c)
        if column.GetName() not in STRING_COLUMNS and not column.IsA("vtkStringArray"):
            names.append(column.GetName())
    return names


#: Series colours (Slicer's plot colours are set per series).
PLOT_COLORS = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16),
               (0.58, 0.4, 0.74), (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.5, 0.5, 0.5))


def plot_features(table_node, features: Sequence[str], chart_node=None, name: Optional[str] = None):
    """Bar chart of ``features`` across the ROIs (rows) of a results table.

    Returns the ``vtkMRMLPlotChartNode``; re-using ``chart_node`` replaces its series (the
    old series and plot-data table of that chart are removed from the scene). Raises
    ``ValueError`` naming unknown or non-numeric features.
    """
    available = numeric_feature_columns(table_node)
    features = list(dict.fromkeys(features))
    if not features:
        raise ValueError("choose at least one feature to plot")
    unknown = [f for f in features if f not in available]
    if unknown:
        raise ValueError(f"{table_node.GetName()}: no numeric column(s) {unknown}")
    rows = rows_from_table(table_node)
    several_cases = len({row.get("PatientID", "") for row in rows}) > 1
    plot_rows = []
    for row in rows:
        label = f"{row.get('PatientID', '')} / {row.get('ROI', '')}" if several_cases else str(row.get("ROI", ""))
        plot_rows.append({"Label": label, **{f: row[f] for f in features}})
    name = name or f"{table_node.GetName()} plot"
    scene = slicer.mrmlScene
    if chart_node is None:
        chart_node = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    else:
        _remove_chart_series(chart_node)
    data = table_from_rows_plain(plot_rows, scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} data"),
                                 string_columns=("Label",))
    data.SetAttribute("PySERA.PlotData", "1")
    for index, feature in enumerate(features):
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", feature)
        series.SetAndObserveTableNodeID(data.GetID())
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeBar)
        series.SetLabelColumnName("Label")
        series.SetYColumnName(feature)
        series.SetColor(*PLOT_COLORS[index % len(PLOT_COLORS)])
        chart_node.AddAndObservePlotSeriesNodeID(series.GetID())
    chart_node.SetTitle(", ".join(features) if len(features) <= 3 else f"{len(features)} features")
    chart_node.SetXAxisTitle("ROI")
    chart_node.SetYAxisTitle("Feature value")
    chart_node.SetAttribute("PySERA.Table", table_node.GetID())
    return chart_node


def _remove_chart_series(chart_node) -> None:
    scene = slicer.mrmlScene
    tables = set()
    for index in reversed(range(chart_node.GetNumberOfPlotSeriesNodes())):
        series = chart_node.GetNthPlotSeriesNode(index)
        chart_node.RemoveNthPlotSeriesNodeID(index)
        if series is None:
            continue
        table = series.GetTableNode()
        if table is not None and table.GetAttribute("PySERA.PlotData"):
            tables.add(table)
        scene.RemoveNode(series)
    for table in tables:
        scene.RemoveNode(table)


def table_from_rows_plain(rows: List[Dict[str, Any]], table_node, string_columns: Sequence[str] = ()):
    """Like :func:`table_from_rows` for arbitrary columns (no feature descriptions)."""
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonCore import vtkStringArray

    columns: List[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    was_modifying = table_node.StartModify()
    table_node.RemoveAllColumns()
    for column in columns:
        values = [row.get(column) for row in rows]
        if column in string_columns:
            array = vtkStringArray()
            for value in values:
                array.InsertNextValue("" if value is None else str(value))
        else:
            array = numpy_support.numpy_to_vtk(
                np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64), deep=True)
        array.SetName(column)
        table_node.GetTable().AddColumn(array)
    table_node.Modified()
    table_node.EndModify(was_modifying)
    return table_node


def show_plot(chart_node) -> bool:
    """Show a chart in the layout's plot view; False when there is no layout (headless)."""
    app = getattr(slicer, "app", None)
    layout_manager = app.layoutManager() if app is not None and hasattr(app, "layoutManager") else None
    if layout_manager is None:
        return False
    slicer.modules.plots.logic().ShowChartInLayout(chart_node)
    return True


def show_volume(volume_node) -> bool:
    """Show a volume as the slice views' background; False when there is no layout (headless)."""
    app = getattr(slicer, "app", None)
    if app is None or not hasattr(app, "layoutManager") or app.layoutManager() is None:
        return False
    slicer.util.setSliceViewerLayers(background=volume_node, fit=True)
    return True


def show_table(table_node) -> bool:
    """Show the table in the layout's table view; False when there is no layout (headless)."""
    app = getattr(slicer, "app", None)
    layout_manager = app.layoutManager() if app is not None and hasattr(app, "layoutManager") else None
    if layout_manager is None:
        return False
    layout_manager.setLayout(slicer.modules.tables.logic().GetLayoutWithTable(layout_manager.layout))
    selection = app.applicationLogic().GetSelectionNode()
    selection.SetActiveTableID(table_node.GetID())
    app.applicationLogic().PropagateTableSelection()
    return True
