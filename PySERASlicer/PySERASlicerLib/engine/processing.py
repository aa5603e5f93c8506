"""The IBSI image-processing chain (IBSI 1, chapter 2): from an image and an ROI mask to a
:class:`~PySERASlicerLib.engine.context.RoiContext`.

Order (IBSI 2.1): interpolate image and ROI (2.4) -> round intensities -> binarise the ROI with
the partial-volume threshold -> re-segment the intensity mask (2.5) -> discretise (2.7, on
demand, :func:`discretise`).

Cropping is only an optimisation and does not change any value:

* the interpolation grid is always the IBSI grid of the *full* image (grid centres aligned,
  IBSI 3WE3; ``n_new = ceil(n * s / s_new)``); only the part of it around the ROI is evaluated,
* the original image is cropped with a margin large enough for the interpolation kernel (and
  for the cubic-spline prefilter, whose influence decays as 0.268**d),
* the processed image keeps every voxel within the 1 cm^3 local-intensity sphere (radius
  6.2 mm) of the ROI, because local intensity peaks use image voxels outside the ROI.

Each stage writes the IBSI diagnostics (``img_dim_x_init_img`` ... ``int_mask_max_int_reseg_roi``)
into ``ctx.diagnostics``; the interpolated-image statistics need the whole image resampled and
are computed only when asked for (:func:`interpolated_image_statistics`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
from scipy import ndimage

from ..image import Image
from ..settings import (
    Interpolator,
    ResamplingSettings,
    ResegmentationSettings,
    Settings,
)
from .bounding_box import bounding_box, nonzero_box
from .context import RoiContext
from .discretisation import discretise, lloyd_max_thresholds  # noqa: F401  (re-exported)

#: Radius (mm) of the sphere with a volume of 1 cm^3 used by the local intensity peaks (IBSI 3.2).
PEAK_RADIUS_MM = (3000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)

#: scipy spline order of each interpolator.
_ORDER = {Interpolator.NEAREST: 0, Interpolator.LINEAR: 1, Interpolator.CUBIC: 3}
#: Reach of each interpolator (in input voxels) beyond which the input cannot matter. For the
#: cubic spline the prefilter is global but decays as 0.268**d: 16 voxels keep the error < 1e-9.
_KERNEL_REACH = {0: 1, 1: 1, 3: 18}
#: Distance (input voxels) from the ROI beyond which an interpolated ROI value cannot reach the
#: partial-volume threshold.
_ROI_SUPPORT = {0: 0.5, 1: 1.0, 3: 3.0}

_AXES = ("x", "y", "z")


# ---------------------------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------------------------
def crop(image: Image, box: Tuple[slice, slice, slice]) -> Image:
    """Sub-image with the origin moved to the first voxel of ``box`` (k, j, i slices)."""
    start_ijk = np.array([box[2].start, box[1].start, box[0].start], dtype=float)
    origin = np.asarray(image.origin) + image.direction @ (start_ijk * np.asarray(image.spacing))
    return image.with_array(image.array[box], origin=tuple(origin))


@dataclass(frozen=True)
class Grid:
    """The IBSI resampling grid of a whole image, per (i, j, k) axis.

    size : new number of voxels; spacing : new voxel size (mm);
    start : position of new voxel 0 in old index units; step : new spacing / old spacing.
    New voxel ``m`` samples the old image at index ``start + m * step``.
    """

    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    start: Tuple[float, float, float]
    step: Tuple[float, float, float]

    @property
    def is_identity(self) -> bool:
        return all(s == 1.0 for s in self.step) and all(s == 0.0 for s in self.start)


def resampling_grid(size_ijk, spacing_ijk, settings: ResamplingSettings) -> Grid:
    """IBSI interpolation grid with aligned grid centres (IBSI 3WE3).

    Per resampled axis: ``n_new = ceil(n * s / s_new)``; the first new voxel sits at old index
    ``0.5 * (n - 1 - (s_new / s) * (n_new - 1))``. 3D resampling uses the isotropic
    ``voxel_size_mm``; in-plane resampling (``in_plane_only``) resamples i, j to
    ``voxel_size_2d_mm`` and keeps the slices.
    """
    size_ijk = tuple(int(n) for n in size_ijk)
    spacing_ijk = tuple(float(s) for s in spacing_ijk)
    if not settings.enabled:
        return Grid(size_ijk, spacing_ijk, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    if settings.in_plane_only:
        targets = (settings.voxel_size_2d_mm, settings.voxel_size_2d_mm, spacing_ijk[2])
    else:
        targets = (settings.voxel_size_mm,) * 3
    sizes, starts, steps = [], [], []
    for n, s, s_new in zip(size_ijk, spacing_ijk, targets):
        # Round away float noise before ceil: 60 * 3.0 / 2.0 must give 90, not 91.
        n_new = max(int(math.ceil(round(n * s / s_new, 6))), 1)
        step = s_new / s
        sizes.append(n_new)
        steps.append(step)
        starts.append(0.5 * (n - 1 - step * (n_new - 1)))
    return Grid(tuple(sizes), tuple(float(t) for t in targets), tuple(starts), tuple(steps))


def _peak_margin(spacing_ijk) -> Tuple[int, int, int]:
    """Voxels (i, j, k) needed around the ROI so that every 1 cm^3 sphere is complete."""
    return tuple(int(math.ceil(PEAK_RADIUS_MM / s)) + 1 for s in spacing_ijk)


def _axis_positions(grid: Grid, axis: int, first: int, last: int, offset: int = 0) -> np.ndarray:
    """Old-index positions of new voxels ``first..last`` along ``axis`` (i=0), minus ``offset``.

    Computed as ``start + m * step`` and only then shifted by the integer crop offset (an exact
    float operation), so a cropped evaluation samples bit-identical positions to the full grid.
    """
    return (grid.start[axis] + np.arange(first, last + 1) * grid.step[axis]) - offset


def _interpolate(array: np.ndarray, positions_kji, order: int) -> np.ndarray:
    """``scipy.ndimage.map_coordinates(array, grid, order, mode="nearest", prefilter=order > 1)``
    on the separable grid given by one position vector per axis (k, j, i)."""
    coordinates = np.meshgrid(*positions_kji, indexing="ij", copy=False)
    return ndimage.map_coordinates(array, coordinates, order=order, mode="nearest", prefilter=order > 1)


# ---------------------------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------------------------
def _image_diagnostics(out: Dict[str, float], stage: str, size_ijk, spacing_ijk) -> None:
    for axis, n, s in zip(_AXES, size_ijk, spacing_ijk):
        out[f"img_dim_{axis}_{stage}_img"] = float(n)
        out[f"vox_dim_{axis}_{stage}_img"] = float(s)


def _intensity_diagnostics(out: Dict[str, float], prefix: str, values: np.ndarray) -> None:
    if values.size:
        out[f"{prefix}mean_int_"], out[f"{prefix}min_int_"], out[f"{prefix}max_int_"] = (
            float(values.mean(dtype=np.float64)), float(values.min()), float(values.max())
        )
    else:
        out[f"{prefix}mean_int_"] = out[f"{prefix}min_int_"] = out[f"{prefix}max_int_"] = float("nan")


def _bb_dims_ijk(mask: np.ndarray) -> Tuple[float, float, float]:
    box = nonzero_box(mask)
    if box is None:
        return (0.0, 0.0, 0.0)
    return tuple(float(box[axis].stop - box[axis].start) for axis in (2, 1, 0))


def _roi_diagnostics(out: Dict[str, float], stage: str, grid_size_ijk, int_mask: np.ndarray,
                     morph_mask: np.ndarray, int_values: np.ndarray) -> None:
    """IBSI ROI diagnostics of one stage (masks may be cropped: sizes refer to the full grid)."""
    same = int_mask is morph_mask  # before re-segmentation: one mask, measured once
    int_bb = _bb_dims_ijk(int_mask)
    morph_bb = int_bb if same else _bb_dims_ijk(morph_mask)
    for index, axis in enumerate(_AXES):
        out[f"int_mask_dim_{axis}_{stage}_roi"] = float(grid_size_ijk[index])
        out[f"int_mask_bb_dim_{axis}_{stage}_roi"] = int_bb[index]
        out[f"morph_mask_bb_dim_{axis}_{stage}_roi"] = morph_bb[index]
    out[f"int_mask_vox_count_{stage}_roi"] = float(np.count_nonzero(int_mask))
    out[f"morph_mask_vox_count_{stage}_roi"] = (out[f"int_mask_vox_count_{stage}_roi"] if same
                                                 else float(np.count_nonzero(morph_mask)))
    tmp: Dict[str, float] = {}
    _intensity_diagnostics(tmp, "", int_values)
    for key, value in tmp.items():
        out[f"int_mask_{key}{stage}_roi"] = value


def interpolated_image_statistics(image: Image, settings: ResamplingSettings) -> Dict[str, float]:
    """``mean/min/max_int_interp_img``: statistics of the whole image after interpolation and
    rounding (costly for large images, so computed only when a diagnostic asks for them)."""
    grid = resampling_grid(image.size_ijk, image.spacing, settings)
    if grid.is_identity:
        array = image.array.astype(np.float64)
    else:
        positions = [_axis_positions(grid, axis, 0, grid.size[axis] - 1) for axis in (2, 1, 0)]
        array = _interpolate(image.array.astype(np.float64), positions, _ORDER[settings.image_interpolator])
    if settings.round_intensities:
        array = np.rint(array)
    out: Dict[str, float] = {}
    _intensity_diagnostics(out, "", array.ravel())
    return {f"{key}interp_img": value for key, value in out.items()}


# ---------------------------------------------------------------------------------------------
# Re-segmentation and discretisation
# ---------------------------------------------------------------------------------------------
def resegmentation_interval(values: np.ndarray, settings: ResegmentationSettings) -> Tuple[float, float]:
    """Kept closed interval [lo, hi] (IBSI 2.5): the range, mean +/- 3 SD, or their intersection.

    ``mu`` and the population ``sigma`` are taken over all ``values`` (the whole interpolated ROI,
    before any range cut), as IBSI configuration E and MIRP do.
    """
    lo, hi = -np.inf, np.inf
    if settings.range_enabled:
        lo, hi = settings.range_lower, settings.range_upper
    if settings.outlier_filter and values.size:
        mu, sigma = float(values.mean()), float(values.std())
        lo, hi = max(lo, mu - 3.0 * sigma), min(hi, mu + 3.0 * sigma)
    return float(lo), float(hi)


def resegment(image: np.ndarray, morph_mask: np.ndarray, settings: ResegmentationSettings) -> np.ndarray:
    """Intensity mask: the morphological mask restricted to the re-segmentation interval
    (:func:`resegmentation_interval`); the morphological mask itself is never changed."""
    mask = morph_mask.copy()
    if not (settings.range_enabled or settings.outlier_filter):
        return mask
    lo, hi = resegmentation_interval(image[morph_mask], settings)
    mask &= (image >= lo) & (image <= hi)
    return mask


# ---------------------------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------------------------
def _window(lo_old: int, hi_old: int, grid_start: float, grid_step: float, n_new: int, reach: float,
            margin_new: int) -> Tuple[int, int]:
    """New-grid index range [m_lo, m_hi] whose samples can touch old indices [lo_old, hi_old]
    (+/- ``reach``), grown by ``margin_new`` new voxels and clipped to the grid."""
    m_lo = int(math.floor((lo_old - reach - grid_start) / grid_step)) - margin_new
    m_hi = int(math.ceil((hi_old + reach - grid_start) / grid_step)) + margin_new
    return max(m_lo, 0), min(m_hi, n_new - 1)


def prepare_roi(image: Image, roi_mask: np.ndarray, settings: Settings,
                margin_voxels: Tuple[int, int, int] = (0, 0, 0),
                box: Optional[Tuple[slice, slice, slice]] = None) -> RoiContext:
    """Run the IBSI processing chain for one ROI and return its context.

    Parameters
    ----------
    image : the full image (any dtype), geometry in LPS.
    roi_mask : ROI on the image grid (k, j, i); nonzero = inside. With ``box``: the ROI inside
        that box of the image grid only (shape of the box; every voxel outside is outside).
    settings : run settings (resampling, re-segmentation; discretisation happens on demand).
    margin_voxels : extra processed voxels (i, j, k, on the interpolation grid) to keep around the
        ROI, e.g. for a filter's reach (engine/filters/features.py); clipped to the grid.
    box : (k, j, i) slices of the image grid that ``roi_mask`` covers; nothing of the whole
        grid but the image itself is then read (ROI discovery hands over boxes).
    """
    roi_mask = np.asarray(roi_mask).astype(bool, copy=False)
    if box is None:
        if roi_mask.shape != image.array.shape:
            raise ValueError(f"ROI mask shape {roi_mask.shape} differs from image shape {image.array.shape}")
        box = tuple(slice(0, n) for n in roi_mask.shape)
    elif roi_mask.shape != tuple(b.stop - b.start for b in box) or any(
            b.start < 0 or b.stop > n for b, n in zip(box, image.array.shape)):
        raise ValueError(f"ROI mask shape {roi_mask.shape} does not fit the box {box} of the image "
                         f"(shape {image.array.shape})")
    resampling = settings.resampling
    diagnostics: Dict[str, float] = {}

    # -- initial image and ROI (full image, before any cropping) ---------------------------------
    _image_diagnostics(diagnostics, "init", image.size_ijk, image.spacing)
    inner = bounding_box(roi_mask)
    box_mask = roi_mask[inner]
    roi_box = tuple(slice(b.start + i.start, b.start + i.stop) for b, i in zip(box, inner))
    roi_values = image.array[roi_box][box_mask]
    _roi_diagnostics(diagnostics, "init", image.size_ijk, box_mask, box_mask, roi_values)

    # -- interpolation on the full image's IBSI grid, evaluated around the ROI only ------------
    grid = resampling_grid(image.size_ijk, image.spacing, resampling)
    _image_diagnostics(diagnostics, "interp", grid.size, grid.spacing)
    image_order = _ORDER[resampling.image_interpolator]
    roi_order = _ORDER[resampling.roi_interpolator]
    identity = grid.is_identity
    peak = tuple(p + int(m) for p, m in zip(_peak_margin(grid.spacing), margin_voxels))
    window_new, window_old = [], []
    for axis in range(3):  # i, j, k
        axis_box = roi_box[2 - axis]
        n_old = image.size_ijk[axis]
        reach = 0.0 if identity else _ROI_SUPPORT[roi_order]
        m_lo, m_hi = _window(axis_box.start, axis_box.stop - 1, grid.start[axis], grid.step[axis], grid.size[axis],
                             reach, peak[axis])
        pad = 0 if identity else max(_KERNEL_REACH[image_order], _KERNEL_REACH[roi_order])
        c_lo = max(int(math.floor(grid.start[axis] + m_lo * grid.step[axis])) - pad, 0)
        c_hi = min(int(math.ceil(grid.start[axis] + m_hi * grid.step[axis])) + pad, n_old - 1)
        window_new.append((m_lo, m_hi))
        window_old.append((c_lo, c_hi))
    old_box = tuple(slice(window_old[a][0], window_old[a][1] + 1) for a in (2, 1, 0))
    window_mask = np.zeros(tuple(b.stop - b.start for b in old_box), dtype=bool)
    window_mask[tuple(slice(r.start - o.start, r.stop - o.start) for r, o in zip(roi_box, old_box))] = box_mask
    if identity:
        array = image.array[old_box].astype(np.float64)
        morph_mask = window_mask
    else:
        positions = [_axis_positions(grid, a, window_new[a][0], window_new[a][1], window_old[a][0]) for a in (2, 1, 0)]
        array = _interpolate(image.array[old_box].astype(np.float64), positions, image_order)
        roi_values_new = _interpolate(window_mask.astype(np.float64), positions, roi_order)
        # Partial-volume threshold; rounding to 6 decimals keeps 0.49999999 from float error out.
        morph_mask = np.round(roi_values_new, 6) >= resampling.roi_partial_volume
    if resampling.round_intensities:
        array = np.rint(array)
    if not morph_mask.any():
        raise ValueError("the ROI is empty after interpolation (partial-volume threshold "
                         f"{resampling.roi_partial_volume})")
    _roi_diagnostics(diagnostics, "interp", grid.size, morph_mask, morph_mask, array[morph_mask])

    # -- re-segmentation: intensity mask only ----------------------------------------------------
    int_mask = resegment(array, morph_mask, settings.resegmentation)
    _roi_diagnostics(diagnostics, "reseg", grid.size, int_mask, morph_mask, array[int_mask])

    # -- keep the ROI plus the local-intensity-peak margin ---------------------------------------
    final = bounding_box(morph_mask, margin=(peak[2], peak[1], peak[0]))
    array, morph_mask, int_mask = array[final], morph_mask[final], int_mask[final]
    first_ijk = np.array([grid.start[a] + (window_new[a][0] + final[2 - a].start) * grid.step[a] for a in range(3)])
    origin = np.asarray(image.origin) + image.direction @ (first_ijk * np.asarray(image.spacing))
    processed = image.with_array(array, spacing=grid.spacing, origin=tuple(origin))

    ctx = RoiContext(processed, morph_mask, int_mask, settings, diagnostics=diagnostics)
    # whole-image statistics: one pass over the whole image each, only if a diagnostic asks
    ctx.cache()["image_statistics"] = (image, None if identity else resampling)
    if not identity:
        # stat_* may be asked for on the original grid (PySERA radiomics_isQuntzStat = 0)
        ctx.cache()["original_roi_intensities"] = roi_values
    return ctx


def image_diagnostics(ctx: RoiContext, stage: str) -> Dict[str, float]:
    """The whole-image ``*_int_<stage>_img`` diagnostics of a context (``stage``: ``init`` or
    ``interp``), computed on first request."""
    keys = tuple(f"{s}_int_{stage}_img" for s in ("mean", "min", "max"))
    if keys[0] not in ctx.diagnostics:
        image, resampling = ctx.cache()["image_statistics"]
        if stage == "init" or resampling is None:
            out: Dict[str, float] = {}
            _intensity_diagnostics(out, "", image.array.ravel())
            # without interpolation the interpolated image is the image
            for name in ("init", "interp") if resampling is None else ("init",):
                ctx.diagnostics.update({f"{key}{name}_img": value for key, value in out.items()})
        else:
            ctx.diagnostics.update(interpolated_image_statistics(image, resampling))
    return {key: ctx.diagnostics[key] for key in keys}
