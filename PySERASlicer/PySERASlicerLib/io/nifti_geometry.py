"""The grid ITK's NIfTI reader gives a NIfTI-1 file (spacing, origin, direction in LPS), from
its 348-byte header, without importing SimpleITK.

SimpleITK's import and its share of the interpreter's shutdown are about a sixth of a fresh
process that extracts one case from two .nii.gz files; the voxels are decoded here anyway
(:func:`.readers.check_nifti_complete`). The grid must be the one Slicer and SimpleITK give
the same file, so this follows ITK's rules (``NiftiImageIO::ReadImageInformation`` and
``SetImageIOOrientationFromNIfTI``) where they decide simply:

* neither qform nor sform: origin 0, identity direction;
* the qform alone, or the sform alone when it is a rotation times the spacings;
* both, when they agree (the files ITK, Slicer and dcm2niix write) or when the sform is not a
  scaled rotation (the qform is then used).

Anything else, and any figure close to one of ITK's tolerances, returns None and ITK reads the
header itself: a sform with ``sform_code`` other than 1 that is a scaled rotation but differs
from the qform (ITK compares their singular value decompositions), NIfTI-2, vector intents,
units other than millimetres, non-positive or non-finite spacings.
``Testing/test_nifti_geometry.py`` compares each case with SimpleITK's reading.
"""

from __future__ import annotations

import struct
from typing import Optional, Tuple

import numpy as np

Grid = Tuple[Tuple[float, float, float], Tuple[float, float, float], np.ndarray]

#: Intents under which ITK reads several components per voxel (vector, symmetric matrix) or
#: refuses the file (general matrix).
_MULTI_COMPONENT_INTENTS = (1004, 1005, 1007)
#: ``xyzt_units & 7`` of the files read here: unknown or millimetres (ITK scales the spacing
#: and the origin of files in metres or microns).
_MILLIMETRE_UNITS = (0, 2)
_SCANNER_ANAT = 1


def itk_grid(header: bytes) -> Optional[Grid]:
    """``(spacing, origin, direction)`` as SimpleITK reads them from a single-file 3D NIfTI-1
    header (native byte order), or None where ITK must decide (module docstring)."""
    if len(header) < 348:
        return None
    endian = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
    if struct.unpack(endian + "i", header[:4])[0] != 348 or header[344:348] != b"n+1\0":
        return None
    dims = struct.unpack(endian + "8h", header[40:56])
    intent_code = struct.unpack(endian + "h", header[68:70])[0]
    pixdim = np.frombuffer(header, endian + "f4", 8, 76).astype(np.float32)
    if dims[0] != 3 or intent_code in _MULTI_COMPONENT_INTENTS:
        return None
    spacings = pixdim[1:4]
    if not (np.all(np.isfinite(spacings)) and np.all(spacings > 0)):
        return None
    if header[123] & 7 not in _MILLIMETRE_UNITS:
        return None
    spacing = tuple(float(d) for d in spacings)
    qform_code, sform_code = struct.unpack(endian + "2h", header[252:256])
    has_q, has_s = qform_code > 0, sform_code > 0
    if not has_q and not has_s:
        return spacing, (0.0, 0.0, 0.0), np.eye(3)
    quatern = np.frombuffer(header, endian + "f4", 6, 256).astype(np.float32)
    rows = np.frombuffer(header, endian + "f4", 12, 280).astype(np.float32).reshape(3, 4)
    if not (np.all(np.isfinite(quatern)) and np.all(np.isfinite(rows))):
        return None
    if has_q:
        qto = quaternion_matrix(quatern, spacings, -1.0 if pixdim[0] < 0 else 1.0)
    else:  # niftilib: the spacings on the diagonal
        qto = np.diag(np.append(spacings, np.float32(1))).astype(np.float32)
    sto = np.zeros((4, 4), np.float32)
    if has_s:
        sto[:3] = rows
        sto[3, 3] = 1
    matrix = _chosen_matrix(qto, sto, has_q, has_s, sform_code)
    if matrix is None:
        return None
    axes = matrix[:3, :3].astype(np.float64) * np.array([[-1.0], [-1.0], [1.0]])  # RAS -> LPS
    norms = np.sqrt(axes[0] * axes[0] + axes[1] * axes[1] + axes[2] * axes[2])
    if np.any(norms == 0):
        return None
    origin = (-float(matrix[0, 3]), -float(matrix[1, 3]), float(matrix[2, 3]))
    return spacing, origin, axes / norms


def quaternion_matrix(quatern: np.ndarray, spacings: np.ndarray, qfac: float) -> np.ndarray:
    """The qform's 4x4 (float32, as niftilib stores it) from quatern_b/c/d, qoffset_x/y/z, the
    spacings and qfac (the sign of pixdim[0])."""
    b, c, d = (float(v) for v in quatern[:3])
    a = 1.0 - (b * b + c * c + d * d)
    if a < 1e-7:  # a rotation by 180 degrees: (b, c, d) normalised
        norm = 1.0 / np.sqrt(b * b + c * c + d * d)
        b, c, d, a = b * norm, c * norm, d * norm, 0.0
    else:
        a = float(np.sqrt(a))
    dx, dy, dz = (float(v) for v in spacings)
    if qfac < 0:
        dz = -dz
    rotation = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                         [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                         [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]])
    matrix = np.zeros((4, 4), np.float32)
    matrix[:3, :3] = rotation * np.array([dx, dy, dz])
    matrix[:3, 3] = quatern[3:6]
    matrix[3, 3] = 1
    return matrix


def _chosen_matrix(qto: np.ndarray, sto: np.ndarray, has_q: bool, has_s: bool, sform_code: int
                   ) -> Optional[np.ndarray]:
    """The matrix ITK takes the grid from (qform or sform), None where that is not clear-cut."""
    similar = _forms_similar(qto, sto)
    if similar is None:
        return None
    prefer_sform = similar
    if not prefer_sform or has_s:
        scaled_rotation = _sform_is_scaled_rotation(sto) if has_s else False
        if scaled_rotation is None:
            return None
        if scaled_rotation:
            if not has_q or sform_code == _SCANNER_ANAT:
                prefer_sform = True
            else:
                return None  # ITK compares the two forms' singular value decompositions
    if prefer_sform:
        return sto
    return qto if has_q else None  # ITK refuses a file with neither usable


def _forms_similar(qto: np.ndarray, sto: np.ndarray) -> Optional[bool]:
    """ITK's first test: the 3x3 parts within 1e-5 and the translations within 1e-7 (one-norm).
    None when a difference is near either tolerance."""
    rotation = float(np.max(np.abs(sto[:3, :3].astype(np.float64) - qto[:3, :3])))
    translation = float(np.sum(np.abs(sto[:3, 3].astype(np.float64) - qto[:3, 3])))
    if rotation > 1e-4 or translation > 1e-6:
        return False
    if rotation <= 1e-6 and translation == 0.0:
        return True
    return None


def _sform_is_scaled_rotation(sto: np.ndarray) -> Optional[bool]:
    """ITK's test of the sform: an invertible affine whose columns, normalised, are orthonormal
    (within 1e-4). None when well-conditioning or orthonormality is near the tolerance."""
    linear = sto[:3, :3].astype(np.float64)
    singular = np.linalg.svd(linear, compute_uv=False)
    whole = np.linalg.svd(sto.astype(np.float64), compute_uv=False)
    if singular[-1] <= 1e-6 * singular[0] or whole[-1] <= 1e-12 * whole[0]:
        return None  # (nearly) singular: ITK's conditioning and inverse-consistency checks decide
    columns = linear / np.sqrt(np.sum(linear * linear, axis=0))
    deviation = float(np.max(np.abs(columns @ columns.T - np.eye(3))))
    if deviation <= 1e-5:
        return True
    if deviation >= 1e-3:
        return False
    return None
