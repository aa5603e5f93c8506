"""IBSI diagnostic features (IBSI 1, reference data sets: "diagnostic features").

They describe the image and the ROI masks after each processing stage, so that a wrong
processing step shows up before the features do. Stages: ``init`` (as loaded, whole image),
``interp`` (after interpolation and rounding; equal to ``init`` without interpolation),
``init_roi`` / ``interp_roi`` (intensity mask = morphological mask) and ``reseg_roi``
(intensity mask after re-segmentation, morphological mask unchanged). Dimensions are voxel
counts along x (i), y (j), z (k); bounding boxes are those of the mask; intensities are the
mean, minimum and maximum inside the intensity mask (or the whole image for ``*_img``).

The values are collected by :func:`PySERASlicerLib.engine.processing.prepare_roi` into
``ctx.diagnostics``; the whole-image intensity statistics are computed only when requested.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

from ..context import RoiContext
from ..processing import image_diagnostics
from ..registry import volume_specs

FAMILY = "diag"

_AXES = ("x", "y", "z")


def _rows() -> List[Tuple[str, str, str]]:
    rows: List[Tuple[str, str, str]] = []
    for stage, title in (("init", "initial image"), ("interp", "interpolated image")):
        rows += [(f"img_dim_{a}_{stage}_img", f"Image dimension {a} ({title})", "") for a in _AXES]
        rows += [(f"vox_dim_{a}_{stage}_img", f"Voxel dimension {a} ({title})", "") for a in _AXES]
        rows += [(f"{s}_int_{stage}_img", f"{n} intensity ({title})", "")
                 for s, n in (("mean", "Mean"), ("min", "Minimum"), ("max", "Maximum"))]
    for stage, title in (("init", "initial ROI"), ("interp", "interpolated ROI"), ("reseg", "resegmented ROI")):
        rows += [(f"int_mask_dim_{a}_{stage}_roi", f"Int. mask dimension {a} ({title})", "") for a in _AXES]
        rows += [(f"int_mask_bb_dim_{a}_{stage}_roi", f"Int. mask bounding box dimension {a} ({title})", "")
                 for a in _AXES]
        rows += [(f"morph_mask_bb_dim_{a}_{stage}_roi", f"Morph. mask bounding box dimension {a} ({title})", "")
                 for a in _AXES]
        rows += [(f"int_mask_vox_count_{stage}_roi", f"Int. mask voxel count ({title})", ""),
                 (f"morph_mask_vox_count_{stage}_roi", f"Morph. mask voxel count ({title})", "")]
        rows += [(f"int_mask_{s}_int_{stage}_roi", f"Int. mask {n} intensity ({title})", "")
                 for s, n in (("mean", "mean"), ("min", "minimum"), ("max", "maximum"))]
    return rows


ROWS = tuple(_rows())
SPECS = volume_specs(FAMILY, ROWS)


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested diagnostics of the ROI (see the module docstring)."""
    wanted = list(tags)
    for stage in ("init", "interp"):  # whole-image statistics only when asked for
        if any(tag.endswith(f"_int_{stage}_img") for tag in wanted):
            image_diagnostics(ctx, stage)
    return {tag: float(ctx.diagnostics[tag]) for tag in wanted}
