"""The one image type of the package: a voxel array plus its geometry.

Conventions (see docs/ARCHITECTURE.md):

* ``array`` is indexed ``(k, j, i)`` = (slice, row, column), the order of
  ``slicer.util.arrayFromVolume`` and ``SimpleITK.GetArrayFromImage``.
* ``spacing`` is given per ``(i, j, k)`` axis, in mm.
* ``origin`` is the world position (mm) of the centre of voxel ``(0, 0, 0)``.
* ``direction`` is a 3x3 matrix whose *columns* are the unit vectors of the i, j and k
  axes in world space.
* The world frame is DICOM/ITK **LPS**. Slicer's RAS is converted at the bridge.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional, Tuple

import numpy as np

Vector3 = Tuple[float, float, float]

#: RAS <-> LPS differ by flipping the first two world axes.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Image:
    """A 3D voxel array with geometry (LPS world frame).

    Parameters
    ----------
    array : ndarray, shape (k, j, i)
    spacing : (float, float, float)
        Voxel size in mm along i, j, k.
    origin : (float, float, float)
        World (LPS) position of the centre of voxel (0, 0, 0).
    direction : ndarray (3, 3)
        Columns are the world directions of the i, j and k axes.
    modality : str
        "CT", "MR", "PT", ... or "OTHER".
    source : str
        Where the image came from (file path or a short description), for messages.
    pet_suv : :class:`~PySERASlicerLib.io.suv.SuvConversion` or None
        For a PET DICOM series: how its stored values become SUV body weight, computed from its
        tags by the reader and applied by :func:`PySERASlicerLib.io.suv.apply_suv` (None after).
    """

    array: np.ndarray
    spacing: Vector3 = (1.0, 1.0, 1.0)
    origin: Vector3 = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    modality: str = "OTHER"
    source: str = ""
    pet_suv: Optional[Any] = None

    def __post_init__(self):
        array = np.asarray(self.array)
        if array.ndim != 3:
            raise ValueError(
                f"{self.source or 'image'}: expected a 3D array (k, j, i), got {array.ndim}D with shape "
                f"{array.shape}"
            )
        object.__setattr__(self, "array", array)
        spacing = tuple(float(s) for s in self.spacing)
        if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"{self.source or 'image'}: spacing must be three positive numbers, got {spacing}")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        object.__setattr__(self, "direction", direction)

    # -- geometry -------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.array.shape

    @property
    def size_ijk(self) -> tuple:
        """Number of voxels along (i, j, k)."""
        return tuple(reversed(self.array.shape))

    def index_to_world(self) -> np.ndarray:
        """4x4 affine mapping homogeneous (i, j, k, 1) to LPS world (x, y, z, 1)."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction @ np.diag(self.spacing)
        affine[:3, 3] = self.origin
        return affine

    def same_geometry(self, other: Image, tolerance: float = 1e-4) -> bool:
        """True when both images share shape, spacing, origin and direction."""
        return (
            self.array.shape == other.array.shape
            and np.allclose(self.spacing, other.spacing, atol=tolerance)
            and np.allclose(self.origin, other.origin, atol=tolerance * 10)
            and np.allclose(self.direction, other.direction, atol=tolerance)
        )

    def with_array(self, array: np.ndarray, **changes) -> Image:
        """A copy with another voxel array (same geometry unless overridden)."""
        return replace(self, array=array, **changes)

    @classmethod
    def from_ras_matrix(cls, array: np.ndarray, ijk_to_ras: np.ndarray, **kwargs) -> Image:
        """Build an Image from Slicer's 4x4 IJK->RAS matrix (converted to LPS)."""
        ijk_to_ras = np.asarray(ijk_to_ras, dtype=float)
        ijk_to_lps = RAS_TO_LPS @ ijk_to_ras[:3, :3]
        spacing = np.linalg.norm(ijk_to_lps, axis=0)
        direction = ijk_to_lps / spacing
        origin = RAS_TO_LPS @ ijk_to_ras[:3, 3]
        return cls(array, tuple(spacing), tuple(origin), direction, **kwargs)

    def ijk_to_ras(self) -> np.ndarray:
        """Slicer's 4x4 IJK->RAS matrix of this image."""
        affine = self.index_to_world()
        affine[:3, :] = RAS_TO_LPS @ affine[:3, :]
        return affine
