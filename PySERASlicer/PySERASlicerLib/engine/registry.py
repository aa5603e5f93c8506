"""The feature registry: one :class:`FeatureSpec` per feature tag.

Every family module in :mod:`PySERASlicerLib.engine.features` declares

* ``FAMILY``: its PySERA category name (``"stat"``, ``"glcm"``, ...),
* ``SPECS``: a tuple of :class:`FeatureSpec` (full IBSI tags, in output order),
* ``compute(ctx, tags) -> dict[str, float]``: the values of the requested tags for one ROI
  (``ctx`` is a :class:`~PySERASlicerLib.engine.context.RoiContext`).

Selection (PySERA ``categories`` x ``dimensions``), column order, documentation, the
conformance tests and PySERA's own column names (:attr:`FeatureSpec.pysera_tag`,
``column_names="pysera"``) are all derived from this registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..settings import CATEGORIES, DIMENSIONS, ColumnNames, SettingsError, parse_selection

#: Family modules in PySERA category order (module name == category).
FAMILY_MODULES: Tuple[str, ...] = CATEGORIES

#: Texture aggregation suffix -> (IBSI aggregation name, IBSI code, PySERA dimension).
AGGREGATIONS: Dict[str, Tuple[str, str, str]] = {
    "2D_avg": ("2D, averaged", "BTW3", "2d"),
    "2D_comb": ("2D, slice-merged", "SUJT", "2d"),
    "2_5D_avg": ("2.5D, direction-merged", "JJUI", "2_5d"),
    "2_5D_comb": ("2.5D, merged", "ZW7Z", "2_5d"),
    "3D_avg": ("3D, averaged", "ITBB", "3d"),
    "3D_comb": ("3D, merged", "IAZD", "3d"),
    "2D": ("2D", "8QNN", "2d"),
    "2_5D": ("2.5D", "62GR", "2_5d"),
    "3D": ("3D", "KOBO", "3d"),
}
#: Aggregations of GLCM and GLRLM.
MATRIX_AGGREGATIONS = ("2D_avg", "2D_comb", "2_5D_avg", "2_5D_comb", "3D_avg", "3D_comb")
#: Aggregations of GLSZM, GLDZM, NGTDM and NGLDM.
ZONE_AGGREGATIONS = ("2D", "2_5D", "3D")

# PySERA 2.1.5 names its columns after the IBSI tags with three kinds of difference, checked
# name by name against the columns PySERA writes (Testing/Data/pysera/, test_column_names.py):
#: texture family prefixes,
PYSERA_PREFIXES: Dict[str, str] = {"cm_": "glcm_", "rlm_": "glrlm_", "ngt_": "ngtdm_"}
#: texture stems (IBSI stem -> PySERA stem, before the aggregation suffix),
PYSERA_STEMS: Dict[str, str] = {
    "rlm_rl_entr": "glrlm_rl_entropy",
    "szm_szlge": "szm_sdlge", "szm_szhge": "szm_sdhge", "szm_lzlge": "szm_ldlge", "szm_lzhge": "szm_ldhge",
    "ngl_dc_perc": "ngl_dcperc",
}
#: and whole tags of morphology and moment invariants.
PYSERA_TAGS: Dict[str, str] = {
    "morph_volume": "morph_volume_mesh", "morph_vol_approx": "morph_volume_count",
    "morph_area_mesh": "morph_surface_area", "morph_av": "morph_sv_ratio",
    "morph_comp_1": "morph_compactness1", "morph_comp_2": "morph_compactness2",
    "morph_sph_dispr": "morph_spherical_disproportion", "morph_com": "morph_com_shift",
    "morph_diam": "morph_max_3d_diameter", "morph_pca_maj_axis": "morph_major_axis_length",
    "morph_pca_min_axis": "morph_minor_axis_length", "morph_pca_least_axis": "morph_least_axis_length",
    "morph_pca_elongation": "morph_elongation", "morph_pca_flatness": "morph_flatness",
    "morph_vol_dens_aabb": "morph_volume_density_aabb", "morph_area_dens_aabb": "morph_area_density_aabb",
    "morph_vol_dens_ombb": "morph_volume_density_ombb", "morph_area_dens_ombb": "morph_area_density_ombb",
    "morph_vol_dens_aee": "morph_volume_density_aee", "morph_area_dens_aee": "morph_area_density_aee",
    "morph_vol_dens_mvee": "morph_volume_density_mvee", "morph_area_dens_mvee": "morph_area_density_mvee",
    "morph_vol_dens_conv_hull": "morph_solidity", "morph_area_dens_conv_hull": "morph_area_density_convex_hull",
    "morph_integ_int": "morph_integrated_intensity",
    "mi_int_j1": "moment_i1_intensity", "mi_int_q": "moment_f2_intensity", "mi_int_j2": "moment_i2_intensity",
    "mi_int_j3": "moment_i3_intensity", "mi_int_b3": "moment_f3_intensity",
    "mi_shape_j1": "moment_i1_shape", "mi_shape_q": "moment_f2_shape", "mi_shape_j2": "moment_i2_shape",
    "mi_shape_j3": "moment_i3_shape", "mi_shape_b3": "moment_f3_shape",
}


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column.

    tag : IBSI compliance tag, e.g. ``stat_mean`` or ``cm_joint_max_2D_avg`` (the column name).
    name : human-readable name from the IBSI manual (GUI titles, docs).
    code : IBSI feature code (``Q4LE``); empty where IBSI has none (PySERA extras).
    family : PySERA category (``stat``, ``glcm``, ...).
    aggregation : suffix key of :data:`AGGREGATIONS`, or ``""`` for whole-volume features.
    """

    tag: str
    name: str
    code: str
    family: str
    aggregation: str = ""

    @property
    def dimension(self) -> str:
        """PySERA dimension: ``1st`` for non-texture families, else from the aggregation."""
        return AGGREGATIONS[self.aggregation][2] if self.aggregation else "1st"

    @property
    def aggregation_name(self) -> str:
        return AGGREGATIONS[self.aggregation][0] if self.aggregation else "3D (volume)"

    @property
    def pysera_tag(self) -> str:
        """The column name PySERA 2.1.5 writes for this feature (``glcm_joint_max_2D_avg``)."""
        if not self.aggregation:
            return PYSERA_TAGS.get(self.tag, self.tag)
        stem = self.tag[: -len(self.aggregation) - 1]
        if stem in PYSERA_STEMS:
            stem = PYSERA_STEMS[stem]
        else:
            prefix = next((p for p in PYSERA_PREFIXES if stem.startswith(p)), None)
            if prefix:
                stem = PYSERA_PREFIXES[prefix] + stem[len(prefix):]
        return f"{stem}_{self.aggregation}"

    def column(self, style: Union[ColumnNames, str] = ColumnNames.IBSI) -> str:
        """This feature's column name in the ``column_names`` style (``ibsi`` or ``pysera``)."""
        return self.pysera_tag if ColumnNames.parse(style, "column_names") == ColumnNames.PYSERA else self.tag


def volume_specs(family: str, rows: Iterable[Tuple[str, str, str]]) -> Tuple[FeatureSpec, ...]:
    """Specs of a whole-volume family from ``(tag, name, code)`` rows."""
    return tuple(FeatureSpec(tag, name, code, family) for tag, name, code in rows)


def texture_specs(family: str, rows: Iterable[Tuple[str, str, str]],
                  aggregations: Sequence[str]) -> Tuple[FeatureSpec, ...]:
    """Specs of a texture family from ``(stem, name, code)`` rows, aggregation-major order
    (all features of the first aggregation, then the next)."""
    rows = tuple(rows)
    return tuple(
        FeatureSpec(f"{stem}_{agg}", name, code, family, agg) for agg in aggregations for stem, name, code in rows
    )


@cache
def family_module(family: str):
    """The module implementing one family (imported on first use)."""
    if family not in FAMILY_MODULES:
        raise KeyError(f"unknown feature family {family!r}; known: {', '.join(FAMILY_MODULES)}")
    return importlib.import_module(f"{__package__}.features.{family}")


@cache
def all_specs() -> Tuple[FeatureSpec, ...]:
    """Every feature, in output column order (PySERA category order)."""
    specs: List[FeatureSpec] = []
    for family in FAMILY_MODULES:
        specs.extend(family_module(family).SPECS)
    tags = [s.tag for s in specs]
    duplicates = {t for t in tags if tags.count(t) > 1}
    if duplicates:
        raise RuntimeError(f"duplicate feature tags in the registry: {sorted(duplicates)}")
    return tuple(specs)


@cache
def specs_by_tag() -> Dict[str, FeatureSpec]:
    return {s.tag: s for s in all_specs()}


@cache
def _specs_by_column() -> Dict[str, FeatureSpec]:
    by_column = {s.pysera_tag: s for s in all_specs()}
    by_column.update(specs_by_tag())  # where the two styles share a name it is the same feature (tested)
    return by_column


def spec_for_column(column: str) -> Optional[FeatureSpec]:
    """The feature behind a column named in either style (IBSI tag or PySERA name); None for
    id columns, deep features and anything else outside the registry."""
    return _specs_by_column().get(column)


def split_filtered_column(column: str) -> Optional[Tuple[FeatureSpec, str]]:
    """(feature, filter label) of a filtered-image column ``<feature column>_<filter label>``
    (docs/filters.md), the longest feature name that fits; None for any other column."""
    by_column = _specs_by_column()
    for cut in reversed([i for i, char in enumerate(column) if char == "_"]):
        spec = by_column.get(column[:cut])
        if spec is not None and cut + 1 < len(column):
            return spec, column[cut + 1:]
    return None


def rename_columns(columns: Iterable[str], style: Union[ColumnNames, str]) -> List[str]:
    """Column names in the ``column_names`` style (filtered-image columns keep their filter
    label); names outside the registry stay as they are."""
    renamed = []
    for column in columns:
        spec = spec_for_column(column)
        if spec is not None:
            renamed.append(spec.column(style))
            continue
        filtered = split_filtered_column(column)
        renamed.append(f"{filtered[0].column(style)}_{filtered[1]}" if filtered else column)
    return renamed


def select(categories="all", dimensions="all") -> Tuple[FeatureSpec, ...]:
    """Features of the given PySERA categories and dimensions (strings or sequences)."""
    cats = set(parse_selection(categories, CATEGORIES, "categories"))
    dims = set(parse_selection(dimensions, DIMENSIONS, "dimensions"))
    return tuple(s for s in all_specs() if s.family in cats and s.dimension in dims)


def select_named(names: Iterable[str], key: str = "features") -> Tuple[FeatureSpec, ...]:
    """The features named (output column names in either style: IBSI tag or PySERA name), in
    output column order. Unknown names are one :class:`SettingsError` naming each, with the
    closest known name."""
    by_column = _specs_by_column()
    names = list(names)
    unknown = [name for name in names if name not in by_column]
    if unknown:
        import difflib  # only on this error path

        parts = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(by_column), n=1, cutoff=0.75)
            parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
        raise SettingsError(f"{key}: unknown feature name(s) {', '.join(parts)}; give output column names, "
                            "IBSI tags such as 'morph_volume' or 'cm_contrast_3D_avg', or PySERA's such as "
                            "'glcm_contrast_3D_avg' (docs/features.md lists every feature)")
    wanted = {by_column[name].tag for name in names}
    return tuple(spec for spec in all_specs() if spec.tag in wanted)


def group_by_family(specs: Iterable[FeatureSpec]) -> Dict[str, Tuple[str, ...]]:
    """``{family: (tags...)}`` preserving registry order."""
    groups: Dict[str, List[str]] = {}
    for spec in specs:
        groups.setdefault(spec.family, []).append(spec.tag)
    return {family: tuple(tags) for family, tags in groups.items()}
