"""Features of filtered images (IBSI-2 phase 2 chain) for one ROI.

The chain: the IBSI-1 processing of the *unfiltered* image (interpolation, rounding, ROI
interpolation and re-segmentation, :func:`~PySERASlicerLib.engine.processing.prepare_roi`), then
each filter on the processed image, then the ``filter_categories`` families of the response map
inside the re-segmented intensity mask. The response map is never rounded or re-segmented.

Only the ROI's bounding box plus each filter's reach (:func:`filter_reach`) is processed and
filtered where that gives the same values as filtering the whole image: a voxel of the ROI then
reads only voxels that exist in the image, and where the box meets the image border the boundary
condition is applied at the same place. Filters applied in the Fourier domain over the whole
image (Simoncelli, Riesz) and filters with the periodic boundary (which wraps to the opposite side
of the image) see the whole processed image.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...image import Image
from ...settings import Settings
from ..context import RoiContext
from .common import odd_length
from .spec import FilterSpec, laws_components

#: Filter kinds applied by FFT over the whole image.
GLOBAL_KINDS = ("simoncelli", "riesz_log", "riesz_simoncelli")


def filter_reach(spec: FilterSpec, spacing_ijk: Sequence[float]) -> Optional[Tuple[int, int, int]]:
    """Voxels (i, j, k) a response-map voxel reads on each side, on a grid of ``spacing_ijk``;
    None when the filter reads the whole image."""
    kind = spec.kind
    if kind in GLOBAL_KINDS or spec["boundary"] == "periodic":
        return None  # a periodic boundary reads the opposite side of the whole image
    in_plane = spec["dimensions"] == "2D"
    if kind == "none":
        reach = [0.0, 0.0, 0.0]
    elif kind == "mean":
        reach = [spec["support"] // 2] * 3
    elif kind == "log":
        from .log import log_radius

        reach = [log_radius(spec["sigma_mm"] / s, spec["cutoff"]) for s in spacing_ijk]
    elif kind == "laws":
        half = max(int(name[1]) // 2 for name in laws_components(spec["kernel"]))
        reach = [half + (spec["energy_delta"] or 0)] * 3
    elif kind == "gabor":
        from .gabor import ENVELOPE_WIDTHS

        reach_mm = ENVELOPE_WIDTHS * spec["sigma_mm"] * max(1.0, 1.0 / spec["gamma"])
        reach = [int(np.ceil(reach_mm / s)) for s in spacing_ijk]
    else:  # wavelet
        from .wavelet import wavelet_filters

        half = (odd_length(wavelet_filters(spec["wavelet"])[0]).size - 1) // 2
        reach = [half * (2 ** spec["level"] - 1)] * 3
    if in_plane:
        reach[2] = 0
    return tuple(int(r) for r in reach)


def margin_for(specs: Sequence[FilterSpec], spacing_ijk: Sequence[float], size_ijk: Sequence[int]):
    """The largest reach of ``specs`` (i, j, k); the whole grid when one of them is global."""
    margin = [0, 0, 0]
    for spec in specs:
        reach = filter_reach(spec, spacing_ijk)
        if reach is None:
            return tuple(int(n) for n in size_ijk)
        margin = [max(m, r) for m, r in zip(margin, reach)]
    return tuple(margin)


def filtered_features(image: Image, roi_mask: np.ndarray, settings: Settings) -> Tuple[Dict[str, float], List[str]]:
    """``{<tag>_<label>: value}`` for every filter of ``settings`` (in their order) and every
    feature of its ``filter_categories``, plus the warnings raised. The processing chain runs at
    most twice: once around the ROI for the filters with a finite reach, once on the whole grid for
    the others."""
    from ..processing import prepare_roi, resampling_grid
    from ..registry import family_module, group_by_family, select
    from . import apply_filter

    if not settings.filters:
        return {}, []
    grid = resampling_grid(image.size_ijk, image.spacing, settings.resampling)
    local = [spec for spec in settings.filters if filter_reach(spec, grid.spacing) is not None]
    whole = [spec for spec in settings.filters if spec not in local]
    contexts = {}
    for specs in (local, whole):
        if specs:
            ctx = prepare_roi(image, roi_mask, settings, margin_voxels=margin_for(specs, grid.spacing, grid.size))
            contexts.update({spec.label: ctx for spec in specs})
    dimensions = tuple(sorted(set(settings.dimensions) | {"1st"}))
    groups = group_by_family(select(settings.filter_categories, dimensions))
    values: Dict[str, float] = {}
    warnings: List[str] = []
    for spec in settings.filters:
        ctx = contexts[spec.label]
        response = apply_filter(ctx.image, spec)
        filtered = RoiContext(response, ctx.morph_mask, ctx.int_mask, settings)
        for family, tags in groups.items():
            for tag, value in family_module(family).compute(filtered, tags).items():
                values[f"{tag}_{spec.label}"] = value
        warnings.extend(f"filter {spec.label}: {message}" for message in filtered.warnings)
    return values, warnings
