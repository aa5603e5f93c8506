"""Feature selection by PySERA ``categories`` x ``dimensions`` (registry.select and Settings)."""

from __future__ import annotations

import pytest
from PySERASlicerLib.engine.registry import MATRIX_AGGREGATIONS, ZONE_AGGREGATIONS, group_by_family, select
from PySERASlicerLib.settings import CATEGORIES, DIMENSIONS, Settings, SettingsError

#: PySERA's 557-feature layout (our IVH has 7 features; see docs/features.md).
PYSERA_COUNTS = {
    "diag": 60, "morph": 29, "ip": 2, "stat": 18, "ih": 23, "ivh": 7, "glcm": 150, "glrlm": 96,
    "glszm": 48, "gldzm": 48, "ngtdm": 15, "ngldm": 51, "mi": 10,
}
TEXTURE = {"glcm": (25, MATRIX_AGGREGATIONS), "glrlm": (16, MATRIX_AGGREGATIONS), "glszm": (16, ZONE_AGGREGATIONS),
           "gldzm": (16, ZONE_AGGREGATIONS), "ngtdm": (5, ZONE_AGGREGATIONS), "ngldm": (17, ZONE_AGGREGATIONS)}


def counts(specs):
    return {family: len(tags) for family, tags in group_by_family(specs).items()}


@pytest.mark.parametrize("family", list(TEXTURE) + ["mi"])
def test_texture_and_mi_counts(family):
    assert counts(select(family, "all")).get(family) == PYSERA_COUNTS[family]


@pytest.mark.parametrize("family", list(TEXTURE))
def test_texture_counts_per_dimension(family):
    per_aggregation, aggregations = TEXTURE[family]
    for dimension in ("2d", "2_5d", "3d"):
        n_aggregations = sum(1 for a in aggregations if a.lower().startswith(dimension))
        assert len(select(family, dimension)) == per_aggregation * n_aggregations
    assert select(family, "1st") == ()


def test_all_is_pysera_557_layout():
    specs = select("all", "all")
    assert counts(specs) == PYSERA_COUNTS
    assert len(specs) == 557
    assert list(group_by_family(specs)) == list(CATEGORIES)  # PySERA category order


def test_mi_is_whole_volume():
    assert [s.dimension for s in select("mi", "all")] == ["1st"] * 10
    assert select("mi", "3d") == ()


@pytest.mark.parametrize("text", ["glcm,ngtdm", " GLCM , NgTdm ", "ngtdm,glcm", ["glcm", "ngtdm"]])
def test_categories_comma_separated_case_and_space_insensitive(text):
    assert {s.family for s in select(text, "all")} == {"glcm", "ngtdm"}
    assert Settings(categories=text).categories == ("glcm", "ngtdm")


@pytest.mark.parametrize("text", ["2.5d", "2.5D", "2_5D", " 2.5 d"])
def test_two_and_a_half_d_spellings(text):
    specs = select("glcm", text)
    assert {s.aggregation for s in specs} == {"2_5D_avg", "2_5D_comb"}
    assert Settings(dimensions=text).dimensions == ("2_5d",)


def test_all_keyword_and_mixtures():
    assert select("ALL", "All") == select(",".join(CATEGORIES), ",".join(DIMENSIONS))
    assert Settings(categories="all").categories == CATEGORIES
    full_3d = select("all", "1st,3d")
    assert {s.dimension for s in full_3d} == {"1st", "3d"}
    assert len(full_3d) == 557 - len(select("all", "2d,2_5d"))


@pytest.mark.parametrize("key, bad, valid", [("categories", "glcm,texture", CATEGORIES),
                                             ("dimensions", "4d", DIMENSIONS)])
def test_unknown_names_list_valid_names(key, bad, valid):
    with pytest.raises(SettingsError) as info:
        select(**{key: bad})
    message = str(info.value)
    assert key in message and bad.split(",")[-1] in message
    assert all(name in message for name in valid)
    with pytest.raises(SettingsError):
        Settings(**{key: bad})


def test_empty_selection_is_an_error():
    with pytest.raises(SettingsError):
        select(" , ", "all")
