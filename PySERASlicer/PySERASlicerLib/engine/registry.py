"""The feature registry: one :class:`FeatureSpec` per feature tag.

Every family module in :mod:`PySERASlicerLib.engine.features` declares

* ``FAMILY``: its PySERA category name (``"stat"``, ``"glcm"``, ...),
* ``SPECS``: a tuple of :class:`FeatureSpec` (full IBSI tags, in output order),
* ``compute(ctx, tags) -> dict[str, float]``: the values of the requested tags for one ROI
  (``ctx`` is a :class:`~PySERASlicerLib.engine.context.RoiContext`).

Selection (PySERA ``categories`` x ``dimensions``), column order, documentation and the
conformance tests are all derived from this registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Dict, Iterable, List, Sequence, Tuple

from ..settings import CATEGORIES, DIMENSIONS, parse_selection

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


def select(categories="all", dimensions="all") -> Tuple[FeatureSpec, ...]:
    """Features of the given PySERA categories and dimensions (strings or sequences)."""
    cats = set(parse_selection(categories, CATEGORIES, "categories"))
    dims = set(parse_selection(dimensions, DIMENSIONS, "dimensions"))
    return tuple(s for s in all_specs() if s.family in cats and s.dimension in dims)


def group_by_family(specs: Iterable[FeatureSpec]) -> Dict[str, Tuple[str, ...]]:
    """``{family: (tags...)}`` preserving registry order."""
    groups: Dict[str, List[str]] = {}
    for spec in specs:
        groups.setdefault(spec.family, []).append(spec.tag)
    return {family: tuple(tags) for family, tags in groups.items()}
