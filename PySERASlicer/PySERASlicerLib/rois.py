"""ROI discovery: from a mask (label map or named structures) to the list of ROIs to extract.

Label maps: every non-zero label; each 26-connected component of a label is one ROI named
``label_<L>_lesion_<n>`` (n = 1 for the largest component), unless ``combine_rois`` keeps one
ROI per label (``label_<L>``). Named structures (RTSTRUCT, SEG, Slicer segments) are one ROI
each, named by the structure. Components smaller than ``min_roi_volume`` voxels are dropped
and reported. Selection keeps the ``roi_num`` largest ROIs per image (``per_Img``) or per label
(``per_region``).

Lesion aggregation (``aggregation_lesion``) turns the rows of several ROIs into one row per
image (``per_Img``) or per image and label (``per_region``); the rule for each feature is
decided by :func:`aggregation_rule` from the feature registry (see docs/parameters.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .engine.bounding_box import Box, nonzero_box
from .io.readers import InputError, MaskData
from .settings import RoiSelectionMode, RoiSettings

#: 26-connectivity in 3D.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass
class Roi:
    """One region to extract: name, its label (or structure name), its bool mask cropped to the
    ROI's bounding box ``box`` (slices on the image grid of shape ``grid_shape``) and its size.
    ``mask`` gives the mask on the whole grid (built on request: the engine takes ``box_mask``
    and ``box``)."""

    name: str
    label: str
    box_mask: np.ndarray
    voxel_count: int
    box: Box
    grid_shape: Tuple[int, int, int]

    @property
    def mask(self) -> np.ndarray:
        full = np.zeros(self.grid_shape, dtype=bool)
        full[self.box] = self.box_mask
        return full


@dataclass
class RoiDiscovery:
    rois: List[Roi]
    dropped: List[Tuple[str, int]]  # (name, voxel count) below min_roi_volume
    not_selected: List[Tuple[str, int]]  # beyond roi_num


def _label_text(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _label_values(labels: np.ndarray) -> np.ndarray:
    """The distinct non-zero values of a label array (one counting pass for small non-negative
    integer labels, the usual case; ``np.unique`` otherwise)."""
    if labels.dtype.kind in "ub" or (labels.dtype.kind == "i" and labels.min() >= 0):
        top = int(labels.max())
        if top < (1 << 16):
            return np.flatnonzero(np.bincount(labels.ravel(), minlength=1)[1:]) + 1
    values = np.unique(labels)
    return values[values != 0]


def _offset(outer: Box, inner: Box) -> Box:
    """``inner`` (relative to the box ``outer``) as slices of the grid."""
    return tuple(slice(o.start + i.start, o.start + i.stop) for o, i in zip(outer, inner))


def _components(mask: np.ndarray, box: Box, label: str, settings: RoiSettings,
                grid_shape: Tuple[int, int, int]) -> List[Roi]:
    """ROIs of one label whose voxels ``mask`` holds inside ``box`` (26-connected components,
    largest first, or the label whole with ``combine_rois``)."""
    from scipy import ndimage

    if settings.combine_rois:
        inner = nonzero_box(mask)
        return [Roi(f"label_{label}", label, mask[inner], int(np.count_nonzero(mask)), _offset(box, inner),
                    grid_shape)]
    components, count = ndimage.label(mask, structure=CONNECTIVITY_26)
    if count == 0:
        return []
    sizes = np.bincount(components.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")
    boxes = ndimage.find_objects(components)
    rois = []
    for rank, index in enumerate(order, start=1):
        inner = boxes[index]
        component = mask[inner] if count == 1 else components[inner] == index + 1
        rois.append(Roi(f"label_{label}_lesion_{rank}", label, component, int(sizes[index]), _offset(box, inner),
                        grid_shape))
    return rois


def _restrict(mask_data: MaskData, roi_label: str) -> MaskData:
    """Keep only the label (label maps: the integer value) or structure (by name) ``roi_label``."""
    wanted = str(roi_label).strip()
    named = {name: mask for name, mask in mask_data.named.items() if name == wanted}
    if not named:
        named = {name: mask for name, mask in mask_data.named.items() if name.lower() == wanted.lower()}
    labels = None
    if mask_data.labels is not None:
        try:
            value = float(wanted)
        except ValueError:
            value = None
        if value is not None and np.any(mask_data.labels == value):
            labels = np.where(mask_data.labels == value, mask_data.labels, 0)
    if labels is None and not named:
        present = [] if mask_data.labels is None else [_label_text(v) for v in np.unique(mask_data.labels) if v != 0]
        present += list(mask_data.named)
        raise InputError(f"roi_label {wanted!r} is not in the mask; labels/structures present: "
                         f"{', '.join(present) or 'none'}")
    return MaskData(labels=labels, named=named)


def discover_rois(mask_data: MaskData, settings: RoiSettings, roi_label: Optional[str] = None) -> RoiDiscovery:
    """All ROIs of a mask, filtered by size and selected per the settings; ``roi_label``
    restricts the search to one label value or structure name. Only the bounding box of the
    mask's non-zero voxels is read after one scan of the grid."""
    if roi_label not in (None, ""):
        mask_data = _restrict(mask_data, roi_label)
    candidates: List[Roi] = []
    if mask_data.labels is not None:
        labels = mask_data.labels
        box = nonzero_box(labels)
        if box is not None:
            cropped = labels[box]
            for value in _label_values(cropped):
                candidates.extend(_components(cropped == value, box, _label_text(value), settings, labels.shape))
    for name, mask in mask_data.named.items():
        mask = np.asarray(mask)
        box = nonzero_box(mask)
        if box is None:
            candidates.append(Roi(name, name, np.zeros((0, 0, 0), dtype=bool), 0, (slice(0, 0),) * 3, mask.shape))
            continue
        box_mask = mask[box].astype(bool, copy=False)
        candidates.append(Roi(name, name, box_mask, int(np.count_nonzero(box_mask)), box, mask.shape))

    dropped = [(r.name, r.voxel_count) for r in candidates if r.voxel_count < settings.min_roi_volume]
    kept = [r for r in candidates if r.voxel_count >= settings.min_roi_volume and r.voxel_count > 0]
    if settings.selection_mode == RoiSelectionMode.PER_IMAGE:
        ranked = sorted(kept, key=lambda r: -r.voxel_count)
        selected = ranked[: settings.roi_num]
    else:
        selected = []
        for label in dict.fromkeys(r.label for r in kept):
            group = sorted((r for r in kept if r.label == label), key=lambda r: -r.voxel_count)
            selected.extend(group[: settings.roi_num])
    chosen = {id(r) for r in selected}
    not_selected = [(r.name, r.voxel_count) for r in kept if id(r) not in chosen]
    # Keep discovery order (label, then lesion rank) for stable output.
    return RoiDiscovery([r for r in kept if id(r) in chosen], dropped, not_selected)


# ---------------------------------------------------------------------------------------------
# Lesion aggregation
# ---------------------------------------------------------------------------------------------
#: Extensive ("size") features: the value of the union of disjoint lesions is the sum.
SUMMED_TAGS = frozenset({
    "morph_volume",  # [RNU0] mesh volume
    "morph_vol_approx",  # [YEKZ] voxel-counting volume
    "morph_area_mesh",  # [C0JK] surface area
    "morph_integ_int",  # [99N0] integrated intensity = volume x mean
    "stat_energy",  # [N8CA] sum of squared intensities
})
#: Rule names.
SUM, LARGEST, WEIGHTED_MEAN, MEAN = "sum", "largest", "weighted_mean", "mean"


def aggregation_rule(tag: str) -> str:
    """How ``aggregation_lesion`` combines one feature over lesions.

    * ``largest``: diagnostics (family ``diag``) describe the processing of one ROI; the values
      of the largest lesion (most voxels) are reported.
    * ``sum``: size features (:data:`SUMMED_TAGS`: volumes, surface area, integrated intensity,
      energy) and voxel counts (tags containing ``vox_count``) add up over disjoint lesions.
    * ``weighted_mean``: every other feature, weighted by each lesion's voxel count.
    """
    from .engine.registry import specs_by_tag

    spec = specs_by_tag().get(tag)
    family = spec.family if spec is not None else ""
    if family == "diag":
        return LARGEST
    if tag in SUMMED_TAGS or "vox_count" in tag:
        return SUM
    return WEIGHTED_MEAN


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def aggregate_rows(rows: Sequence[Dict[str, Any]], voxel_counts: Sequence[int], name: str,
                   deep: bool = False) -> Dict[str, Any]:
    """One row from the rows of several lesions (``PatientID`` taken from the first row).

    Missing values (NaN, infinities, non-numbers) are left out of every rule; a feature missing
    in all lesions stays NaN. ``deep``: deep features are plain means (PySERA).
    """
    weights = np.asarray(voxel_counts, dtype=np.float64)
    largest = int(np.argmax(weights))
    out: Dict[str, Any] = {"PatientID": rows[0]["PatientID"], "ROI": name}
    keys: List[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in out and k not in keys)
    for key in keys:
        rule = MEAN if deep else aggregation_rule(key)
        if rule == LARGEST:
            out[key] = rows[largest].get(key, float("nan"))
            continue
        values = [_number(row.get(key)) for row in rows]
        present = [(v, w) for v, w in zip(values, weights) if v is not None]
        if not present:
            out[key] = float("nan")
        elif rule == SUM:
            out[key] = float(sum(v for v, _ in present))
        elif rule == MEAN:
            out[key] = float(np.mean([v for v, _ in present]))
        else:
            v, w = np.array(present).T
            out[key] = float(np.dot(v, w) / w.sum()) if w.sum() > 0 else float(np.mean(v))
    return out


def aggregate_lesions(rows: Sequence[Dict[str, Any]], rois: Sequence[Dict[str, Any]], per_region: bool,
                      deep: bool = False) -> List[Dict[str, Any]]:
    """Rows of one case -> one row (``per_Img``: ROI ``all_rois_aggregated``) or one row per
    label (``per_region``: ROI ``label_<L>_aggregated`` / ``<structure>_aggregated``).
    ``rois`` holds ``{"label", "voxels"}`` for each row, in the same order."""
    groups: Dict[str, List[int]] = {}
    for index, meta in enumerate(rois):
        key = str(meta["label"]) if per_region else ""
        groups.setdefault(key, []).append(index)
    out = []
    for key, members in groups.items():
        if per_region:
            name = (f"label_{key}" if key.replace(".", "", 1).lstrip("-").isdigit() else key) + "_aggregated"
        else:
            name = "all_rois_aggregated"
        out.append(aggregate_rows([rows[i] for i in members], [rois[i]["voxels"] for i in members], name, deep))
    return out
