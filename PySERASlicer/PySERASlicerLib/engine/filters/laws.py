"""Laws kernels (IBSI-2 section "Laws kernels"): separable products of L2-normalised 1D kernels,
optional pseudo-rotational invariance (24 cube / 4 square orientations, pooled) and energy map."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...image import Image
from .common import filtered_axes, mean_filter, orientations, pool, rotate_kernels, separable_convolve
from .spec import laws_components

#: 1D Laws kernels, low to high index, before normalisation.
LAWS_TAPS = {
    "L3": (1, 2, 1), "E3": (-1, 0, 1), "S3": (-1, 2, -1),
    "L5": (1, 4, 6, 4, 1), "E5": (-1, -2, 0, 2, 1), "S5": (-1, 0, 2, 0, -1),
    "W5": (-1, 2, 0, -2, 1), "R5": (1, -4, 6, -4, 1),
}


def laws_kernel(name: str) -> np.ndarray:
    """The named 1D kernel divided by its L2 norm."""
    taps = np.asarray(LAWS_TAPS[name], dtype=np.float64)
    return taps / np.sqrt(np.sum(taps ** 2))


def laws_response(image: Image, kernel: str, rotation_invariant: bool = False, pooling: str = "max",
                  energy_delta: Optional[int] = None, dimensions: str = "3D",
                  boundary: str = "mirror") -> Image:
    """Laws response map of ``kernel`` (e.g. "E5L5S5": E5 along x, L5 along y, S5 along z); with
    ``energy_delta`` the energy map: mean of |response| over a box of 2 * delta + 1 voxels."""
    axes = filtered_axes(dimensions)
    kernels = [laws_kernel(name) for name in laws_components(kernel)]
    if rotation_invariant:
        out = pool((separable_convolve(image.array, rotate_kernels(kernels, p, f), axes, boundary)
                    for p, f in orientations(len(axes))), pooling)
    else:
        out = separable_convolve(image.array, kernels, axes, boundary)
    if energy_delta is not None:
        out = mean_filter(np.abs(out), 2 * energy_delta + 1, axes, boundary)
    return image.with_array(out)
