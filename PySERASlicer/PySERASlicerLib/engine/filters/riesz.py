"""Riesz-transformed filters (IBSI-2 tests 9 and 10): the Fourier multiplier of the Riesz
transform of order (l_x, l_y, l_z) applied to the LoG or the Simoncelli band-pass.

Riesz-LoG pads by the LoG radius with the boundary condition, multiplies the padded image's
spectrum by the LoG kernel's spectrum and the Riesz multiplier (DFT frequency grid), and crops back.
Riesz-Simoncelli is :func:`~.simoncelli.simoncelli_response` with a Riesz order. The structure-
tensor-aligned variants (tests 9.b.2, 10.b.2) are not implemented: IBSI-2 gives no consensus map
and the configuration does not define their parameters.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...image import Image
from .common import filtered_axes
from .log import log_kernel, log_radius, log_sigmas
from .simoncelli import fourier_filter, riesz_multiplier, simoncelli_response


def riesz_log_response(image: Image, sigma_mm: float, order: Sequence[int], cutoff: float = 4.0,
                       dimensions: str = "3D", boundary: str = "mirror") -> Image:
    """Riesz transform of ``order`` (x first) of the LoG-filtered image."""
    from scipy import fft

    array = np.asarray(image.array, dtype=np.float64)
    axes = filtered_axes(dimensions)
    sigmas = log_sigmas(image, sigma_mm, axes)
    radii = [log_radius(s, cutoff) for s in sigmas]
    # filtered axes are listed x first, i.e. in reverse numpy order: reverse the dense kernel's too
    kernel = np.transpose(log_kernel(sigmas, cutoff))
    numpy_axes, numpy_radii = tuple(reversed(axes)), tuple(reversed(radii))

    def multiplier(freqs, shape):
        grid = np.zeros([shape[a] for a in numpy_axes])
        grid[tuple(slice(0, n) for n in kernel.shape)] = kernel
        # offset 0 at index 0: circular convolution on the padded grid equals the linear one inside
        grid = np.roll(grid, [-r for r in numpy_radii], axis=tuple(range(grid.ndim)))
        view = [1] * len(shape)
        for n, a in enumerate(numpy_axes):
            view[a] = grid.shape[n]
        return fft.fftn(grid).reshape(view) * riesz_multiplier(freqs, order)

    out = fourier_filter(array, axes, boundary, radii, multiplier, centred=False)
    return image.with_array(out)


def riesz_simoncelli_response(image: Image, order: Sequence[int], level: int = 1, dimensions: str = "3D",
                              boundary: str = "mirror") -> Image:
    """Riesz transform of ``order`` (x first) of the Simoncelli band-pass at ``level``."""
    return simoncelli_response(image, level, dimensions, boundary, riesz_order=order)
