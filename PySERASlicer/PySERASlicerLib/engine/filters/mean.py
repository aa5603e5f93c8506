"""Mean filter (IBSI-2 section "Mean filter"): a normalised box of ``support`` voxels per axis."""

from __future__ import annotations

from ...image import Image
from .common import filtered_axes, mean_filter


def mean_response(image: Image, support: int, dimensions: str = "3D", boundary: str = "mirror") -> Image:
    """Box-filtered image: every voxel the mean of the ``support``^d box around it (d = 2 for
    "2D": in each axial plane)."""
    axes = filtered_axes(dimensions)
    return image.with_array(mean_filter(image.array, support, axes, boundary))
