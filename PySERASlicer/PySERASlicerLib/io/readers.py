"""Turn what a user passes (paths, arrays, Images) into :class:`Image` and :class:`MaskData`.

Supported here: anything SimpleITK reads (NIfTI, NRRD/NHDR, MetaImage, ...), DICOM series
folders, ``.npy`` files and in-memory arrays. Arrays carry no geometry: the caller may give
``spacing``; otherwise 1 mm is assumed and a warning is recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..image import Image

Source = Union[str, os.PathLike, np.ndarray, Image]

#: File name endings treated as images (longest first so ".nii.gz" wins over ".gz").
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".npy", ".dcm", ".dicom", ".img",
                  ".hdr", ".tif", ".tiff", ".vtk", ".gipl", ".gipl.gz")


class InputError(ValueError):
    """Bad input data; the message names the file/case and the problem."""


def case_name(path: Union[str, os.PathLike]) -> str:
    """File name without its image suffix (``patient01.nii.gz`` -> ``patient01``)."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_image_file(path: Union[str, os.PathLike]) -> bool:
    name = Path(path).name.lower()
    return not name.startswith(".") and any(name.endswith(s) for s in IMAGE_SUFFIXES)


def _warn(warnings: Optional[List[str]], message: str) -> None:
    if warnings is not None:
        warnings.append(message)


def image_from_array(array: np.ndarray, spacing: Optional[Sequence[float]] = None, source: str = "array",
                     warnings: Optional[List[str]] = None, modality: str = "OTHER") -> Image:
    """Wrap a (k, j, i) array; without ``spacing`` assume 1 mm and record a warning."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise InputError(f"{source}: expected a 3D array (k, j, i), got {array.ndim}D with shape {array.shape}")
    if spacing is None:
        _warn(warnings, f"{source}: no voxel spacing given for array input; assuming 1 x 1 x 1 mm")
        spacing = (1.0, 1.0, 1.0)
    return Image(array, tuple(spacing), modality=modality, source=source)


def image_from_sitk(sitk_image, source: str, modality: str = "OTHER") -> Image:
    """SimpleITK image -> Image (SimpleITK already uses LPS and (k, j, i) arrays)."""
    import SimpleITK as sitk

    if sitk_image.GetDimension() == 2:
        sitk_image = sitk.JoinSeries(sitk_image)
    if sitk_image.GetDimension() != 3:
        raise InputError(f"{source}: expected a 3D image, got {sitk_image.GetDimension()}D")
    if sitk_image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{source}: multi-component (e.g. RGB or vector) images are not supported")
    array = sitk.GetArrayFromImage(sitk_image)
    direction = np.array(sitk_image.GetDirection(), dtype=float).reshape(3, 3)
    return Image(array, sitk_image.GetSpacing(), sitk_image.GetOrigin(), direction, modality=modality,
                 source=source)


def read_image(source: Source, spacing: Optional[Sequence[float]] = None,
               warnings: Optional[List[str]] = None, modality: Optional[str] = None) -> Image:
    """Read one image from a path (file or DICOM folder), a ``.npy`` file, an array or an Image."""
    if isinstance(source, Image):
        return source
    if isinstance(source, np.ndarray):
        return image_from_array(source, spacing, "array", warnings, modality or "OTHER")
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: file or folder not found")
    if path.is_dir():
        from .dicom import read_dicom_series

        return read_dicom_series(path, warnings=warnings)
    if path.name.lower().endswith(".npy"):
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: cannot read NumPy file ({exc})") from None
        return image_from_array(array, spacing, str(path), warnings, modality or "OTHER")
    if path.name.lower().endswith((".dcm", ".dicom")):
        from .dicom import read_dicom_file

        return read_dicom_file(path, warnings=warnings)
    import SimpleITK as sitk

    try:
        sitk_image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise InputError(f"{path}: cannot read image ({first_line})") from None
    return image_from_sitk(sitk_image, str(path), modality or "OTHER")


@dataclass
class MaskData:
    """ROI definitions on an image's grid.

    labels : integer label map (k, j, i) on the image grid (NIfTI/NRRD/NumPy masks), or None.
    named : structure name -> bool mask on the image grid (RTSTRUCT, DICOM SEG, Slicer segments).
    """

    labels: Optional[np.ndarray] = None
    named: Dict[str, np.ndarray] = field(default_factory=dict)


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


def read_mask(source: Source, reference: Image, apply_preprocessing: bool = False,
              warnings: Optional[List[str]] = None) -> MaskData:
    """Read a mask and put it on ``reference``'s grid.

    Label images with the same grid are used as they are; arrays without geometry must have
    the image's shape; a mask on another grid is resampled (nearest neighbour) onto the image
    grid, with a warning.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir() or path.name.lower().endswith((".dcm", ".dicom")):
            from .dicom import read_dicom_mask

            return read_dicom_mask(path, reference, warnings=warnings)
    mask_image = read_image(source, spacing=reference.spacing if isinstance(source, np.ndarray) else None,
                            warnings=None)
    name = mask_image.source or "mask"
    geometry_known = not (isinstance(source, np.ndarray) or str(name).lower().endswith(".npy"))
    if mask_image.array.shape == reference.array.shape and (
        not geometry_known or mask_image.same_geometry(reference, tolerance=1e-3)
    ):
        return MaskData(labels=labels_from_array(mask_image.array, name, apply_preprocessing, warnings))
    if not geometry_known:
        raise InputError(
            f"{name}: mask shape {mask_image.array.shape} differs from image shape {reference.array.shape} "
            f"({reference.source or 'image'}) and the arrays carry no geometry to reconcile them"
        )
    from .geometry import resample_labels_to

    labels = labels_from_array(mask_image.array, name, apply_preprocessing, warnings)
    _warn(warnings, f"{name}: mask grid differs from the image grid; resampled onto the image grid "
                    "(nearest neighbour)")
    return MaskData(labels=resample_labels_to(mask_image.with_array(labels), reference))
