"""Conversions shared by the readers: SimpleITK image -> :class:`Image`, label image ->
:class:`MaskData` on a reference grid (used by :mod:`.readers` and :mod:`.dicom`)."""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..image import Image
from .types import InputError, MaskData


def warn(warnings: Optional[List[str]], message: str) -> None:
    """Record a non-fatal problem when the caller collects them."""
    if warnings is not None:
        warnings.append(message)


def image_from_sitk(sitk_image, source: str, modality: str = "OTHER") -> Image:
    """SimpleITK image -> Image (SimpleITK already uses LPS and (k, j, i) arrays)."""
    import SimpleITK as sitk

    if sitk_image.GetDimension() == 2:
        sitk_image = sitk.JoinSeries(sitk_image)
    if sitk_image.GetDimension() != 3:
        raise InputError(f"{source}: expected a 3D image, got {sitk_image.GetDimension()}D "
                         f"(size {sitk_image.GetSize()})")
    if sitk_image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{source}: multi-component (e.g. RGB or vector) images are not supported")
    array = sitk.GetArrayFromImage(sitk_image)
    direction = np.array(sitk_image.GetDirection(), dtype=float).reshape(3, 3)
    return Image(array, sitk_image.GetSpacing(), sitk_image.GetOrigin(), direction, modality=modality,
                 source=source)


def sitk_message(exc: Exception) -> str:
    """The informative line of a SimpleITK exception (they carry C++ file/line noise)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "description:" in line.lower():
            return line.split(":", 1)[1].strip()
    return lines[-1] if lines else "unreadable"


def labels_from_array(array: np.ndarray, source: str, apply_preprocessing: bool,
                      warnings: Optional[List[str]] = None) -> np.ndarray:
    """Mask values -> integer labels. With ``apply_preprocessing`` values are rounded first
    (PySERA); otherwise non-integer values are an error rather than silently truncated."""
    array = np.asarray(array)
    if array.dtype.kind == "b":
        return array.astype(np.int32)
    if array.dtype.kind == "f":
        if np.isnan(array).any():
            raise InputError(f"{source}: mask contains NaN values")
        if apply_preprocessing:
            array = np.rint(array)
        elif not np.all(array == np.rint(array)):
            raise InputError(
                f"{source}: mask has non-integer values (e.g. {array[array != np.rint(array)].flat[0]!r}); "
                "set apply_preprocessing=True to round them"
            )
    if array.dtype.kind not in "biuf":
        raise InputError(f"{source}: unsupported mask data type {array.dtype}")
    return array.astype(np.int64)


def mask_from_image(mask_image: Image, reference: Image, apply_preprocessing: bool,
                    warnings: Optional[List[str]] = None, geometry_known: bool = True) -> MaskData:
    """A label image -> :class:`MaskData` on ``reference``'s grid (see :func:`read_mask`)."""
    name = mask_image.source or "mask"
    if mask_image.array.shape == reference.array.shape and (
        not geometry_known or mask_image.same_geometry(reference, tolerance=1e-3)
    ):
        return MaskData(labels=labels_from_array(mask_image.array, name, apply_preprocessing, warnings))
    if not geometry_known:
        raise InputError(
            f"{name}: mask shape {mask_image.array.shape} differs from image shape {reference.array.shape} "
            f"({reference.source or 'image'}) and the arrays carry no geometry to reconcile them"
        )
    from .geometry import place_labels

    labels = labels_from_array(mask_image.array, name, apply_preprocessing, warnings)
    placed, message = place_labels(mask_image.with_array(labels), reference)
    warn(warnings, f"{name}: {message}")
    return MaskData(labels=placed)
