"""ROI discovery: from a mask (label map or named structures) to the list of ROIs to extract.

Label maps: every non-zero label; each 26-connected component of a label is one ROI named
``label_<L>_lesion_<n>`` (n = 1 for the largest component), unless ``combine_rois`` keeps one
ROI per label (``label_<L>``). Named structures (RTSTRUCT, SEG, Slicer segments) are one ROI
each, named by the structure. Components smaller than ``min_roi_volume`` voxels are dropped
and reported. Selection keeps the ``roi_num`` largest ROIs per image (``per_Img``) or per label
(``per_region``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
from scipy import ndimage

from .io.readers import MaskData
from .settings import RoiSelectionMode, RoiSettings

#: 26-connectivity in 3D.
CONNECTIVITY_26 = ndimage.generate_binary_structure(3, 3)


@dataclass
class Roi:
    """One region to extract: name, its label (or structure name) and its bool mask."""

    name: str
    label: str
    mask: np.ndarray
    voxel_count: int


@dataclass
class RoiDiscovery:
    rois: List[Roi]
    dropped: List[Tuple[str, int]]  # (name, voxel count) below min_roi_volume
    not_selected: List[Tuple[str, int]]  # beyond roi_num


def _label_text(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _components(mask: np.ndarray, label: str, settings: RoiSettings) -> List[Roi]:
    if settings.combine_rois:
        return [Roi(f"label_{label}", label, mask, int(mask.sum()))]
    components, count = ndimage.label(mask, structure=CONNECTIVITY_26)
    if count == 0:
        return []
    sizes = np.bincount(components.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")
    if count == 1:
        return [Roi(f"label_{label}_lesion_1", label, mask, int(sizes[0]))]
    # One pass over the bounding boxes instead of count full-volume comparisons.
    boxes = ndimage.find_objects(components)
    rois = []
    for rank, index in enumerate(order, start=1):
        component_mask = np.zeros(mask.shape, dtype=bool)
        box = boxes[index]
        component_mask[box] = components[box] == index + 1
        rois.append(Roi(f"label_{label}_lesion_{rank}", label, component_mask, int(sizes[index])))
    return rois


def discover_rois(mask_data: MaskData, settings: RoiSettings) -> RoiDiscovery:
    """All ROIs of a mask, filtered by size and selected per the settings."""
    candidates: List[Roi] = []
    if mask_data.labels is not None:
        labels = mask_data.labels
        for value in np.unique(labels):
            if value == 0:
                continue
            candidates.extend(_components(labels == value, _label_text(value), settings))
    for name, mask in mask_data.named.items():
        mask = np.asarray(mask, dtype=bool)
        candidates.append(Roi(name, name, mask, int(mask.sum())))

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
