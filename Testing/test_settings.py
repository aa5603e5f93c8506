"""Run settings: PySERA key table, validation messages, JSON round trips."""

from __future__ import annotations

import json

import pytest
from PySERASlicerLib.settings import (
    PRESET_DESCRIPTIONS,
    PYSERA_KEYS,
    Settings,
    SettingsError,
    get_path,
    preset_settings,
)

#: One non-default example per PySERA key, and the value the settings field must then hold.
EXAMPLES = {
    "categories": ("glcm, STAT", ("stat", "glcm")),
    "dimensions": ("2.5D,3d", ("2_5d", "3d")),
    "bin_size": (12.5, 12.5),
    "min_roi_volume": (3, 3.0),
    "roi_num": ("4", 4),
    "roi_selection_mode": ("PER_REGION", "per_region"),
    "apply_preprocessing": (True, True),
    "feature_value_mode": ("approximate_value", "APPROXIMATE_VALUE"),
    "aggregation_lesion": (1, True),
    "extraction_mode": ("deep_feature", "deep_feature"),
    "deep_learning_model": ("VGG16", "vgg16"),
    "report": ("Warning", "warning"),
    "column_names": ("PySERA", "pysera"),
    "num_workers": ("3", 3),
    "enable_parallelism": (False, False),
    "radiomics_DataType": ("PET", "PET"),
    "radiomics_DiscType": ("FBN", "FBN"),
    "radiomics_BinSize": (7, 7.0),
    "radiomics_isScale": (1, True),
    "radiomics_VoxInterp": ("tricubic-spline", "cubic"),
    "radiomics_ROIInterp": ("trilinear", "linear"),
    "radiomics_isotVoxSize": (1.5, 1.5),
    "radiomics_isotVoxSize2D": (0.75, 0.75),
    "radiomics_isIsot2D": (1, True),
    "radiomics_isGLround": (1, True),
    "radiomics_isReSegRng": (1, True),
    "radiomics_isOutliers": (1, True),
    "radiomics_isQuntzStat": (1, True),
    "radiomics_ReSegIntrvl01": (-200, -200.0),
    "radiomics_ReSegIntrvl02": (300, 300.0),
    "radiomics_ROI_PV": (0.4, 0.4),
    "radiomics_qntz": ("Lloyd", "Lloyd"),
    "radiomics_IVH_Type": (2, 2),
    "radiomics_IVH_DiscCont": (0, False),
    "radiomics_IVH_binSize": (0.5, 0.5),
    "radiomics_isROIsCombined": (1, True),
    "radiomics_SUV": (0, False),
}


def test_every_pysera_key_has_an_example():
    assert set(EXAMPLES) == set(PYSERA_KEYS)


@pytest.mark.parametrize("key", sorted(PYSERA_KEYS))
def test_each_pysera_key_maps_to_its_field_and_round_trips(key):
    value, expected = EXAMPLES[key]
    if key.startswith("radiomics_"):
        settings = Settings.from_pysera(IBSI_based_parameters={key: value})
    else:
        settings = Settings.from_pysera(**{key: value})
    plain = settings.to_dict()
    path = PYSERA_KEYS[key][0]
    got = get_path(plain, path)
    assert (tuple(got) if isinstance(got, list) else got) == expected
    assert Settings.from_dict(plain) == settings
    assert Settings.from_json(settings.to_json()) == settings
    assert Settings.from_pysera(**settings.to_pysera()) == settings


def test_bin_size_is_a_width_for_fbs_and_a_count_for_fbn():
    fbs = Settings.from_pysera(bin_size=10)
    fbn = Settings.from_pysera(bin_size=16, IBSI_based_parameters={"radiomics_DiscType": "FBN"})
    assert fbs.discretisation.bin_width == 10 and fbn.discretisation.bin_number == 16
    with pytest.raises(SettingsError, match="bin_size.*integer number of bins"):
        Settings.from_pysera(bin_size=2.5, IBSI_based_parameters={"radiomics_DiscType": "FBN"})


@pytest.mark.parametrize("kwargs, message", [
    ({"bin_sz": 3}, "unknown parameter 'bin_sz' \\(did you mean 'bin_size'\\?\\); accepted: categories, dimensions, "
                    "bin_size"),
    ({"IBSI_based_parameters": {"radiomics_Foo": 1}}, "unknown key 'radiomics_Foo'; accepted keys: radiomics_DataType"),
    ({"IBSI_based_parameters": {"radiomics_DiscType": "XX"}},
     "radiomics_DiscType: 'XX' is not valid; accepted values: FBS, FBN, NONE"),
    ({"IBSI_based_parameters": {"radiomics_ROI_PV": 2}},
     r"radiomics_ROI_PV: 2.0 is not valid; accepted values: a number in \(0, 1\]"),
    ({"IBSI_based_parameters": {"radiomics_isScale": "maybe"}},
     "radiomics_isScale: 'maybe' is not valid; accepted values: 0, 1"),
    ({"IBSI_based_parameters": {"radiomics_ReSegIntrvl01": 500}}, "range_upper: 400.0 is not valid"),
    ({"categories": "glcm,foo"}, "categories: unknown name\\(s\\) foo; accepted values: all, diag, morph"),
    ({"dimensions": "4d"}, "dimensions: unknown name\\(s\\) 4d; accepted values: all, 1st, 2d, 2_5d, 3d"),
    ({"num_workers": "many"}, "num_workers: 'many' is not valid; accepted values: 'auto' or an integer >= 1"),
    ({"roi_num": 0}, "roi_num: 0 is not valid; accepted values: an integer >= 1"),
    ({"roi_selection_mode": "per_lesion"},
     "roi_selection_mode: 'per_lesion' is not valid; accepted values: per_Img, per_region"),
    ({"IBSI_based_parameters": "FBN"}, "IBSI_based_parameters: expected a dict, got str"),
])
def test_bad_keys_and_values_name_the_key_and_what_is_accepted(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_pysera(**kwargs)


def test_our_own_dict_rejects_unknown_and_bad_fields():
    plain = Settings().to_dict()
    plain["discretisation"]["bin_wdth"] = 3
    with pytest.raises(SettingsError, match="unknown settings key\\(s\\) 'discretisation.bin_wdth' \\(did you mean "
                                            "'discretisation.bin_width'\\?\\); accepted keys: "
                                            "discretisation.bin_number, discretisation.bin_width"):
        Settings.from_dict(plain)
    with pytest.raises(SettingsError, match="texture.glcm_distance: 0 is not valid; accepted values: an integer >= 1"):
        Settings.from_dict({"texture": {"glcm_distance": 0}})
    with pytest.raises(SettingsError, match="resampling.image_interpolator: 'quadratic' is not valid"):
        Settings.from_dict({"resampling": {"image_interpolator": "quadratic"}})


@pytest.mark.parametrize("name", sorted(PRESET_DESCRIPTIONS))
def test_presets_round_trip_through_every_format(name, tmp_path):
    settings = preset_settings(name)
    path = tmp_path / "settings.json"
    settings.to_json(str(path))
    assert Settings.from_json(str(path)) == settings
    assert Settings.from_dict(json.loads(path.read_text())) == settings
    assert Settings.from_any({"preset": name}) == settings


def test_settings_files_accept_pysera_keys_and_preset_overrides(tmp_path):
    pysera = tmp_path / "pysera.json"
    pysera.write_text(json.dumps({"bin_size": 32, "IBSI_based_parameters": {"radiomics_DiscType": "FBN"}}))
    assert Settings.from_json(str(pysera)).discretisation.bin_number == 32
    override = Settings.from_json('{"preset": "ibsi_C", "discretisation": {"bin_width": 10}}')
    assert override.discretisation.bin_width == 10 and override.resampling.voxel_size_mm == 2.0
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SettingsError, match="broken.json.*is not valid JSON"):
        Settings.from_json(str(broken))
    with pytest.raises(SettingsError, match="preset: 'ibsi_Z' is not valid; accepted values: pysera_default"):
        Settings.from_json('{"preset": "ibsi_Z"}')


def test_pysera_defaults_are_the_documented_ones():
    settings = Settings.from_pysera()
    pysera = settings.to_pysera()
    assert pysera["categories"] == "diag,morph,glcm,glrlm,glszm,ngtdm,ngldm" and pysera["dimensions"] == "1st,2d"
    assert pysera["bin_size"] == 25 and pysera["roi_num"] == 10 and pysera["min_roi_volume"] == 10
    assert pysera["roi_selection_mode"] == "per_Img" and pysera["feature_value_mode"] == "REAL_VALUE"
    assert pysera["num_workers"] == "auto" and pysera["report"] == "all"
    ibsi = pysera["IBSI_based_parameters"]
    assert ibsi["radiomics_DiscType"] == "FBS" and ibsi["radiomics_isScale"] == 0 and ibsi["radiomics_ROI_PV"] == 0.5
    assert ibsi["radiomics_IVH_Type"] == 3 and ibsi["radiomics_IVH_DiscCont"] == 1
    assert ibsi["radiomics_IVH_binSize"] == 2


# ---------------------------------------------------------------------------------------------
# Settings files as users write them (issue: reproducible settings)
# ---------------------------------------------------------------------------------------------
def test_a_keyword_the_caller_wrote_wins_over_settings_even_at_its_default():
    """PySERA's convention: None = not given. bin_size=25 and the default categories are written
    by the caller, so they replace the file's 50 and stat."""
    from_file = Settings.from_json('{"bin_size": 50, "categories": "stat"}')
    assert from_file.discretisation.bin_width == 50
    called = Settings.from_call(from_file, bin_size=25, categories="diag,morph,glcm,glrlm,glszm,ngtdm,ngldm",
                                dimensions=None, roi_num=None)
    assert called.discretisation.bin_width == 25
    assert called.categories == ("diag", "morph", "glcm", "glrlm", "glszm", "ngtdm", "ngldm")
    assert Settings.from_call(from_file, bin_size=None) == from_file  # nothing given: the file's values
    assert Settings.from_call() == Settings()  # nothing at all: PySERA's defaults
    with pytest.raises(SettingsError, match="settings: expected a Settings object, got str"):
        Settings.from_call("s.json")


def test_a_run_provenance_json_is_a_settings_file(tmp_path):
    from PySERASlicerLib.export import features_frame, write_outputs

    settings = preset_settings("ibsi_B").replace(column_names="pysera")
    rows = [{"PatientID": "p1", "ROI": "r1", "stat_mean": 1.0}]
    _, _, json_path = write_outputs(str(tmp_path), features_frame(rows), settings, [], {"cases": 1})
    record = json.loads(open(json_path, encoding="utf-8").read())
    assert set(record) == {"settings", "pysera_parameters", "provenance", "outputs"}
    assert Settings.from_json(json_path) == settings


def test_a_missing_settings_file_says_file_not_found(tmp_path):
    with pytest.raises(SettingsError, match="settings file 'nonexist.json': file not found"):
        Settings.from_json("nonexist.json")
    with pytest.raises(SettingsError, match="is a folder, not a JSON file"):
        Settings.from_json(str(tmp_path))


def test_a_key_typo_suggests_the_key_and_lists_every_accepted_key_pysera_forms_included():
    with pytest.raises(SettingsError) as info:
        Settings.from_json('{"bin_sise": 25}')
    message = str(info.value)
    assert message.startswith("unknown settings key(s) 'bin_sise' (did you mean 'bin_size'?); accepted keys: ")
    accepted = set(message.split("accepted keys: ")[1].split(", "))
    assert {"bin_size", "IBSI_based_parameters", "radiomics_DiscType", "min_roi_volume", "preset",
            "discretisation", "resampling", "column_names"} <= accepted
    for key in accepted - {"preset"}:  # every key listed is accepted
        value = {"IBSI_based_parameters": {}, "categories": "stat", "dimensions": "1st"}.get(key)
        if value is not None:
            Settings.from_any({key: value})


def test_our_keys_and_pysera_keys_mix_in_one_file():
    mixed = Settings.from_json('{"resampling": {"enabled": true, "voxel_size_mm": 1.5}, "bin_size": 16, '
                               '"radiomics_DiscType": "FBN", "categories": "stat,ih"}')
    assert mixed.resampling.enabled and mixed.resampling.voxel_size_mm == 1.5
    assert mixed.discretisation.method.value == "FBN" and mixed.discretisation.bin_number == 16
    assert mixed.categories == ("stat", "ih")
