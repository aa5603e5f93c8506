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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..image import Image

Source = Union[str, os.PathLike, np.ndarray, Image]

#: File name endings treated as images (longest first so ".nii.gz" wins over ".gz").
IMAGE_SUFFIXES = (".nii.gz", ".gipl.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".npy", ".dcm", ".dicom",
                  ".img", ".hdr", ".tif", ".tiff", ".vtk", ".gipl")


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
    """True for a file name with an image suffix (DICOM files without suffix: :func:`is_dicom_file`)."""
    name = Path(path).name.lower()
    return not name.startswith(".") and any(name.endswith(s) for s in IMAGE_SUFFIXES)


def _looks_like_dicom_without_preamble(head: bytes) -> bool:
    """The file starts with a group 0002 / 0008 element, as DICOM files written without the
    128-byte preamble do (old scanners, some PACS exports); explicit VR shows its VR letters."""
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08"):
        return False
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():
        return True
    length = int.from_bytes(head[4:8], "little" if head[0] else "big")
    return length < 1024  # implicit VR: a short first element (group length, SOP class, ...)


def is_dicom_file(path: Union[str, os.PathLike]) -> bool:
    """A ``.dcm``/``.dicom`` file, any file with the DICOM preamble ``DICM`` at byte 128, or a
    file that starts like a DICOM data set without the preamble."""
    path = Path(path)
    if path.name.startswith("."):
        return False
    if path.name.lower().endswith((".dcm", ".dicom")):
        return True
    if path.name.lower().endswith(IMAGE_SUFFIXES) or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or _looks_like_dicom_without_preamble(head)


def is_dicom_folder(folder: Union[str, os.PathLike]) -> bool:
    """A folder that directly holds DICOM files (a series, an RTSTRUCT or a SEG)."""
    folder = Path(folder)
    return folder.is_dir() and any(p.is_file() and is_dicom_file(p) for p in folder.iterdir())


def holds_dicom_below(folder: Union[str, os.PathLike], depth: int = 4) -> bool:
    """A folder without DICOM files of its own whose subfolders hold some (patient/study/series
    folders, a DICOMDIR tree), searched ``depth`` levels down."""
    folder = Path(folder)
    if not folder.is_dir() or depth <= 0:
        return False
    subfolders = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    return any(is_dicom_folder(p) or holds_dicom_below(p, depth - 1) for p in subfolders)


def _warn(warnings: Optional[List[str]], message: str) -> None:
    if warnings is not None:
        warnings.append(message)


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


def _sitk_message(exc: Exception) -> str:
    """The informative line of a SimpleITK exception (they carry C++ file/line noise)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "description:" in line.lower():
            return line.split(":", 1)[1].strip()
    return lines[-1] if lines else "unreadable"


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
        raise InputError(f"{path}: cannot read image ({_sitk_message(exc)})") from None
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


@dataclass
class MaskData:
    """ROI definitions on an image's grid.

    labels : integer label map (k, j, i) on the image grid (NIfTI/NRRD/NumPy masks), or None.
    named : structure name -> bool mask on the image grid (RTSTRUCT, DICOM SEG, Slicer segments).
        Values may be memory-mapped ``.npy`` files (RTSTRUCT masks cached in the temporary folder).
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
            from .dicom import read_dicom_mask

            return read_dicom_mask(path, reference, apply_preprocessing, warnings=warnings, temp_dir=temp_dir,
                                   dicom=dicom)
    is_array = isinstance(source, np.ndarray)
    mask_image = read_image(source, spacing=reference.spacing if is_array else None, warnings=None)
    name = "mask array" if is_array else (mask_image.source or "mask")
    if is_array:
        mask_image = mask_image.with_array(mask_image.array, source=name)
    return mask_from_image(mask_image, reference, apply_preprocessing, warnings,
                           geometry_known=not (is_array or str(name).lower().endswith(".npy")))


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
    _warn(warnings, f"{name}: {message}")
    return MaskData(labels=placed)
