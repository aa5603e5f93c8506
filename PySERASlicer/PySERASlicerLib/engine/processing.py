"""The IBSI image-processing chain (IBSI 1, chapter 2): from an image and an ROI mask to a
:class:`~PySERASlicerLib.engine.context.RoiContext`.

Order: crop around the ROI -> interpolate image and ROI -> round intensities -> binarise the
ROI (partial-volume threshold) -> re-segment the intensity mask -> (discretise on demand).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from ..image import Image
from ..settings import DiscretisationMethod, DiscretisationSettings, ResegmentationSettings, Settings
from .context import RoiContext


def bounding_box(mask: np.ndarray, margin: Tuple[int, int, int] = (0, 0, 0)) -> Tuple[slice, slice, slice]:
    """Slices (k, j, i) of the mask's bounding box grown by ``margin`` voxels, clipped to the array."""
    if not mask.any():
        raise ValueError("empty ROI mask")
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        lo = max(int(present[0]) - margin[axis], 0)
        hi = min(int(present[-1]) + 1 + margin[axis], mask.shape[axis])
        box.append(slice(lo, hi))
    return tuple(box)


def crop(image: Image, box: Tuple[slice, slice, slice]) -> Image:
    """Sub-image with the origin moved to the first voxel of ``box`` (k, j, i slices)."""
    start_ijk = np.array([box[2].start, box[1].start, box[0].start], dtype=float)
    origin = np.asarray(image.origin) + image.direction @ (start_ijk * np.asarray(image.spacing))
    return image.with_array(image.array[box], origin=tuple(origin))


def resegment(image: np.ndarray, morph_mask: np.ndarray, settings: ResegmentationSettings) -> np.ndarray:
    """Intensity mask: the morphological mask restricted to the re-segmentation range and/or
    mean +/- 3 SD (population SD over the morphological mask); both = the intersection."""
    mask = morph_mask.copy()
    if settings.range_enabled:
        mask &= (image >= settings.range_lower) & (image <= settings.range_upper)
    if settings.outlier_filter:
        values = image[morph_mask]
        mu, sigma = values.mean(), values.std()
        mask &= (image >= mu - 3 * sigma) & (image <= mu + 3 * sigma)
    return mask


def discretise(image: np.ndarray, int_mask: np.ndarray, settings: DiscretisationSettings,
               resegmentation: ResegmentationSettings) -> Tuple[np.ndarray, int]:
    """Bins 1..n_g inside ``int_mask`` (0 outside) and the number of bins n_g (IBSI 2.7).

    FBS: ``floor((x - x_min) / w) + 1`` with x_min the lower re-segmentation bound when a range
    is set, else the ROI minimum. FBN: ``floor(N (x - min) / (max - min)) + 1``, max in bin N.
    NONE: intensities are already bin numbers (rounded to integers); n_g = the ROI maximum.
    """
    values = image[int_mask]
    q = np.zeros(image.shape, dtype=np.int32)
    if values.size == 0:
        return q, 0
    method = settings.method
    if method == DiscretisationMethod.FBS:
        x_min = resegmentation.range_lower if resegmentation.range_enabled else values.min()
        bins = np.floor((values - x_min) / settings.bin_width).astype(np.int64) + 1
        bins = np.maximum(bins, 1)
        n_g = int(bins.max())
        if resegmentation.range_enabled:
            n_g = max(n_g, int(np.floor((resegmentation.range_upper - x_min) / settings.bin_width)) + 1)
    elif method == DiscretisationMethod.FBN:
        lo, hi = values.min(), values.max()
        n_g = settings.bin_number
        if hi > lo:
            bins = np.floor(n_g * (values - lo) / (hi - lo)).astype(np.int64) + 1
            bins = np.minimum(bins, n_g)
        else:
            bins = np.ones(values.shape, dtype=np.int64)
    else:
        bins = np.rint(values).astype(np.int64)
        if bins.min() < 1:
            raise ValueError("discretisation NONE needs intensities >= 1 (they are used as bin numbers)")
        n_g = int(bins.max())
    q[int_mask] = bins
    return q, n_g


def prepare_roi(image: Image, roi_mask: np.ndarray, settings: Settings) -> RoiContext:
    """Run the IBSI processing chain for one ROI and return its context."""
    roi_mask = np.asarray(roi_mask).astype(bool)
    if roi_mask.shape != image.array.shape:
        raise ValueError(f"ROI mask shape {roi_mask.shape} differs from image shape {image.array.shape}")
    box = bounding_box(roi_mask, margin=(1, 1, 1))
    cropped = crop(image, box)
    array = cropped.array.astype(np.float64)
    if settings.resampling.round_intensities:
        array = np.rint(array)
    processed = cropped.with_array(array)
    morph_mask = roi_mask[box]
    int_mask = resegment(array, morph_mask, settings.resegmentation)
    return RoiContext(processed, morph_mask, int_mask, settings)
