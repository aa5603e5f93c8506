"""Bounding box of a mask: the crop that ROI discovery, every processing stage and family share."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

#: Slices (k, j, i) of a box on the image grid.
Box = Tuple[slice, slice, slice]


def nonzero_box(array: np.ndarray) -> Optional[Box]:
    """Bounding box (k, j, i slices) of the non-zero voxels, or None when there are none.

    Two passes over the grid, the second only over the slices that hold any (reductions along
    the contiguous k-slices and across them; reducing over two non-contiguous axes at a time
    costs several times more): each later step of ROI discovery then reads the box alone."""
    n_k = array.shape[0]
    slices = np.flatnonzero(array.reshape(n_k, -1).any(axis=1))
    if slices.size == 0:
        return None
    k = slice(int(slices[0]), int(slices[-1]) + 1)
    plane = array[k].any(axis=0)
    rows, columns = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    return k, slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1)


def bounding_box(mask: np.ndarray, margin: Tuple[int, int, int] = (0, 0, 0)) -> Box:
    """Slices (k, j, i) of the mask's bounding box grown by ``margin`` voxels, clipped to the array."""
    mask = np.asarray(mask)
    box = nonzero_box(mask)
    if box is None:
        raise ValueError("empty ROI mask")
    return tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(box, margin, mask.shape))
