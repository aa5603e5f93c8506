"""Gabor filter (IBSI-2 section "Gabor filters"): a complex 2D kernel in image planes, the
modulus of the convolution as the response.

``g(x, y) = exp(-(x'^2 + gamma^2 y'^2) / (2 sigma^2)) exp(2 pi i x' / lambda)`` with
``x' = x cos(theta) + y sin(theta)``, ``y' = -x sin(theta) + y cos(theta)``, evaluated at the
voxel offsets in mm (so sigma and lambda are in mm), theta from +x towards +y, no normalisation
(peak modulus 1). "2D" filters the axial planes; "3D" filters the axial, coronal and sagittal plane
families and averages them. With rotation invariance the angles 0, step, 2 step, ... < 360 degrees
are averaged (theta and theta + 180 degrees give the same modulus, so each such pair is computed
once). Applied by FFT on the plane padded by the kernel radius with the boundary condition, so
the result equals the direct convolution.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, Sequence, Tuple

import numpy as np

from ...image import Image
from .common import crop, pad

#: Kernel half-width in envelope widths: exp(-8) = 3e-4 of the peak is left out.
ENVELOPE_WIDTHS = 4.0
#: (x, y) numpy axes of the axial, coronal and sagittal plane families.
PLANE_AXES = ((2, 1), (2, 0), (1, 0))


def _angle_weights(theta_deg: float, rotation_invariant: bool, step_deg) -> Dict[float, int]:
    """Distinct angles (mod 180 degrees) to compute and how many of the requested angles each stands for."""
    if not rotation_invariant:
        return {float(theta_deg) % 180.0: 1}
    count = int(np.ceil(360.0 / step_deg - 1e-9))
    angles = [round((n * step_deg) % 180.0, 9) for n in range(count)]
    return dict(Counter(angles))


def gabor_kernel(spacing_xy: Tuple[float, float], radius_xy: Tuple[int, int], sigma_mm: float,
                 lambda_mm: float, gamma: float, theta_deg: float) -> np.ndarray:
    """The complex kernel on voxel offsets, indexed [y, x] (numpy order of the plane)."""
    theta = np.deg2rad(theta_deg)
    x = np.arange(-radius_xy[0], radius_xy[0] + 1)[None, :] * spacing_xy[0]
    y = np.arange(-radius_xy[1], radius_xy[1] + 1)[:, None] * spacing_xy[1]
    x_rot = x * np.cos(theta) + y * np.sin(theta)
    y_rot = -x * np.sin(theta) + y * np.cos(theta)
    envelope = np.exp(-(x_rot ** 2 + gamma ** 2 * y_rot ** 2) / (2 * sigma_mm ** 2))
    return envelope * np.exp(2j * np.pi * x_rot / lambda_mm)


def _plane_response(array: np.ndarray, axes_xy: Sequence[int], spacing_kji, angles: Dict[float, int],
                    sigma_mm: float, lambda_mm: float, gamma: float, boundary: str) -> np.ndarray:
    """Mean over ``angles`` of the Gabor modulus in the planes spanned by numpy ``axes_xy``."""
    from scipy import fft

    reach_mm = ENVELOPE_WIDTHS * sigma_mm * max(1.0, 1.0 / gamma)
    radius = [int(np.ceil(reach_mm / spacing_kji[a])) for a in axes_xy]
    padded = pad(array, radius, axes_xy, boundary)
    shape = [padded.shape[a] for a in axes_xy]
    fft_axes = tuple(axes_xy[::-1])  # (y, x) so that the spectrum is indexed like the kernel [y, x]
    spectrum = fft.fftn(padded, axes=fft_axes)
    total = np.zeros(array.shape)
    for theta, weight in angles.items():
        kernel = gabor_kernel((spacing_kji[axes_xy[0]], spacing_kji[axes_xy[1]]), radius,
                              sigma_mm, lambda_mm, gamma, theta)
        # place offset (0, 0) at index 0: circular convolution on the padded grid is exact inside
        grid = np.zeros((shape[1], shape[0]), dtype=complex)
        grid[:kernel.shape[0], :kernel.shape[1]] = kernel
        grid = np.roll(grid, (-radius[1], -radius[0]), axis=(0, 1))
        kernel_spectrum = fft.fftn(grid)
        view = [1] * array.ndim
        view[fft_axes[0]], view[fft_axes[1]] = grid.shape
        response = fft.ifftn(spectrum * kernel_spectrum.reshape(view), axes=fft_axes)
        total += weight * np.abs(crop(response, radius, axes_xy))
    return total / sum(angles.values())


def gabor_response(image: Image, sigma_mm: float, lambda_mm: float, gamma: float = 1.0,
                   theta_deg: float = 0.0, rotation_invariant: bool = False, theta_step_deg=None,
                   dimensions: str = "3D", boundary: str = "mirror") -> Image:
    """Gabor modulus map; see the module docstring for the conventions."""
    array = np.asarray(image.array, dtype=np.float64)
    spacing_kji = tuple(reversed(image.spacing))
    angles = _angle_weights(theta_deg, rotation_invariant, theta_step_deg)
    families = PLANE_AXES if dimensions == "3D" else PLANE_AXES[:1]
    out = sum(_plane_response(array, axes, spacing_kji, angles, sigma_mm, lambda_mm, gamma, boundary)
              for axes in families) / len(families)
    return image.with_array(out)
