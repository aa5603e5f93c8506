"""Slicer bridge on real MRML nodes from the slicer-core wheel."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("slicer")

from mrml_scene import SlicerCoreScene  # noqa: E402
from PySERASlicerLib.engine.registry import specs_by_tag  # noqa: E402
from PySERASlicerLib.image import Image  # noqa: E402
from PySERASlicerLib.settings import Settings  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    return SlicerCoreScene()


def rotated_anisotropic_ijk_to_ras(spacing=(0.8, 0.9, 2.5), origin=(-10.0, 20.0, 30.0), degrees=30.0):
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


@pytest.fixture(scope="module")
def case(scene):
    rng = np.random.default_rng(0)
    shape = (12, 20, 16)
    voxels = rng.normal(100, 20, size=shape).astype(np.int16)
    ijk_to_ras = rotated_anisotropic_ijk_to_ras()
    volume = scene.add_volume(voxels, ijk_to_ras)
    tumor = np.zeros(shape, bool)
    tumor[3:8, 5:12, 4:10] = True
    edema = np.zeros(shape, bool)
    edema[6:11, 10:18, 8:14] = True  # overlaps the tumor
    segmentation = scene.add_segmentation(volume, {"tumor": tumor, "edema": edema})
    return volume, segmentation, voxels, {"tumor": tumor, "edema": edema}, ijk_to_ras


def test_volume_becomes_lps_image(case):
    from PySERASlicerLib.slicer_bridge import image_from_volume

    volume, _, voxels, _, ijk_to_ras = case
    image = image_from_volume(volume)
    assert np.array_equal(image.array, voxels)
    assert np.allclose(image.spacing, (0.8, 0.9, 2.5))
    # LPS: the first two world axes flip
    assert np.allclose(image.origin, (10.0, -20.0, 30.0))
    assert np.allclose(image.ijk_to_ras(), ijk_to_ras)
    image.array[0, 0, 0] += 1  # a copy: Slicer's voxels are untouched
    assert image.array[0, 0, 0] != voxels[0, 0, 0]


def test_overlapping_segments_become_separate_masks_on_the_volume_grid(case):
    from PySERASlicerLib.slicer_bridge import masks_from_segmentation

    volume, segmentation, voxels, masks, _ = case
    assert segmentation.GetSegmentation().GetNumberOfLayers() == 2
    data = masks_from_segmentation(segmentation, volume)
    assert list(data.named) == ["tumor", "edema"]
    for name, mask in masks.items():
        assert data.named[name].shape == voxels.shape
        assert int(data.named[name].sum()) == int(mask.sum())
        assert np.array_equal(data.named[name], mask)


def test_segment_subset_and_unknown_segment(case):
    from PySERASlicerLib.slicer_bridge import masks_from_segmentation

    volume, segmentation, *_ = case
    edema_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName("edema")
    data = masks_from_segmentation(segmentation, volume, [edema_id])
    assert list(data.named) == ["edema"]
    with pytest.raises(ValueError, match="unknown segment"):
        masks_from_segmentation(segmentation, volume, ["nope"])


def test_stat_mean_per_segment_equals_numpy(case):
    from PySERASlicerLib.batch import Case, extract_case
    from PySERASlicerLib.slicer_bridge import image_from_volume, masks_from_segmentation

    volume, segmentation, voxels, masks, _ = case
    result = extract_case(Case("ct", image_from_volume(volume), masks_from_segmentation(segmentation, volume)),
                          Settings(categories="stat", dimensions="1st"))
    assert not result.error
    means = {row["ROI"]: row["stat_mean"] for row in result.rows}
    for name, mask in masks.items():
        assert means[name] == pytest.approx(voxels[mask].astype(float).mean(), rel=1e-12)


def test_labelmap_on_other_grid_is_resampled(scene, case):
    from PySERASlicerLib.slicer_bridge import masks_from_node

    volume, _, voxels, masks, ijk_to_ras = case
    same = scene.add_volume(masks["tumor"].astype(np.int16) * 2, ijk_to_ras, "labels",
                            "vtkMRMLLabelMapVolumeNode")
    data = masks_from_node(same, volume)
    assert np.array_equal(data.labels == 2, masks["tumor"])
    # the same labels on a grid shifted by whole voxels and cropped: placed back by world position
    crop = (slice(2, 10), slice(4, 14), slice(3, 12))
    shifted = ijk_to_ras.copy()
    shifted[:3, 3] = ijk_to_ras[:3, :3] @ np.array([3, 4, 2]) + ijk_to_ras[:3, 3]
    cropped = scene.add_volume(masks["tumor"][crop].astype(np.int16), shifted, "cropped",
                               "vtkMRMLLabelMapVolumeNode")
    data = masks_from_node(cropped, volume)
    assert np.array_equal(data.labels == 1, masks["tumor"])


def test_table_node_has_string_and_numeric_columns(scene):
    from PySERASlicerLib.slicer_bridge import rows_from_table, table_from_rows

    rows = [{"PatientID": "p1", "ROI": "tumor", "stat_mean": 1.5, "stat_var": float("nan")},
            {"PatientID": "p1", "ROI": "edema", "stat_mean": 2.5, "stat_var": 0.25}]
    table = table_from_rows(rows, name="features")
    assert table.IsA("vtkMRMLTableNode")
    assert table.GetNumberOfRows() == 2 and table.GetNumberOfColumns() == 4
    assert table.GetTable().GetColumnByName("ROI").IsA("vtkStringArray")
    assert table.GetTable().GetColumnByName("stat_mean").IsA("vtkDoubleArray")
    assert table.GetCellText(1, 1) == "edema"
    assert "Q4LE" in table.GetColumnDescription("stat_mean")
    back = rows_from_table(table)
    assert back[1]["stat_mean"] == 2.5 and math.isnan(back[0]["stat_var"])
    assert specs_by_tag()["stat_mean"].name == "Mean intensity"


def test_table_in_pysera_names_keeps_ibsi_descriptions(scene):
    """column_names="pysera": PySERA's column names in the table, each still described with its
    IBSI name and code."""
    from PySERASlicerLib.slicer_bridge import table_from_rows

    rows = [{"PatientID": "p1", "ROI": "tumor", "cm_joint_max_3D_comb": 0.5, "morph_volume": 10.0}]
    table = table_from_rows(rows, name="pysera names", column_names="pysera")
    names = [table.GetTable().GetColumn(c).GetName() for c in range(table.GetNumberOfColumns())]
    assert names == ["PatientID", "ROI", "glcm_joint_max_3D_comb", "morph_volume_mesh"]
    assert table.GetColumnDescription("glcm_joint_max_3D_comb") == "Joint maximum [GYBY] (3D, merged)"
    assert "RNU0" in table.GetColumnDescription("morph_volume_mesh")
    ibsi = table_from_rows(rows, name="ibsi names")
    assert ibsi.GetColumnDescription("cm_joint_max_3D_comb") == "Joint maximum [GYBY] (3D, merged)"


def test_image_geometry_round_trip_through_ras():
    image = Image(np.zeros((2, 3, 4)), (0.5, 0.7, 2.0), (1, 2, 3), np.eye(3))
    again = Image.from_ras_matrix(image.array, image.ijk_to_ras())
    assert again.same_geometry(image)


def test_segmentation_on_another_geometry_is_resampled_onto_the_volume_grid(scene, case):
    """Segments stored on a finer grid (half the spacing) or on a shifted, cropped grid come
    back exactly on the volume's grid, and features use the resampled masks."""
    from PySERASlicerLib.batch import Case, extract_case
    from PySERASlicerLib.slicer_bridge import image_from_volume, masks_from_segmentation

    volume, _, voxels, masks, ijk_to_ras = case
    box = masks["tumor"]
    fine = ijk_to_ras.copy()
    fine[:3, :3] = ijk_to_ras[:3, :3] / 2  # fine voxel centres at +-1/4 coarse voxel
    fine[:3, 3] = ijk_to_ras[:3, 3] + ijk_to_ras[:3, :3] @ np.array([-0.25, -0.25, -0.25])
    fine_box = box.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    fine_reference = scene.add_volume(np.zeros(fine_box.shape, np.int16), fine, "fine grid")
    shifted = ijk_to_ras.copy()
    shifted[:3, 3] = ijk_to_ras[:3, 3] + ijk_to_ras[:3, :3] @ np.array([3, 4, 2])
    crop = (slice(2, 10), slice(4, 14), slice(3, 12))
    crop_reference = scene.add_volume(np.zeros(box[crop].shape, np.int16), shifted, "crop grid")
    segmentation = scene.add_segmentation(fine_reference, {"fine tumor": fine_box}, name="fine seg")
    other = scene.add_segmentation(crop_reference, {"cropped tumor": box[crop]}, name="crop seg")
    for node, name in ((segmentation, "fine tumor"), (other, "cropped tumor")):
        internal = slicer_array_shape(node)
        assert internal != voxels.shape  # really stored on another grid
        data = masks_from_segmentation(node, volume)
        assert data.named[name].shape == voxels.shape
        assert np.array_equal(data.named[name], box), name
        result = extract_case(Case("ct", image_from_volume(volume), data), Settings(categories="stat",
                                                                                       dimensions="1st"))
        assert result.rows[0]["stat_mean"] == pytest.approx(voxels[box].astype(float).mean(), rel=1e-12)


def slicer_array_shape(segmentation_node):
    import slicer.util

    segment_id = segmentation_node.GetSegmentation().GetNthSegmentID(0)
    return slicer.util.arrayFromSegmentInternalBinaryLabelmap(segmentation_node, segment_id).shape


def feature_table(scene, rows):
    from PySERASlicerLib.slicer_bridge import table_from_rows

    return table_from_rows(rows, name="plot source")


def test_numeric_columns_and_bar_chart_of_chosen_features(scene):
    import slicer
    from PySERASlicerLib.slicer_bridge import numeric_feature_columns, plot_features, rows_from_table, show_plot

    rows = [{"PatientID": "CT", "ROI": "tumor", "stat_mean": 1.5, "stat_var": 4.0, "morph_volume": 10.0},
            {"PatientID": "CT", "ROI": "node", "stat_mean": 2.5, "stat_var": 1.0, "morph_volume": 20.0}]
    table = feature_table(scene, rows)
    assert numeric_feature_columns(table) == ["stat_mean", "stat_var", "morph_volume"]
    chart = plot_features(table, ["stat_mean", "morph_volume"])
    assert chart.IsA("vtkMRMLPlotChartNode")
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    series = [chart.GetNthPlotSeriesNode(i) for i in range(2)]
    assert [s.GetYColumnName() for s in series] == ["stat_mean", "morph_volume"]
    for s in series:
        assert s.GetPlotType() == slicer.vtkMRMLPlotSeriesNode.PlotTypeBar
        assert s.GetLabelColumnName() == "Label"
    data = series[0].GetTableNode()
    plotted = rows_from_table(data)
    assert [r["Label"] for r in plotted] == ["tumor", "node"]  # one case: ROI names as labels
    assert [r["morph_volume"] for r in plotted] == [10.0, 20.0]
    assert show_plot(chart) is False  # no layout without the application
    # re-plotting into the same chart replaces its series and plot-data table
    n_series = scene.scene.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode")
    same = plot_features(table, ["stat_var"], chart)
    assert same is chart and chart.GetNumberOfPlotSeriesNodes() == 1
    assert scene.scene.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode") == n_series - 1
    assert scene.scene.GetNodeByID(data.GetID()) is None
    assert chart.GetNthPlotSeriesNode(0).GetYColumnName() == "stat_var"


def test_plot_labels_name_the_case_when_several_cases_and_bad_features_raise(scene):
    from PySERASlicerLib.slicer_bridge import plot_features, rows_from_table

    rows = [{"PatientID": "CT", "ROI": "tumor", "stat_mean": 1.0},
            {"PatientID": "PET", "ROI": "tumor", "stat_mean": 3.0}]
    table = feature_table(scene, rows)
    chart = plot_features(table, ["stat_mean"])
    labels = [r["Label"] for r in rows_from_table(chart.GetNthPlotSeriesNode(0).GetTableNode())]
    assert labels == ["CT / tumor", "PET / tumor"]
    with pytest.raises(ValueError, match="no numeric column"):
        plot_features(table, ["ROI"])
    with pytest.raises(ValueError, match="at least one"):
        plot_features(table, [])
