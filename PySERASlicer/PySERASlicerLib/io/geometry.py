"""Placing one grid onto another by world coordinates (masks on other or cropped grids).

Two cases, decided by :func:`place_labels`:

* **Crop** — the mask grid has the image's spacing and direction and its origin falls on an
  image voxel centre: the mask is a sub-block (or an overlapping block) of the image grid and
  is copied in exactly, without resampling ("repositioning", as pictologics calls it).
* **Other grid** — nearest-neighbour resampling: each image voxel centre takes the label of
  the mask voxel that contains it (0 outside the mask grid).

Mask voxels that fall outside the image are reported; a mask that does not overlap the image
at all is an error.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from ..image import Image


def _world_to_index(image: Image) -> np.ndarray:
    return np.linalg.inv(image.index_to_world())


def corner_indices(source: Image, target: Image) -> np.ndarray:
    """Continuous (i, j, k) indices in ``target`` of the 8 outer voxel-centre corners of ``source``."""
    size = np.array(source.size_ijk, dtype=float) - 1
    corners = np.array([[a, b, c] for a in (0, size[0]) for b in (0, size[1]) for c in (0, size[2])]).T
    affine = _world_to_index(target) @ source.index_to_world()
    return (affine[:3, :3] @ corners + affine[:3, 3:4]).T


def crop_offset(mask: Image, reference: Image, tolerance: float = 1e-3):
    """Integer (i, j, k) offset of ``mask`` voxel (0, 0, 0) in ``reference``, when the mask
    grid is a shifted copy of the reference grid (same spacing and direction); else None."""
    if not (np.allclose(mask.spacing, reference.spacing, rtol=tolerance, atol=tolerance)
            and np.allclose(mask.direction, reference.direction, atol=tolerance)):
        return None
    offset = _world_to_index(reference) @ np.append(np.asarray(mask.origin, dtype=float), 1.0)
    rounded = np.rint(offset[:3])
    # Offsets are in voxels; a small fraction of a voxel is rounding noise in the headers.
    if np.all(np.abs(offset[:3] - rounded) < 0.01):
        return rounded.astype(int)
    return None


def _paste(labels: np.ndarray, reference_shape: Tuple[int, int, int], offset_ijk: np.ndarray):
    """Copy ``labels`` (k, j, i) into a zero array of ``reference_shape`` at ``offset_ijk``;
    returns the array and the number of non-zero mask voxels that fell outside."""
    out = np.zeros(reference_shape, dtype=labels.dtype)
    offset_kji = offset_ijk[::-1]
    src, dst = [], []
    for axis in range(3):
        start = int(offset_kji[axis])
        lo = max(start, 0)
        hi = min(start + labels.shape[axis], reference_shape[axis])
        if hi <= lo:
            return out, int(np.count_nonzero(labels))
        dst.append(slice(lo, hi))
        src.append(slice(lo - start, hi - start))
    out[tuple(dst)] = labels[tuple(src)]
    outside = int(np.count_nonzero(labels)) - int(np.count_nonzero(out))
    return out, outside


def resample_labels_to(labels: Image, reference: Image) -> np.ndarray:
    """Nearest-neighbour resampling of a label image onto ``reference``'s grid (world/LPS
    coordinates); voxels outside the label image become 0.

    Only the part of the reference grid covered by the label image is visited, slice by slice,
    so memory stays at a few slices' worth of coordinates.
    """
    from scipy.ndimage import map_coordinates

    out = np.zeros(reference.array.shape, dtype=labels.array.dtype)
    corners = corner_indices(labels, reference)
    lo = np.maximum(np.floor(corners.min(axis=0)) - 1, 0).astype(int)
    hi = np.minimum(np.ceil(corners.max(axis=0)) + 2, np.array(reference.size_ijk)).astype(int)
    if np.any(hi <= lo):
        return out
    affine = _world_to_index(labels) @ reference.index_to_world()
    j, i = np.mgrid[lo[1]:hi[1], lo[0]:hi[0]].astype(np.float64)
    for k in range(lo[2], hi[2]):
        ijk = affine[:3, :3] @ np.stack([i.ravel(), j.ravel(), np.full(i.size, float(k))]) + affine[:3, 3:4]
        # (k, j, i) order for map_coordinates; order=0 = nearest neighbour, 0 outside the grid.
        # "grid-constant" keeps a sample that rounds onto the grid (index 26.02 of 0..26), which
        # "constant" drops: a mask a hundredth of a voxel off the image grid kept its last slice.
        values = map_coordinates(labels.array, ijk[::-1], order=0, mode="grid-constant", cval=0, prefilter=False)
        out[k, lo[1]:hi[1], lo[0]:hi[0]] = values.reshape(i.shape)
    return out


def grid_differences(grid: Image, reference: Image) -> str:
    """What differs between two grids, in words (shape, spacing, direction, origin)."""
    parts = []
    if grid.array.shape != reference.array.shape:
        parts.append(f"shape {grid.array.shape} vs {reference.array.shape}")
    if not np.allclose(grid.spacing, reference.spacing, rtol=1e-3, atol=1e-3):
        parts.append(f"spacing {tuple(round(s, 4) for s in grid.spacing)} vs "
                     f"{tuple(round(s, 4) for s in reference.spacing)} mm")
    if not np.allclose(grid.direction, reference.direction, atol=1e-3):
        cosine = np.clip(np.abs(np.sum(grid.direction * reference.direction, axis=0)), 0, 1)
        parts.append(f"direction: axes turned by up to {np.degrees(np.arccos(cosine.min())):.3g} deg")
    shift = np.asarray(grid.origin, float) - np.asarray(reference.origin, float)
    if np.linalg.norm(shift) > 1e-3:
        text = f"origin shifted by {tuple(round(float(v), 3) for v in shift)} mm"
        if not parts:  # same lattice otherwise: say how far off the voxel centres are
            offset = _world_to_index(reference) @ np.append(np.asarray(grid.origin, float), 1.0)
            text += f" = {tuple(round(float(v), 3) for v in offset[:3])} voxels, not a whole number"
        parts.append(text)
    return "; ".join(parts) or "below 0.001 mm / 0.1 %"


def place_labels(labels: Image, reference: Image) -> Tuple[np.ndarray, str]:
    """Put a label image onto ``reference``'s grid; returns (labels on the reference grid, a
    sentence describing what was done, for the Report)."""
    from .types import InputError

    n_labelled = int(np.count_nonzero(labels.array))
    offset = crop_offset(labels, reference)
    if offset is not None:
        out, outside = _paste(labels.array, reference.array.shape, offset)
        inside = np.all(offset >= 0) and np.all(offset + np.array(labels.size_ijk) <= np.array(reference.size_ijk))
        relation = "lies inside" if inside else "overlaps"
        message = (f"mask grid {labels.array.shape} {relation} the image grid {reference.array.shape} (same spacing "
                   f"and direction); placed at voxel offset (i, j, k) = {tuple(int(v) for v in offset)} by world "
                   "coordinates")
    else:
        out = resample_labels_to(labels, reference)
        outside = n_labelled - int(np.count_nonzero(out)) if n_labelled else 0
        message = (f"mask grid differs from the image grid ({grid_differences(labels, reference)}); resampled onto "
                   "the image grid (nearest neighbour)")
        outside = max(outside, 0)
    if n_labelled and not np.any(out):
        raise InputError(f"{labels.source or 'mask'}: the mask does not overlap the image "
                         f"{reference.source or ''} in world coordinates")
    if offset is not None and outside:
        message += f"; {outside} labelled voxels lie outside the image and were dropped"
    return out, message
