"""Conventions shared by the IBSI-2 filters (see docs/filters.md).

Arrays are indexed ``(k, j, i)`` as everywhere in the package, so the IBSI x axis (i) is the
*last* numpy axis: :data:`AXIS_OF` maps the IBSI axis letters to numpy axes. "2D" filters act on
each axial plane (constant k) only, i.e. on numpy axes 1 and 2.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence, Tuple

import numpy as np

#: IBSI boundary condition -> scipy.ndimage ``mode``. IBSI "mirror" repeats the edge voxel,
#: which is scipy's "reflect" (scipy's "mirror" does not repeat it and fails IBSI test 2.b).
NDIMAGE_MODE = {"zero": "constant", "nearest": "nearest", "periodic": "wrap", "mirror": "reflect"}
#: IBSI boundary condition -> numpy.pad ``mode``.
PAD_MODE = {"zero": "constant", "nearest": "edge", "periodic": "wrap", "mirror": "symmetric"}
BOUNDARIES = tuple(NDIMAGE_MODE)

#: numpy axis of each IBSI axis (x = i, y = j, z = k).
AXIS_OF = {"x": 2, "y": 1, "z": 0}


def filtered_axes(dimensions: str) -> Tuple[int, ...]:
    """numpy axes a filter acts on, in IBSI order x, y(, z): (2, 1) for "2D", (2, 1, 0) for "3D"."""
    return (2, 1) if dimensions == "2D" else (2, 1, 0)


def separable_convolve(array: np.ndarray, kernels: Sequence[np.ndarray], axes: Sequence[int],
                       boundary: str) -> np.ndarray:
    """True convolution with the outer product of odd-length 1D ``kernels`` (one per axis),
    as successive 1D passes, each padded by the ``boundary`` condition."""
    from scipy import ndimage

    mode = NDIMAGE_MODE[boundary]
    out = np.asarray(array, dtype=np.float64)
    for kernel, axis in zip(kernels, axes):
        out = ndimage.convolve1d(out, np.asarray(kernel, dtype=np.float64), axis=axis, mode=mode, cval=0.0)
    return out


def mean_filter(array: np.ndarray, support: int, axes: Sequence[int], boundary: str) -> np.ndarray:
    """Normalised box filter of ``support`` voxels along each of ``axes``."""
    from scipy import ndimage

    mode = NDIMAGE_MODE[boundary]
    out = np.asarray(array, dtype=np.float64)
    for axis in axes:
        out = ndimage.uniform_filter1d(out, support, axis=axis, mode=mode, cval=0.0)
    return out


def odd_length(kernel: Sequence[float]) -> np.ndarray:
    """An even-length kernel with one zero appended, so that tap n sits at offset n - N/2 when the
    result is used as a centred kernel (the IBSI wavelet alignment); odd kernels unchanged."""
    kernel = np.asarray(kernel, dtype=np.float64)
    return np.append(kernel, 0.0) if kernel.size % 2 == 0 else kernel


def orientations(n_axes: int) -> Iterator[Tuple[Tuple[int, ...], Tuple[bool, ...]]]:
    """The proper rotations of the cube (24 for 3 axes) or square (4 for 2 axes) that map the
    axis grid onto itself, as (permutation, reversed): axis ``a`` of the rotated separable kernel
    carries the 1D kernel of axis ``permutation[a]``, reversed where ``reversed[a]``. Mirror
    images (determinant -1) are excluded."""
    for permutation in itertools.permutations(range(n_axes)):
        parity = _permutation_sign(permutation)
        for flips in itertools.product((False, True), repeat=n_axes):
            if parity * (-1) ** sum(flips) == 1:
                yield permutation, flips


def _permutation_sign(permutation: Sequence[int]) -> int:
    sign = 1
    items = list(permutation)
    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            if items[a] > items[b]:
                sign = -sign
    return sign


def rotate_kernels(kernels: Sequence[np.ndarray], permutation: Sequence[int],
                   flips: Sequence[bool]) -> list:
    """The 1D kernels of a separable kernel rotated by (permutation, flips) of :func:`orientations`."""
    return [kernels[p][::-1] if flip else kernels[p] for p, flip in zip(permutation, flips)]


def pool(maps: Iterator[np.ndarray], pooling: str) -> np.ndarray:
    """Voxel-wise "max" or "mean" of the response maps, without keeping them all in memory."""
    result = None
    count = 0
    for response in maps:
        count += 1
        if result is None:
            result = np.array(response, dtype=np.float64, copy=True)
        elif pooling == "max":
            np.maximum(result, response, out=result)
        else:
            result += response
    if pooling == "mean":
        result /= count
    return result


def centred_frequencies(n: int) -> np.ndarray:
    """Normalised frequency (1 = Nyquist) of each FFT sample along an axis of length ``n`` on the
    centred grid that the IBSI-2 consensus encodes: (m - (n-1)/2) / ((n-1)/2), m = 0 .. n-1, in FFT
    order (ifftshift). It has no sample at exactly 0 for even n."""
    if n == 1:
        return np.zeros(1)
    half = (n - 1) / 2.0
    return np.fft.ifftshift((np.arange(n) - half) / half)


def dft_frequencies(n: int) -> np.ndarray:
    """Normalised DFT frequency (1 = Nyquist) of each FFT sample along an axis of length ``n``."""
    return np.fft.fftfreq(n) * 2.0


def frequency_grid(shape: Sequence[int], axes: Sequence[int], centred: bool) -> list:
    """Broadcastable normalised frequency arrays, one per axis in ``axes``, for an FFT over ``axes``
    of an array of ``shape``."""
    grids = []
    for axis in axes:
        freq = centred_frequencies(shape[axis]) if centred else dft_frequencies(shape[axis])
        view = [1] * len(shape)
        view[axis] = shape[axis]
        grids.append(freq.reshape(view))
    return grids


def pad(array: np.ndarray, margins: Sequence[int], axes: Sequence[int], boundary: str) -> np.ndarray:
    """``array`` padded by ``margins[n]`` voxels on both sides of ``axes[n]`` by the boundary condition."""
    widths = [(0, 0)] * array.ndim
    for margin, axis in zip(margins, axes):
        widths[axis] = (int(margin), int(margin))
    return np.pad(array, widths, mode=PAD_MODE[boundary])


def crop(array: np.ndarray, margins: Sequence[int], axes: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`pad`."""
    index = [slice(None)] * array.ndim
    for margin, axis in zip(margins, axes):
        index[axis] = slice(int(margin), array.shape[axis] - int(margin))
    return array[tuple(index)]
