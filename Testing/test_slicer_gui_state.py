"""Parameter node <-> Settings mapping (gui_state) and its agreement with PySERASlicer.py."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySERASlicerLib import gui_state
from PySERASlicerLib.settings import (
    CATEGORIES,
    DIMENSIONS,
    PRESET_DESCRIPTIONS,
    DeepSettings,
    DiscretisationSettings,
    Settings,
    SettingsError,
    TextureSettings,
    preset_settings,
)

MODULE_FILE = Path(__file__).resolve().parents[1] / "PySERASlicer" / "PySERASlicer.py"


def parameter_node_class():
    tree = ast.parse(MODULE_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "PySERASlicerParameterNode":
            return node
    raise AssertionError("PySERASlicerParameterNode not found")


def declared_fields():
    """{name: (annotation source, default value or None)} of the parameter node class."""
    fields = {}
    for stmt in parameter_node_class().body:
        if isinstance(stmt, ast.AnnAssign):
            try:
                default = ast.literal_eval(stmt.value) if stmt.value is not None else None
            except ValueError:  # an expression such as pathlib.Path.home() / "PySERA"
                default = ast.unparse(stmt.value)
            fields[stmt.target.id] = (ast.unparse(stmt.annotation), default)
    return fields


def node_with_defaults():
    values = gui_state.defaults()
    values[gui_state.BASE_SETTINGS] = ""
    return SimpleNamespace(**values)


# ---------------------------------------------------------------------------------------------
# The parameter node class declares every GUI parameter with the same type and default
# ---------------------------------------------------------------------------------------------
def test_parameter_node_declares_every_settings_field_with_its_default():
    fields = declared_fields()
    defaults = gui_state.defaults()
    for parameter in gui_state.PARAMETERS:
        assert parameter.name in fields, f"PySERASlicerParameterNode lacks {parameter.name}"
        annotation, default = fields[parameter.name]
        assert parameter.kind.__name__ in annotation, (parameter.name, annotation)
        if parameter.kind is Path:  # no default: the wrapper's Path(), shown blank by the widget
            assert default is None and defaults[parameter.name] == Path(), parameter.name
            continue
        assert default == defaults[parameter.name], (parameter.name, default, defaults[parameter.name])
        assert type(default) is parameter.kind, (parameter.name, type(default))
        if parameter.choices:
            assert "Choice" in annotation, f"{parameter.name}: a QComboBox needs a Choice annotation"
    assert fields["preset"][1] == gui_state.DEFAULT_PRESET and "Choice" in fields["preset"][0]
    assert fields[gui_state.BASE_SETTINGS] == ("str", "")


def test_choice_annotations_list_exactly_the_accepted_values():
    fields = declared_fields()
    for parameter in gui_state.PARAMETERS:
        if not parameter.choices:
            continue
        annotation = ast.parse(fields[parameter.name][0], mode="eval").body
        choice = next(n for n in ast.walk(annotation) if isinstance(n, ast.Call) and getattr(n.func, "id", "")
                      == "Choice")
        listed = ast.literal_eval(choice.args[0])
        assert tuple(listed) == tuple(parameter.choices), parameter.name
    preset = ast.parse(fields["preset"][0], mode="eval").body
    choice = next(n for n in ast.walk(preset) if isinstance(n, ast.Call))
    assert tuple(ast.literal_eval(choice.args[0])) == gui_state.PRESET_CHOICES


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(PRESET_DESCRIPTIONS))
def test_every_preset_round_trips_through_the_parameter_node(preset):
    settings = preset_settings(preset)
    node = node_with_defaults()
    gui_state.apply_settings(node, settings, preset=preset)
    assert node.preset == preset
    assert gui_state.settings_from_node(node) == settings


def changed_values():
    """A value different from the default for every GUI parameter."""
    defaults = gui_state.defaults()
    changes = {}
    for parameter in gui_state.PARAMETERS:
        current = defaults[parameter.name]
        if parameter.choices:
            changes[parameter.name] = next(c for c in parameter.choices if c != current)
        elif parameter.kind is bool:
            changes[parameter.name] = not current
        elif parameter.kind is int:
            changes[parameter.name] = current + 3
        elif parameter.kind is Path:
            changes[parameter.name] = Path("/models") / f"{parameter.name}.pth"
        elif parameter.kind is str:  # featureNames: names as the GUI shows them (comma-joined)
            changes[parameter.name] = "morph_volume, stat_mean, cm_contrast_3D_avg"
        else:
            changes[parameter.name] = current + 0.25 if parameter.name != "roiPartialVolume" else 0.75
    # keep the combination valid: range upper above lower, at least one category/dimension
    changes["rangeLower"], changes["rangeUpper"] = -200.0, 250.0
    return changes


@pytest.mark.parametrize("parameter", [p.name for p in gui_state.PARAMETERS])
def test_each_gui_parameter_changes_its_settings_field_and_round_trips(parameter):
    changes = changed_values()
    node = node_with_defaults()
    before = gui_state.settings_from_node(node)
    setattr(node, parameter, changes[parameter])
    if parameter in ("rangeLower", "rangeUpper"):
        node.rangeLower, node.rangeUpper = changes["rangeLower"], changes["rangeUpper"]
    if parameter == "dimension1st":  # unchecking the only... keep another dimension checked
        assert node.dimension2d
    after = gui_state.settings_from_node(node)
    assert after != before, f"{parameter} has no effect on the Settings"
    # and back: the GUI shows what the Settings hold
    again = SimpleNamespace(**gui_state.defaults())
    gui_state.apply_settings(again, after)
    assert getattr(again, parameter) == getattr(node, parameter)
    assert gui_state.settings_from_node(again) == after


def test_all_parameters_changed_at_once_round_trip_exactly():
    node = node_with_defaults()
    for name, value in changed_values().items():
        setattr(node, name, value)
    settings = gui_state.settings_from_node(node)
    expected_categories = tuple(c for c in CATEGORIES if getattr(node, gui_state.category_parameter(c)))
    assert settings.categories == expected_categories
    assert settings.dimensions == tuple(d for d in DIMENSIONS if getattr(node, gui_state.dimension_parameter(d)))
    values = gui_state.settings_to_values(settings)
    for parameter in gui_state.PARAMETERS:
        assert values[parameter.name] == getattr(node, parameter.name), parameter.name


def test_dicom_reading_policies_are_gui_fields():
    """Gantry tilt and missing slices (issue 17's dicom settings) are set from the panel and
    shown back from a settings file."""
    from PySERASlicerLib.settings import DicomSettings

    node = node_with_defaults()
    assert (node.dicomGantryTilt, node.dicomMissingSlices) == ("regularize", "error")
    node.dicomGantryTilt, node.dicomMissingSlices = "error", "interpolate"
    settings = gui_state.settings_from_node(node)
    assert settings.dicom == DicomSettings(gantry_tilt="error", missing_slices="interpolate")
    shown = SimpleNamespace(**gui_state.defaults())
    gui_state.apply_settings(shown, settings)
    assert (shown.dicomGantryTilt, shown.dicomMissingSlices) == ("error", "interpolate")


def test_specific_mappings():
    node = node_with_defaults()
    node.resamplingMode, node.voxelSize2D = "2D", 1.5
    node.discretisationMethod, node.binNumber = "FBN", 64
    node.numWorkers = 0
    settings = gui_state.settings_from_node(node)
    assert settings.resampling.enabled and settings.resampling.in_plane_only
    assert settings.resampling.voxel_size_2d_mm == 1.5
    assert settings.discretisation.method.value == "FBN" and settings.discretisation.bin_number == 64
    assert settings.num_workers == "auto"
    node.resamplingMode, node.numWorkers = "3D", 4
    settings = gui_state.settings_from_node(node)
    assert settings.resampling.enabled and not settings.resampling.in_plane_only
    assert settings.num_workers == 4
    node.resamplingMode = "off"
    assert not gui_state.settings_from_node(node).resampling.enabled


def test_settings_the_gui_does_not_show_survive_load_edit_save(tmp_path):
    hidden = Settings(texture=TextureSettings(glcm_distance=2, ngldm_alpha=1),
                      deep=DeepSettings(batch_size=4, slice_aggregation="max"),
                      discretisation=DiscretisationSettings(quantiser="Lloyd", method="FBN", bin_number=16))
    path = tmp_path / "in.json"
    hidden.to_json(str(path))
    node = node_with_defaults()
    loaded = gui_state.load_settings_file(node, path)
    assert loaded == hidden and node.preset == gui_state.CUSTOM_PRESET
    assert node.binNumber == 16 and node.discretisationMethod == "FBN"
    node.binNumber = 24  # edit in the GUI
    out = tmp_path / "sub" / "out.json"
    saved = gui_state.save_settings_file(node, out)
    again = Settings.from_json(str(out))
    assert again == saved
    assert again.discretisation.bin_number == 24
    assert again.texture == hidden.texture and again.deep == hidden.deep
    assert again.discretisation.quantiser == hidden.discretisation.quantiser


def test_loading_a_pysera_parameter_file(tmp_path):
    path = tmp_path / "pysera.json"
    path.write_text(json.dumps({"bin_size": 16, "categories": "stat,glcm",
                                "IBSI_based_parameters": {"radiomics_DiscType": "FBN", "radiomics_isScale": 1,
                                                          "radiomics_isIsot2D": 1}}))
    node = node_with_defaults()
    gui_state.load_settings_file(node, path)
    assert node.discretisationMethod == "FBN" and node.binNumber == 16
    assert node.categoryStat and node.categoryGlcm and not node.categoryMorph
    assert node.resamplingMode == "2D"


def test_all_none_buttons_and_empty_selection_is_a_named_problem():
    node = node_with_defaults()
    gui_state.set_all(node, gui_state.CATEGORY_FIELDS, True)
    assert gui_state.settings_from_node(node).categories == CATEGORIES
    gui_state.set_all(node, gui_state.CATEGORY_FIELDS, False)
    with pytest.raises(SettingsError, match="Categories"):
        gui_state.settings_from_node(node)
    problems = gui_state.settings_problems(gui_state.read_values(node))
    assert problems and "category" in problems[0]
    gui_state.set_all(node, gui_state.CATEGORY_FIELDS, True)
    gui_state.set_all(node, gui_state.DIMENSION_FIELDS, False)
    assert "dimension" in gui_state.settings_problems(gui_state.read_values(node))[0]


def test_only_these_features_field_sets_the_named_features_and_a_typo_blocks_run():
    node = node_with_defaults()
    node.featureNames = "stat_mean,glcm_contrast_3D_avg , stat_mean"
    assert gui_state.settings_from_node(node).features == ("stat_mean", "glcm_contrast_3D_avg")
    node.featureNames = "stat_mean, morph_volum"
    problems = gui_state.settings_problems(gui_state.read_values(node))
    assert problems == ["Only these features: unknown feature name(s) 'morph_volum' (did you mean 'morph_volume'?); "
                        "give output column names, IBSI tags such as 'morph_volume' or 'cm_contrast_3D_avg', or "
                        "PySERA's such as 'glcm_contrast_3D_avg' (docs/features.md lists every feature)"]
    node.featureNames = "  "
    assert gui_state.settings_from_node(node).features == ()


def test_bad_gui_value_names_the_field():
    node = node_with_defaults()
    node.binWidth = 0.0
    with pytest.raises(SettingsError, match="Bin width"):
        gui_state.settings_from_node(node)
    node.binWidth, node.rangeLower, node.rangeUpper = 25.0, 100.0, 50.0
    assert "Range upper" in gui_state.settings_problems(gui_state.read_values(node))[0]


def test_preset_values_and_defaults():
    values = gui_state.preset_values("ibsi_B")
    assert values["preset"] == "ibsi_B" and values["resamplingMode"] == "2D"
    assert values["discretisationMethod"] == "FBN" and values["binNumber"] == 32
    assert gui_state.values_to_settings(values) == preset_settings("ibsi_B")
    # an empty base JSON means PySERA defaults
    node = node_with_defaults()
    assert gui_state.settings_from_node(node) == preset_settings("pysera_default")


# ---------------------------------------------------------------------------------------------
# Segment ids, paths, readiness
# ---------------------------------------------------------------------------------------------
def test_segment_ids_are_stored_comma_joined_and_empty_means_all():
    all_ids = ["Segment_1", "Segment_2", "Segment_3"]
    assert gui_state.segment_selection_value(all_ids, all_ids) == ""
    assert gui_state.segment_selection_value(["Segment_3", "Segment_1"], all_ids) == "Segment_1,Segment_3"
    assert gui_state.split_ids("Segment_1, Segment_3,") == ["Segment_1", "Segment_3"]
    assert gui_state.selected_segment_ids("", all_ids) == all_ids
    assert gui_state.selected_segment_ids("Segment_2,gone", all_ids) == ["Segment_2"]
    assert gui_state.selected_segment_ids("gone", all_ids) == all_ids


def test_path_values():
    assert gui_state.path_value(Path()) is None
    assert gui_state.path_value("") is None
    assert gui_state.path_value(None) is None
    assert gui_state.path_value(Path("/tmp/x")) == Path("/tmp/x")


def test_run_readiness_for_single_case_and_batch(tmp_path):
    values = gui_state.defaults()
    assert gui_state.single_case_problems([], None, values) == [
        "Select at least one image volume.", "Select a segmentation or labelmap."]
    assert gui_state.single_case_problems([object()], object(), values) == []

    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    batch = dict(values, batchImageFolder=Path(), batchMaskFolder=Path(), batchCasesCsv=Path(), outputFolder=Path())
    problems = gui_state.batch_problems(batch)
    assert any("image folder" in p for p in problems) and any("output folder" in p for p in problems)
    batch.update(batchImageFolder=images, batchMaskFolder=masks, outputFolder=out)
    assert gui_state.batch_problems(batch) == []
    batch.update(batchMaskFolder=tmp_path / "nope")
    assert any("does not exist" in p for p in gui_state.batch_problems(batch))
    csv_path = tmp_path / "cases.csv"
    batch.update(batchImageFolder=Path(), batchMaskFolder=Path(), batchCasesCsv=csv_path)
    assert any("Case CSV" in p for p in gui_state.batch_problems(batch))
    csv_path.write_text("image,mask\n")
    assert gui_state.batch_problems(batch) == []


def test_parameter_node_annotations_are_python39_safe():
    """parameterNodeWrapper evaluates the hints: no ``X | Y`` and no builtin generics."""
    for name, (annotation, _) in declared_fields().items():
        assert "|" not in annotation, (name, annotation)
        assert not annotation.startswith(("list[", "dict[", "tuple[")), (name, annotation)
    tree = ast.parse(MODULE_FILE.read_text(), feature_version=(3, 9))  # Slicer 5.6/5.8 syntax
    futures = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    assert not futures, "hints of the parameter node must stay real objects"


def test_loading_a_run_provenance_json_shows_its_settings(tmp_path):
    """The GUI's Load takes the JSON a run wrote beside its Excel report (issue: reproducible runs)."""
    from PySERASlicerLib.export import features_frame, write_outputs

    settings = Settings(categories="stat,ih", column_names="pysera").replace(
        discretisation=DiscretisationSettings(method="FBN", bin_number=12))
    _, _, provenance = write_outputs(str(tmp_path), features_frame([{"PatientID": "p", "ROI": "r"}]), settings, [])
    node = node_with_defaults()
    assert gui_state.load_settings_file(node, provenance) == settings
    assert node.columnNames == "pysera" and node.binNumber == 12
