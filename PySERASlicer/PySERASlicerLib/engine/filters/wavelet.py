"""Separable undecimated wavelets (IBSI-2 section "Separable wavelets").

Filter taps: Haar and Daubechies db1 ... db10 are computed (spectral factorisation, the minimum-
phase solution that PyWavelets tabulates), coif1 ... coif5 and sym2 ... sym8 are tabulated
(:mod:`.wavelet_taps`). Other PyWavelets names (bior*, rbio*, dmey, longer coif/sym/db) are used
when the optional ``PyWavelets`` package is installed, taking only its ``dec_lo`` / ``dec_hi`` taps.
The transform is ours: PyWavelets' stationary transform ``swtn`` has the same alignment but extends
periodically only, needs axis lengths divisible by 2^level and has no rotation invariance
(docs/filters.md).

Conventions: the decomposition low- and high-pass in PyWavelets' index order; an even-length filter
gets one zero appended and is used as a centred kernel (tap n at offset n - N/2); true
convolution; level j > 1 first applies the all-low-pass set j - 1 times with kernels dilated by
1, 2, 4, ... and then the requested set dilated by 2^(j-1) ("a trous"). Rotation invariance
rotates the whole composite operator (both stages) through the 24 (3D) or 4 (2D) orientations and
pools the maps (mean by default).
"""

from __future__ import annotations

import functools
from math import comb
from typing import List, Sequence, Tuple

import numpy as np

from ...image import Image
from .common import filtered_axes, odd_length, orientations, pool, rotate_kernels, separable_convolve
from .wavelet_taps import LOW_PASS


def daubechies_low_pass(order: int) -> np.ndarray:
    """dbN decomposition low-pass (length 2N, sums to sqrt 2), in PyWavelets' ``dec_lo`` order.

    Spectral factorisation: |H|^2 = cos^(2N)(w/2) P(sin^2(w/2)) with P(y) = sum_k C(N-1+k, k) y^k;
    the roots of P inside the unit circle (in z) give the minimum-phase reconstruction filter,
    whose reverse is the decomposition filter."""
    if order == 1:
        return np.array([1.0, 1.0]) / np.sqrt(2.0)
    # z^(N-1) P(y) as a polynomial in z, with y = -(z - 1)^2 / (4 z)
    poly = np.zeros(2 * order - 1)
    for k in range(order):
        term = np.poly1d([1.0, -1.0]) ** (2 * k) * ((-0.25) ** k * comb(order - 1 + k, k))
        shifted = np.polymul(term.coeffs, np.eye(1, order - k, 0)[0])  # times z^(N-1-k)
        poly[-shifted.size:] += shifted
    roots = np.roots(poly)
    inside = roots[np.abs(roots) < 1.0]
    rec = np.real(np.polymul(np.poly(inside), np.poly(-np.ones(order))))
    rec = rec / rec.sum() * np.sqrt(2.0)
    return rec[::-1].copy()


@functools.cache
def wavelet_filters(name: str) -> Tuple[np.ndarray, np.ndarray]:
    """(low-pass, high-pass) decomposition taps of the named wavelet; high-pass
    H[n] = (-1)^(n+1) L[N-1-n]. Raises ValueError for a name that is not available."""
    name = name.strip().lower()
    if name in ("haar", "db1"):
        low = daubechies_low_pass(1)
    elif name.startswith("db") and name[2:].isdigit() and 1 <= int(name[2:]) <= 10:
        low = daubechies_low_pass(int(name[2:]))
    elif name in LOW_PASS:
        low = np.asarray(LOW_PASS[name])
    else:
        try:
            import pywt
        except ImportError:
            raise ValueError(
                f"wavelet {name!r} needs the optional package PyWavelets (pip install PyWavelets); "
                f"built in: haar, db1 ... db10, coif1 ... coif5, sym2 ... sym8") from None
        try:
            wavelet = pywt.Wavelet(name)
        except ValueError as exc:
            raise ValueError(f"unknown wavelet {name!r} ({exc})") from None
        if not wavelet.orthogonal and not wavelet.biorthogonal:
            raise ValueError(f"wavelet {name!r} has no discrete filter bank")
        return np.asarray(wavelet.dec_lo, dtype=float), np.asarray(wavelet.dec_hi, dtype=float)
    n = low.size
    high = np.array([(-1) ** (i + 1) * low[n - 1 - i] for i in range(n)])
    return low, high


def dilate(kernel: np.ndarray, factor: int) -> np.ndarray:
    """Insert factor - 1 zeros between the taps of an odd-length kernel ("a trous")."""
    if factor == 1:
        return kernel
    out = np.zeros((kernel.size - 1) * factor + 1)
    out[::factor] = kernel
    return out


def _stages(low: np.ndarray, high: np.ndarray, band: str, level: int) -> List[List[np.ndarray]]:
    """1D kernels (one per axis, x first) of each stage of the level-``level`` operator."""
    low, high = odd_length(low), odd_length(high)
    stages = [[dilate(low, 2 ** s)] * len(band) for s in range(level - 1)]
    stages.append([dilate(low if letter == "L" else high, 2 ** (level - 1)) for letter in band])
    return stages


def _apply(array: np.ndarray, stages: Sequence[Sequence[np.ndarray]], axes, boundary: str) -> np.ndarray:
    out = array
    for kernels in stages:
        out = separable_convolve(out, kernels, axes, boundary)
    return out


def wavelet_response(image: Image, wavelet: str, set: str, level: int = 1, rotation_invariant: bool = False,
                     pooling: str = "mean", dimensions: str = "3D", boundary: str = "mirror") -> Image:
    """Undecimated wavelet response map of the set (e.g. "LHL": low-pass along x, high-pass along
    y, low-pass along z) at ``level``."""
    axes = filtered_axes(dimensions)
    low, high = wavelet_filters(wavelet)
    stages = _stages(low, high, set.upper(), level)
    array = np.asarray(image.array, dtype=np.float64)
    if rotation_invariant:
        out = pool((_apply(array, [rotate_kernels(k, p, f) for k in stages], axes, boundary)
                    for p, f in orientations(len(axes))), pooling)
    else:
        out = _apply(array, stages, axes, boundary)
    return image.with_array(out)
