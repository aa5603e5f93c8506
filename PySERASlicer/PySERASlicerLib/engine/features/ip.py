r"""Local intensity features (IBSI 3.2).

A sphere of volume 1 cm^3 (radius :math:`r = (3/(4\pi))^{1/3}` cm ~ 6.2 mm, measured in world
units between voxel centres) is centred on a voxel; its mean intensity uses **all image
voxels** whose centres lie inside the sphere (not only ROI voxels), after interpolation and
rounding. Only the centre voxel must belong to the intensity mask. Voxels beyond the image
border do not exist and are not counted. The processed image in the ROI context keeps a margin
of at least the sphere radius around the ROI, so the spheres are complete.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, Iterable, Tuple

import numpy as np
from scipy import fft as sfft

from ..context import RoiContext
from ..processing import PEAK_RADIUS_MM
from ..registry import volume_specs

FAMILY = "ip"

ROWS = (
    ("loc_peak_loc", "Local intensity peak", "VJGA"),
    ("loc_peak_glob", "Global intensity peak", "0F91"),
)
SPECS = volume_specs(FAMILY, ROWS)


def sphere_kernel(spacing_ijk, radius_mm: float = PEAK_RADIUS_MM) -> np.ndarray:
    """Boolean (k, j, i) kernel of the voxel offsets whose centres lie within ``radius_mm``."""
    reach = [int(np.floor(radius_mm / s)) for s in spacing_ijk]
    k, j, i = np.ogrid[-reach[2]:reach[2] + 1, -reach[1]:reach[1] + 1, -reach[0]:reach[0] + 1]
    dist2 = (i * spacing_ijk[0]) ** 2 + (j * spacing_ijk[1]) ** 2 + (k * spacing_ijk[2]) ** 2
    return dist2 <= radius_mm**2 + 1e-9


#: Largest padded grid (voxels) whose kernel spectrum is kept in the cache.
_CACHED_SPECTRUM_SIZE = 1 << 22


@lru_cache(maxsize=8)
def _kernel_spectrum(spacing_ijk: Tuple[float, float, float], fast: Tuple[int, int, int]) -> np.ndarray:
    """rfftn of the sphere kernel on the padded grid ``fast`` (read-only; cached: the ROIs of a
    batch share the spacing and often the box size)."""
    spectrum = sfft.rfftn(sphere_kernel(spacing_ijk).astype(np.float64), fast)
    spectrum.flags.writeable = False
    return spectrum


def _sphere_sums(array: np.ndarray, spacing_ijk: Tuple[float, float, float]) -> np.ndarray:
    """Sum of ``array`` over the sphere kernel around each voxel: ``scipy.signal.fftconvolve(array,
    kernel, mode="same")`` for real 3D arrays (the same transforms, without importing
    scipy.signal, whose import alone costs most of a second)."""
    kernel_shape = sphere_kernel(spacing_ijk).shape
    full = [a + k - 1 for a, k in zip(array.shape, kernel_shape)]
    fast = tuple(sfft.next_fast_len(n, real=True) for n in full)
    if np.prod(fast) <= _CACHED_SPECTRUM_SIZE:
        kernel_f = _kernel_spectrum(spacing_ijk, fast)
    else:  # a large ROI's spectrum is not kept
        kernel_f = _kernel_spectrum.__wrapped__(spacing_ijk, fast)
    spectrum = sfft.rfftn(array, fast)
    spectrum *= kernel_f
    result = sfft.irfftn(spectrum, fast)
    start = [(f - a) // 2 for f, a in zip(full, array.shape)]
    return result[tuple(slice(s, s + a) for s, a in zip(start, array.shape))]


def sphere_means(image: np.ndarray, spacing_ijk, where: np.ndarray) -> np.ndarray:
    """Mean intensity of the 1 cm^3 sphere around each voxel selected by ``where`` (k, j, i bool).

    FFT convolution of the intensities with the sphere kernel; dividing by the number of
    kernel voxels inside the array leaves out voxels beyond the array border (that count is
    only convolved when a selected voxel is close enough to the border to need it).
    """
    spacing_ijk = tuple(float(s) for s in spacing_ijk)
    kernel = sphere_kernel(spacing_ijk)
    sums = _sphere_sums(image, spacing_ijk)[where]
    reach = np.array(kernel.shape) // 2
    idx = np.nonzero(where)
    near_border = any(
        (axis_idx.min() < r) or (axis_idx.max() > n - 1 - r) for axis_idx, r, n in zip(idx, reach, image.shape)
    )
    if near_border:
        counts = np.rint(_sphere_sums(np.ones(image.shape), spacing_ijk)[where])
    else:
        counts = np.count_nonzero(kernel)
    return sums / counts


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """``loc_peak_loc`` [VJGA]: sphere mean around the maximum-intensity voxel(s) of the intensity
    mask (the highest when several share the maximum). ``loc_peak_glob`` [0F91]: the highest
    sphere mean over all voxels of the intensity mask."""
    wanted = list(tags)
    mask = ctx.int_mask
    if not mask.any():
        return {tag: float("nan") for tag in wanted}
    image = ctx.image.array
    means = sphere_means(image, ctx.spacing, mask)
    values = image[mask]
    result = {
        "loc_peak_loc": float(means[values == values.max()].max()),
        "loc_peak_glob": float(means.max()),
    }
    return {tag: result[tag] for tag in wanted}
