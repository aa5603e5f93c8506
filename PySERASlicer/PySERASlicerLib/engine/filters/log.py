"""Laplacian of Gaussian (IBSI-2 section "Laplacian of Gaussian").

The kernel, in voxel units with sigma_a = sigma_mm / spacing_a, is
``-(1/sigma^2) (1/(sigma sqrt(2 pi)))^d (d - |x|^2/sigma^2) exp(-|x|^2/(2 sigma^2))``, truncated to
the cube of radius ``floor(cutoff * sigma + 0.5)`` and not renormalised. It is exactly the sum over
the axes a of (second-derivative factor along a) x (Gaussian factors along the others), so it is
applied as d separable passes instead of one dense 3D convolution.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ...image import Image
from .common import filtered_axes, separable_convolve


def log_radius(sigma_voxels: float, cutoff: float) -> int:
    """Half-width (voxels) of the truncated kernel."""
    return int(np.floor(cutoff * sigma_voxels + 0.5))


def gaussian_factors(sigma_voxels: float, cutoff: float):
    """(Gaussian, second-derivative factor) 1D kernels of the separable LoG decomposition."""
    radius = log_radius(sigma_voxels, cutoff)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    gauss = np.exp(-x ** 2 / (2 * sigma_voxels ** 2)) / (sigma_voxels * np.sqrt(2 * np.pi))
    second = (x ** 2 / sigma_voxels ** 2 - 1.0) / sigma_voxels ** 2 * gauss
    return gauss, second


def log_sigmas(image: Image, sigma_mm: float, axes: Sequence[int]) -> List[float]:
    """sigma in voxels along each numpy axis in ``axes`` (spacing is given per i, j, k)."""
    spacing_kji = tuple(reversed(image.spacing))
    return [sigma_mm / spacing_kji[axis] for axis in axes]


def log_kernel(sigmas: Sequence[float], cutoff: float) -> np.ndarray:
    """The dense LoG kernel over ``len(sigmas)`` axes (for the FFT-based Riesz-LoG)."""
    factors = [gaussian_factors(s, cutoff) for s in sigmas]
    kernel = 0.0
    for a in range(len(sigmas)):
        term = np.ones([1] * len(sigmas))
        for b, (gauss, second) in enumerate(factors):
            shape = [1] * len(sigmas)
            shape[b] = gauss.size
            term = term * (second if a == b else gauss).reshape(shape)
        kernel = kernel + term
    return kernel


def log_response(image: Image, sigma_mm: float, cutoff: float = 4.0, dimensions: str = "3D",
                 boundary: str = "mirror") -> Image:
    """LoG-filtered image (sigma in mm, cut-off in sigmas)."""
    axes = filtered_axes(dimensions)
    factors = [gaussian_factors(s, cutoff) for s in log_sigmas(image, sigma_mm, axes)]
    out = np.zeros(image.array.shape, dtype=np.float64)
    for a in range(len(axes)):
        kernels = [second if a == b else gauss for b, (gauss, second) in enumerate(factors)]
        out += separable_convolve(image.array, kernels, axes, boundary)
    return image.with_array(out)
