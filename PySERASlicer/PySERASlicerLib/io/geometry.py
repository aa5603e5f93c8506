"""Placing one grid onto another by world coordinates (masks on other or cropped grids)."""

from __future__ import annotations

import numpy as np

from ..image import Image


def resample_labels_to(labels: Image, reference: Image) -> np.ndarray:
    """Nearest-neighbour resampling of a label image onto ``reference``'s grid (world/LPS
    coordinates); voxels outside the label image become 0. Also places cropped masks."""
    from scipy.ndimage import map_coordinates

    k, j, i = np.indices(reference.array.shape, dtype=np.float64)
    ref_affine = reference.index_to_world()
    world = ref_affine[:3, :3] @ np.stack([i.ravel(), j.ravel(), k.ravel()]) + ref_affine[:3, 3:4]
    src_affine = np.linalg.inv(labels.index_to_world())
    ijk = src_affine[:3, :3] @ world + src_affine[:3, 3:4]
    coords = np.stack([ijk[2], ijk[1], ijk[0]])  # to (k, j, i)
    out = map_coordinates(labels.array, coords, order=0, mode="constant", cval=0)
    return out.reshape(reference.array.shape)
