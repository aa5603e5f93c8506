"""Bounding box of a mask: the crop that every processing stage and family shares."""

from __future__ import annotations

from typing import Tuple

import numpy as np


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
