"""Put sorted DICOM slices on a regular, orthogonal grid, or refuse with the reason.

A volume on an :class:`~PySERASlicerLib.image.Image` grid has its slice ``k`` at
``origin + k * spacing_k * normal``. Real series break that in two ways:

* **Gantry tilt** (CT acquired with a tilted gantry, some MR): slice positions are not along
  the slice normal; each slice is shifted in its plane. Like Slicer's "acquisition geometry
  regularization" (``DICOMScalarVolumePlugin``: slice corners from DICOM vs. from the regular
  grid, error above 1e-3 mm -> grid transform, hardened = resampled), each slice is resampled
  in its own plane onto an orthogonal grid that covers every slice (linear interpolation for
  intensities, nearest neighbour for labels; uncovered voxels get the image minimum). Slices
  are not moved along the normal, so nothing is interpolated between slices.
* **Missing slices** (a gap in the positions, e.g. a file lost in a PACS export) or otherwise
  uneven spacing: by default the case is refused with the gap's position and size, as features
  on a uniform grid would put every slice after the gap at the wrong place. With
  ``missing_slices="interpolate"`` the slices are resampled along the normal onto the median
  spacing (linear between the two neighbouring slices; nearest for labels).

Both are reported (warnings for the Report) with what was done.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from .conversion import warn as _warn
from .types import InputError

#: Slice positions within this fraction of the slice spacing of one uniform grid are rounding
#: (positions written to 0.1 mm, say), not missing slices; a gap is off by half a slice or more.
ROUNDING_TOLERANCE = 0.1
#: Below this in-plane shift (mm, or 1 % of a pixel if larger) slice positions count as along the
#: normal; it absorbs the rounding of positions written as decimal strings.
TILT_TOLERANCE_MM = 1e-3


def _spacing_is_uniform(steps: np.ndarray, nominal: float) -> bool:
    return bool(np.max(np.abs(steps - nominal)) <= 0.01 * nominal + 1e-3)


def _gap_sentences(distances: np.ndarray, names: Sequence[str], nominal: float) -> List[str]:
    steps = np.diff(distances)
    sentences = []
    for index in np.flatnonzero(np.abs(steps - nominal) > 0.01 * nominal + 1e-3):
        step = float(steps[index])
        missing = int(round(step / nominal)) - 1
        what = f"{missing} missing slice(s)?" if missing >= 1 and abs(step - (missing + 1) * nominal) < 0.1 * nominal \
            else "uneven spacing"
        sentences.append(f"{step:.4g} mm instead of {nominal:.4g} mm between slice positions {distances[index]:.4g} "
                         f"and {distances[index + 1]:.4g} mm along the slice normal ({names[index]} -> "
                         f"{names[index + 1]}; {what})")
    return sentences


def _tilt_angle(offsets_mm: np.ndarray, distances: np.ndarray) -> float:
    """Angle (degrees) between the slice normal and the line the slice origins run along."""
    span = distances[-1] - distances[0]
    if span <= 0:
        return 0.0
    drift = np.linalg.norm(offsets_mm[-1] - offsets_mm[0]) / span
    return float(np.degrees(np.arctan(drift)))


def _shift_in_plane(array: np.ndarray, offsets_px: np.ndarray, order: int, fill: float):
    """Resample each slice ``k`` shifted by ``offsets_px[k]`` = (i, j) pixels onto one grid
    covering all; returns (array, (i, j) index of the new grid's first voxel in slice 0)."""
    from scipy.ndimage import affine_transform

    low = np.floor(offsets_px.min(axis=0) + 1e-6).astype(int)
    high = np.ceil(offsets_px.max(axis=0) - 1e-6).astype(int)
    rows = array.shape[1] + int(high[1] - low[1])
    columns = array.shape[2] + int(high[0] - low[0])
    out_dtype = array.dtype if order == 0 else np.float64
    out = np.empty((array.shape[0], rows, columns), dtype=out_dtype)
    for k in range(array.shape[0]):  # one 2D resampling per slice (vectorised within the slice)
        # output pixel (j, i) lies at slice-0 pixel (j + low_j, i + low_i) = slice-k pixel minus its offset
        offset = (low[1] - offsets_px[k, 1], low[0] - offsets_px[k, 0])
        out[k] = affine_transform(array[k].astype(out_dtype, copy=False), np.eye(2), offset=offset,
                                  output_shape=(rows, columns), order=order, mode="constant", cval=fill,
                                  prefilter=False)
    return out, low


def _resample_along_normal(array: np.ndarray, distances: np.ndarray, targets: np.ndarray, order: int):
    upper = np.clip(np.searchsorted(distances, targets), 1, len(distances) - 1)
    lower = upper - 1
    weight = (targets - distances[lower]) / (distances[upper] - distances[lower])
    if order == 0:
        nearest = np.where(weight < 0.5, lower, upper)
        return array[nearest]
    weight = np.clip(weight, 0.0, 1.0)[:, None, None]
    return array[lower] * (1.0 - weight) + array[upper] * weight


def regular_grid(array: np.ndarray, positions: np.ndarray, names: Sequence[str], row: np.ndarray,
                 column: np.ndarray, pixel_spacing: Tuple[float, float], where: str, gantry_tilt: str = "regularize",
                 missing_slices: str = "error", labels: bool = False, tilt_tag: Optional[float] = None,
                 warnings: Optional[List[str]] = None):
    """Sorted slices (``array`` (k, j, i), their ``positions`` (k, 3) in LPS) -> (array, origin,
    slice spacing) on a grid with direction (row, column, row x column).

    ``pixel_spacing`` is DICOM's (between rows, between columns). ``labels`` selects nearest
    neighbour instead of linear interpolation. ``gantry_tilt`` is "regularize" or "error",
    ``missing_slices`` "error" or "interpolate".
    """
    normal = np.cross(row, column)
    distances = positions @ normal
    spacing_i, spacing_j = float(pixel_spacing[1]), float(pixel_spacing[0])
    order = 0 if labels else 1
    origin = positions[0].astype(float)
    if len(distances) > 1:
        steps = np.diff(distances)
        if np.min(steps) <= 1e-6:
            raise InputError(f"{where}: two slices share one position ({names[int(np.argmin(steps))]}, "
                             f"{names[int(np.argmin(steps)) + 1]}); cannot build a volume")
        offsets_mm = np.column_stack([(positions - positions[0]) @ row, (positions - positions[0]) @ column])
        shift = float(np.max(np.abs(offsets_mm)))
        if shift > max(TILT_TOLERANCE_MM, 0.01 * min(spacing_i, spacing_j)):
            angle = _tilt_angle(offsets_mm, distances)
            tag = f"; GantryDetectorTilt says {tilt_tag:g} deg" if tilt_tag is not None else ""
            what = (f"gantry tilt: slice positions are not along the slice normal (about {angle:.3g} deg{tag}; "
                    f"the slices are shifted in-plane by up to {shift:.4g} mm)")
            if str(gantry_tilt) != "regularize":
                raise InputError(f"{where}: {what}; refused because dicom.gantry_tilt is 'error' (set it to "
                                 "'regularize' to resample onto an orthogonal grid)")
            fill = 0 if labels else float(array.min())
            array, low = _shift_in_plane(array, offsets_mm / [spacing_i, spacing_j], order, fill)
            origin = origin + row * spacing_i * low[0] + column * spacing_j * low[1]
            _warn(warnings, f"{where}: {what}; resampled each slice in its plane onto an orthogonal grid "
                            f"({'nearest neighbour' if labels else 'linear'}, grid {array.shape[2]} x "
                            f"{array.shape[1]} pixels, uncovered voxels = {fill:g}), like Slicer's acquisition "
                            "geometry regularization")
        nominal = float(np.median(steps))
        index = np.arange(len(distances))
        fitted_step, fitted_start = np.polyfit(index, distances, 1)
        off_grid = float(np.max(np.abs(distances - (fitted_start + fitted_step * index))))
        if not _spacing_is_uniform(steps, nominal) and off_grid <= ROUNDING_TOLERANCE * fitted_step:
            # every slice within a small fraction of a slice of one uniform grid: rounded positions
            # (e.g. to 0.1 mm), not a gap; the fitted spacing places each slice best
            nominal = float(fitted_step)
            _warn(warnings, f"{where}: slice positions deviate by up to {off_grid:.3g} mm from a uniform grid "
                            f"(steps {steps.min():.4g} to {steps.max():.4g} mm; rounded positions?); read with the "
                            f"fitted spacing {nominal:.5g} mm")
        elif not _spacing_is_uniform(steps, nominal):
            gaps = _gap_sentences(distances, names, nominal)
            if str(missing_slices) != "interpolate":
                raise InputError(f"{where}: slice spacing is not uniform: {'; '.join(gaps)}. Refused because "
                                 "dicom.missing_slices is 'error' (set it to 'interpolate' to fill the gap)")
            count = int(round((distances[-1] - distances[0]) / nominal))
            targets = distances[0] + nominal * np.arange(count + 1)
            array = _resample_along_normal(array, distances, targets, order)
            _warn(warnings, f"{where}: slice spacing is not uniform: {'; '.join(gaps)}. Resampled along the "
                            f"normal onto {count + 1} slices {nominal:.4g} mm apart "
                            f"({'nearest slice' if labels else 'linear between neighbouring slices'}; "
                            "dicom.missing_slices = 'interpolate')")
            origin = origin + normal * (targets[0] - distances[0])
        return array, tuple(float(v) for v in origin), nominal
    return array, tuple(float(v) for v in origin), None

