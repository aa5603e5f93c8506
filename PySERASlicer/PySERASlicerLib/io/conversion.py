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
    return image_on_sitk_grid(_voxels(sitk_image), sitk_image, source, modality)


def image_on_sitk_grid(array: np.ndarray, grid, source: str, modality: str = "OTHER") -> Image:
    """An Image of ``array`` (k, j, i) with the geometry of ``grid``: a SimpleITK image, or an
    ``ImageFileReader`` that has read a file's header (both give spacing, origin and direction)."""
    direction = np.array(grid.GetDirection(), dtype=float).reshape(3, 3)
    return Image(array, grid.GetSpacing(), grid.GetOrigin(), direction, modality=modality, source=source)


class _ItkBuffer:
    """Exposes a SimpleITK image's voxel buffer to numpy and keeps the image alive for as long
    as an array uses the buffer (the array's ``base``)."""

    def __init__(self, sitk_image, view: np.ndarray):
        self.image = sitk_image
        interface = dict(view.__array_interface__)
        interface["data"] = (interface["data"][0], False)  # this array alone uses the buffer
        self.__array_interface__ = interface


def _voxels(sitk_image) -> np.ndarray:
    """The (k, j, i) voxel array of a SimpleITK image without a copy of the volume (a CT read from
    disk is not held twice); ``GetArrayFromImage``'s copy where the view is not available."""
    import SimpleITK as sitk

    try:
        view = sitk.GetArrayViewFromImage(sitk_image)
    except (AttributeError, TypeError, RuntimeError):
        return sitk.GetArrayFromImage(sitk_image)
    array = np.asarray(_ItkBuffer(sitk_image, view))
    return array if array.shape == view.shape and array.dtype == view.dtype else sitk.GetArrayFromImage(sitk_image)


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
    (PySERA); otherwise non-integer values are an error rather than silently truncated.

    Integer masks are returned as they are, bool masks as a uint8 view and float masks in the
    smallest integer type that holds their values: a CT-sized mask stays one byte a voxel
    instead of eight."""
    array = np.asarray(array)
    if array.dtype.kind == "b":
        return array.view(np.uint8)
    if array.dtype.kind in "iu":
        return array
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
    if array.dtype.kind != "f":
        raise InputError(f"{source}: unsupported mask data type {array.dtype}")
    if array.size == 0:
        return array.astype(np.int64)
    lo, hi = int(array.min()), int(array.max())
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.int32):
        if np.iinfo(dtype).min <= lo and hi <= np.iinfo(dtype).max:
            return array.astype(dtype)
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
