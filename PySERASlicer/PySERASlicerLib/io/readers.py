"""Turn what a user passes (paths, arrays, Images) into :class:`Image` and :class:`MaskData`.

Images
    anything SimpleITK reads (NIfTI, NRRD/NHDR, MetaImage, ...), DICOM series folders
    (:mod:`.dicom`, sorted along the slice normal with rescale slope/intercept applied),
    single DICOM files, ``.npy`` files and in-memory arrays. Arrays carry no geometry: the
    caller may give ``spacing``; otherwise 1 mm is assumed and a warning is recorded.
Masks
    label images in any of the image formats, DICOM RTSTRUCT (:mod:`.rtstruct`, one ROI per
    structure) and DICOM SEG (:mod:`.seg`, one ROI per segment). A mask image on another grid
    is placed onto the image grid by world coordinates (:mod:`.geometry`): exactly when it is a
    crop of the image grid, otherwise by nearest-neighbour resampling, with a warning.

Every problem raises :class:`InputError` whose message names the file and the problem.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from ..image import Image
from .conversion import image_from_sitk, labels_from_array, mask_from_image, sitk_message  # noqa: F401
from .conversion import warn as _warn
from .files import IMAGE_SUFFIXES, case_name, is_dicom_file, is_dicom_folder, is_image_file  # noqa: F401
from .types import InputError, MaskData, Source  # noqa: F401  (re-exported: the io API in one place)


def image_from_array(array: np.ndarray, spacing: Optional[Sequence[float]] = None, source: str = "array",
                     warnings: Optional[List[str]] = None, modality: str = "OTHER") -> Image:
    """Wrap a (k, j, i) array; without ``spacing`` assume 1 mm and record a warning."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise InputError(f"{source}: expected a 3D array (k, j, i), got {array.ndim}D with shape {array.shape}")
    if array.size == 0:
        raise InputError(f"{source}: the array is empty (shape {array.shape})")
    if spacing is None:
        _warn(warnings, f"{source}: no voxel spacing given for array input; assuming 1 x 1 x 1 mm")
        spacing = (1.0, 1.0, 1.0)
    spacing = tuple(spacing)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise InputError(f"{source}: spacing must be three positive numbers (i, j, k) in mm, got {spacing}")
    return Image(array, spacing, modality=modality, source=source)


def read_image(source: Source, spacing: Optional[Sequence[float]] = None,
               warnings: Optional[List[str]] = None, modality: Optional[str] = None,
               series_uid: Optional[str] = None, volume: Optional[int] = None, dicom=None) -> Image:
    """Read one image from a path (file or DICOM folder), a ``.npy`` file, an array or an Image.

    ``series_uid`` / ``volume`` pick one series / one volume of a DICOM folder holding several
    (default: the readable series with the most images, its first volume; the choice is
    reported). ``dicom`` (:class:`~PySERASlicerLib.settings.DicomSettings`) says what to do with
    gantry tilt and missing slices.
    """
    if isinstance(source, Image):
        return source
    if isinstance(source, np.ndarray):
        return image_from_array(source, spacing, "array", warnings, modality or "OTHER")
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: file or folder not found")
    if path.is_dir():
        from .dicom import read_dicom_series

        return read_dicom_series(path, warnings=warnings, series_uid=series_uid, volume=volume, dicom=dicom)
    if path.name.lower().endswith(".npy"):
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path}: cannot read NumPy file ({exc})") from None
        return image_from_array(array, spacing, str(path), warnings, modality or "OTHER")
    if is_dicom_file(path):
        from .dicom import read_dicom_file

        return read_dicom_file(path, warnings=warnings, volume=volume, dicom=dicom)
    import SimpleITK as sitk

    if path.name.lower().endswith((".nii", ".nii.gz")):
        check_nifti_complete(path)
    try:
        sitk_image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read image ({sitk_message(exc)})") from None
    return image_from_sitk(sitk_image, str(path), modality or "OTHER")


#: NIfTI datatype codes of floating-point voxels -> numpy type (byte order added when read).
_NIFTI_FLOATS = {16: "f4", 64: "f8"}


def _nifti_layout(header: bytes):
    """(endian, data offset, number of voxels, bytes per voxel, datatype) of a NIfTI-1/2 header, or None."""
    import struct

    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            datatype = struct.unpack(endian + "h", header[70:72])[0]
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = max(int(struct.unpack(endian + "f", header[108:112])[0]), 348)
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            dims = struct.unpack(endian + "8q", header[16:80])
            datatype = struct.unpack(endian + "h", header[12:14])[0]
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            offset = max(int(struct.unpack(endian + "q", header[168:176])[0]), 540)
            break
    else:
        return None
    n_dims = int(dims[0])
    if not 1 <= n_dims <= 7 or bitpix <= 0 or bitpix % 8:
        return None
    n_voxels = int(np.prod([max(int(d), 1) for d in dims[1:n_dims + 1]]))
    return endian, offset, n_voxels, bitpix // 8, int(datatype)


def check_nifti_complete(path: Path) -> None:
    """Raise :class:`InputError` for a truncated NIfTI file or one with NaN/infinite voxels.

    ITK reads a truncated ``.nii``/``.nii.gz`` without an error, filling the missing voxels with
    zeros, and its NIfTI reader turns NaN voxels into 0: both would silently give wrong features.
    The header says how many bytes the file must hold; for ``.gz`` the gzip trailer's
    uncompressed size is checked. Floating-point data is streamed once (in blocks, so memory
    stays small) to count non-finite values.
    """
    import gzip
    import zlib

    compressed = path.name.lower().endswith(".gz")
    opener = (lambda: gzip.open(path, "rb")) if compressed else (lambda: open(path, "rb"))
    try:
        with opener() as handle:
            header = handle.read(540)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read image (corrupt file: {exc})") from None
    layout = _nifti_layout(header)
    if layout is None:
        return  # not a NIfTI header we understand; let ITK report it
    endian, offset, n_voxels, item_size, datatype = layout
    expected = offset + n_voxels * item_size
    is_float = datatype in _NIFTI_FLOATS and item_size == int(_NIFTI_FLOATS[datatype][1])
    if not compressed:
        size = path.stat().st_size
        if size < expected:
            raise InputError(f"{path}: cannot read image (file is truncated: {size} of {expected} bytes)")
    elif not is_float:
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            if int.from_bytes(handle.read(4), "little") == expected % (1 << 32):
                return
    if not compressed and not is_float:
        return
    dtype = np.dtype(endian + _NIFTI_FLOATS[datatype]) if is_float else None
    count, bad = 0, 0
    block = item_size * (1 << 20)
    try:
        with opener() as handle:
            handle.read(offset)
            count = offset
            for chunk in iter(lambda: handle.read(block), b""):
                if dtype is not None:
                    usable = min(len(chunk), expected - count) // item_size * item_size
                    if usable > 0:
                        bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(chunk[:usable], dtype=dtype))))
                count += len(chunk)
    except (OSError, EOFError, zlib.error):
        raise InputError(f"{path}: cannot read image (compressed file is truncated or corrupt after "
                         f"{count} of {expected} bytes)") from None
    if count < expected:
        raise InputError(f"{path}: cannot read image (file is truncated: {count} of {expected} bytes)")
    if bad:
        raise InputError(f"{path}: image contains {bad} NaN or infinite voxel value(s)")


def read_mask(source: Union[Source, MaskData], reference: Image, apply_preprocessing: bool = False,
              warnings: Optional[List[str]] = None, temp_dir: Optional[str] = None, dicom=None) -> MaskData:
    """Read a mask and put it on ``reference``'s grid.

    * DICOM RTSTRUCT / SEG (a file, or a folder holding one): one named ROI per structure /
      segment, rasterised onto the image grid (RTSTRUCT masks are cached as ``.npy`` files in
      ``temp_dir`` when given).
    * Label images on the image grid are used as they are.
    * Arrays and ``.npy`` files carry no geometry: they must have the image's shape.
    * A label image on another grid is placed by world coordinates (see
      :func:`.geometry.place_labels`), with a warning.
    """
    if isinstance(source, MaskData):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{path}: mask file or folder not found")
        if path.is_dir() or is_dicom_file(path):
            from .dicom_masks import read_dicom_mask

            return read_dicom_mask(path, reference, apply_preprocessing, warnings=warnings, temp_dir=temp_dir,
                                   dicom=dicom)
    is_array = isinstance(source, np.ndarray)
    mask_image = read_image(source, spacing=reference.spacing if is_array else None, warnings=None)
    name = "mask array" if is_array else (mask_image.source or "mask")
    if is_array:
        mask_image = mask_image.with_array(mask_image.array, source=name)
    return mask_from_image(mask_image, reference, apply_preprocessing, warnings,
                           geometry_known=not (is_array or str(name).lower().endswith(".npy")))
