"""IBSI-2 filters in the Slicer module's Qt-free logic: the filter list of the Parameters section
(gui_state) and "Show response map" (slicer_logic) on real MRML nodes from the slicer-core wheel."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PySERASlicerLib import Settings, SettingsError, apply_filter, gui_state

pytest.importorskip("slicer")

from mrml_scene import SlicerCoreScene  # noqa: E402
from PySERASlicerLib import slicer_bridge, slicer_logic  # noqa: E402
from test_slicer_bridge import rotated_anisotropic_ijk_to_ras  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    return SlicerCoreScene()


def test_show_response_maps_adds_one_volume_node_per_filter_on_the_volume_grid(scene):
    rng = np.random.default_rng(3)
    voxels = rng.normal(0, 100, size=(10, 18, 16)).astype(np.int16)
    volume = scene.add_volume(voxels, rotated_anisotropic_ijk_to_ras(), name="CT")
    settings = Settings(filters=({"filter": "log", "sigma_mm": 1.5},
                                 {"filter": "wavelet", "wavelet": "coif1", "set": "LLH", "dimensions": "3D"}))
    before = scene.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    nodes = slicer_logic.show_response_maps(volume, settings)
    assert scene.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == before + 2
    assert [n.GetName() for n in nodes] == ["CT log_s1.5", "CT wavelet_coif1_llh_l1"]
    image = slicer_bridge.image_from_volume(volume)
    for node, spec in zip(nodes, settings.filters):
        shown = slicer_bridge.image_from_volume(node)
        assert shown.same_geometry(image)
        expected = apply_filter(image, spec).array
        assert np.allclose(shown.array, expected, rtol=1e-6, atol=1e-4 * np.abs(expected).max())
    with pytest.raises(ValueError, match="no filter"):
        slicer_logic.show_response_maps(volume, Settings())


def test_filter_text_round_trips_through_the_parameter_node():
    node = SimpleNamespace(**gui_state.defaults())
    assert node.filtersText == ""
    text = gui_state.add_filter_text(node.filtersText, "LoG, sigma 2 mm")
    text = gui_state.add_filter_text(text, "Gabor, sigma 5 mm, lambda 2 mm, 2D, rotation invariant")
    assert gui_state.add_filter_text(text, "LoG, sigma 2 mm") == text  # no second copy
    node.filtersText = text
    settings = gui_state.settings_from_node(node)
    assert [f.label for f in settings.filters] == ["log_s2", "gabor_s5_l2_g1.5_dt22.5_2D"]
    again = SimpleNamespace(**gui_state.defaults())
    gui_state.apply_settings(again, settings)
    assert again.filtersText == text and gui_state.settings_from_node(again) == settings
    assert json.loads(text)[0] == {"filter": "log", "sigma_mm": 2.0}
    assert gui_state.effective_preset(gui_state.read_values(node)) == gui_state.CUSTOM_PRESET


@pytest.mark.parametrize("text, message", [
    ('[{"filter": "log", "sigma_mm": -2}]', "Filters: filters[0].sigma_mm"),
    ('[{"filter": "log", "sigma_mm": 2}, {"filter": "wavelet", "set": "LLH"}]', "Filters: filters[1]"),
    ('[{"filter": "log"', "Filters: not valid JSON"),
])
def test_bad_filter_text_blocks_the_run_with_a_message(text, message):
    values = gui_state.defaults()
    values[gui_state.FILTERS_TEXT] = text
    problems = gui_state.settings_problems(values)
    assert len(problems) == 1 and problems[0].startswith(message)
    with pytest.raises(SettingsError, match="Filters:"):
        gui_state.values_to_settings(values)


def test_every_filter_example_is_valid():
    text = ""
    for name in gui_state.FILTER_EXAMPLES:
        text = gui_state.add_filter_text(text, name)
    assert len(gui_state.parse_filters_text(text)) == len(gui_state.FILTER_EXAMPLES)


def test_the_ui_has_the_filter_widgets_wired_by_hand():
    from test_module_ui import ui_parameter_names, ui_widget_classes

    classes = ui_widget_classes()
    assert classes["filtersTextEdit"] == "QPlainTextEdit"
    assert classes["addFilterComboBox"] == "QComboBox"
    assert classes["showResponseMapButton"] == "QPushButton"
    bound = set(ui_parameter_names().values())
    assert not {"filtersTextEdit", "addFilterComboBox", "showResponseMapButton"} & bound


def test_a_gui_run_with_filters_adds_the_filter_columns_to_the_table(scene):
    """The background job (worker process) receives the filters with the settings."""
    from test_slicer_logic import make_case

    volume, segmentation, voxels, a, b = make_case(scene, "CT filtered")
    settings = Settings(categories=("stat",), dimensions=("1st",), filters=({"filter": "mean", "support": 3},))
    frame, table = slicer_logic.ExtractionLogic().extract(volume, segmentation, settings)
    column = table.GetTable().GetColumnByName("stat_mean_mean_m3")
    assert column is not None and table.GetNumberOfRows() == 2
    description = table.GetColumnDescription("stat_mean_mean_m3")
    assert description.startswith("Mean intensity of the mean_m3 response map [Q4LE]")
    response = apply_filter(slicer_bridge.image_from_volume(volume), {"filter": "mean", "support": 3}).array
    assert column.GetValue(0) == pytest.approx(response[a].mean())


def test_the_filter_list_survives_saving_and_loading_the_scene(scene):
    """The text is a string parameter of the module's real parameter node (as the wrapper stores
    it); a scene written to MRML XML and read back gives the same filters."""
    import slicer
    from mrml_scene import ParameterView, module_parameter_node

    view = ParameterView(module_parameter_node(scene.scene))
    text = gui_state.add_filter_text("", "LoG, sigma 2 mm")
    text = gui_state.add_filter_text(text, "Gabor, sigma 5 mm, lambda 2 mm, 2D, rotation invariant")
    view.filtersText = text
    scene.scene.SetSaveToXMLString(1)
    scene.scene.Commit()
    loaded = slicer.vtkMRMLScene()
    loaded.SetLoadFromXMLString(1)
    loaded.SetSceneXMLString(scene.scene.GetSceneXMLString())
    loaded.Import()
    again = ParameterView(loaded.GetSingletonNode("PySERASlicer", "vtkMRMLScriptedModuleNode"))
    assert again.filtersText == text
    assert gui_state.parse_filters_text(again.filtersText) == gui_state.parse_filters_text(text)
