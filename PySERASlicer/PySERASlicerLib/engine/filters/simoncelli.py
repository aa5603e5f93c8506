"""Simoncelli wavelet (IBSI-2 section "Simoncelli wavelet"): an isotropic band-pass applied in the
Fourier domain, ``H_j(w) = cos(pi/2 log2(2 w / nu_j))`` for nu_j/4 <= w <= nu_j (nu_j = 2^-(j-1)),
w the frequency norm with 1 = Nyquist along an axis.

The frequency grid is the centred grid the IBSI-2 consensus maps encode (see
:func:`~.common.centred_frequencies`); the textbook DFT grid fails the level-2 and -3 reference
maps. "periodic" filters the unpadded image; any other boundary pads each filtered axis by half its
length with that condition first (and the grid is that of the padded image).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ...image import Image
from .common import crop, filtered_axes, frequency_grid, pad

#: Largest padding (voxels per side) for the non-periodic boundaries: bounds the FFT size.
MAX_PAD = 32


def simoncelli_multiplier(frequencies: Sequence[np.ndarray], level: int) -> np.ndarray:
    """H_level on the broadcastable per-axis frequency arrays."""
    norm = np.sqrt(sum(f ** 2 for f in frequencies))
    nu = 2.0 ** -(level - 1)
    inside = (norm >= nu / 4) & (norm <= nu)
    with np.errstate(divide="ignore", invalid="ignore"):
        response = np.cos(np.pi / 2 * np.log2(2.0 * norm / nu))
    return np.where(inside, response, 0.0)


def riesz_multiplier(frequencies: Sequence[np.ndarray], order: Sequence[int]) -> np.ndarray:
    """Riesz transform of ``order`` (one integer per frequency axis):
    (-i)^L sqrt(L! / prod l_a!) prod w_a^l_a / |w|^L, 0 at w = 0."""
    from math import factorial

    total = sum(order)
    norm = np.sqrt(sum(f ** 2 for f in frequencies))
    numerator = 1.0
    for f, power in zip(frequencies, order):
        numerator = numerator * f ** power
    coefficient = (-1j) ** total * np.sqrt(factorial(total) / np.prod([factorial(p) for p in order]))
    with np.errstate(divide="ignore", invalid="ignore"):
        multiplier = coefficient * numerator / norm ** total
    return np.where(norm > 0, multiplier, 0.0)


def fourier_filter(array: np.ndarray, axes: Sequence[int], boundary: str, margins: Sequence[int],
                   multiplier, centred: bool) -> np.ndarray:
    """Real part of ifft(fft(padded) * multiplier(frequency grid, padded shape)), cropped back."""
    from scipy import fft

    padded = pad(array, margins, axes, boundary) if any(margins) else array
    freqs = frequency_grid(padded.shape, axes, centred)
    spectrum = fft.fftn(padded, axes=tuple(axes))
    spectrum *= multiplier(freqs, padded.shape)
    return crop(np.real(fft.ifftn(spectrum, axes=tuple(axes))), margins, axes)


def boundary_margins(array: np.ndarray, axes: Sequence[int], boundary: str) -> list:
    """Half the axis length (at most MAX_PAD) on each filtered axis, none for the periodic boundary."""
    return [0 if boundary == "periodic" else min(array.shape[a] // 2, MAX_PAD) for a in axes]


def simoncelli_response(image: Image, level: int = 1, dimensions: str = "3D", boundary: str = "mirror",
                        riesz_order: Optional[Sequence[int]] = None) -> Image:
    """Simoncelli band-pass map at ``level`` (optionally Riesz-transformed, ``riesz_order`` x first)."""
    array = np.asarray(image.array, dtype=np.float64)
    axes = filtered_axes(dimensions)

    def multiplier(freqs, _shape):
        result = simoncelli_multiplier(freqs, level)
        return result * riesz_multiplier(freqs, riesz_order) if riesz_order else result

    out = fourier_filter(array, axes, boundary, boundary_margins(array, axes, boundary), multiplier, centred=True)
    return image.with_array(out)
