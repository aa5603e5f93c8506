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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..image import Image
from .conversion import image_from_sitk, image_on_sitk_grid, labels_from_array, mask_from_image, sitk_message  # noqa: F401
from .conversion import warn as _warn
from .files import IMAGE_SUFFIXES, case_name, is_dicom_file, is_dicom_folder, is_image_file  # noqa: F401
from .nifti_geometry import itk_grid
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
    image_io = ""  # ITK's factory picks the reader, trying every format
    if path.name.lower().endswith((".nii", ".nii.gz")):
        layout, voxels = _check_nifti(path)
        image = _image_from_voxels(path, layout, voxels, modality or "OTHER") if voxels is not None else None
        if image is not None:
            return image
        if layout is not None:  # a NIfTI header: its reader directly (4 ms less for a CT's .nii.gz)
            image_io = "NiftiImageIO"
    import SimpleITK as sitk

    try:
        sitk_image = sitk.ReadImage(str(path), imageIO=image_io)
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read image ({sitk_message(exc)})") from None
    return image_from_sitk(sitk_image, str(path), modality or "OTHER")


#: NIfTI datatype codes -> numpy type (byte order added when read): the scalar types, each read
#: by ITK into the same numpy type.
_NIFTI_TYPES = {16: "f4", 64: "f8", 2: "u1", 4: "i2", 8: "i4", 256: "i1", 512: "u2", 768: "u4", 1024: "i8",
                1280: "u8"}


@dataclass(frozen=True)
class _NiftiLayout:
    """What :func:`check_nifti_complete` needs from a NIfTI-1/2 header."""

    endian: str
    offset: int
    dims: Tuple[int, ...]  # dim[1..dim[0]]
    item_size: int
    datatype: int
    slope: float
    inter: float
    single_file: bool  # magic "n+1" / "n+2": header and voxels in one .nii
    header: bytes  # the header's bytes (348 for NIfTI-1, 540 for NIfTI-2)

    @property
    def n_voxels(self) -> int:
        return int(np.prod([max(d, 1) for d in self.dims]))


def _nifti_layout(header: bytes) -> Optional[_NiftiLayout]:
    """The layout of a NIfTI-1/2 header, or None when it is not one."""
    import struct

    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", header[70:74])
            offset = max(int(struct.unpack(endian + "f", header[108:112])[0]), 348)
            slope, inter = struct.unpack(endian + "2f", header[112:120])
            single_file = header[344:348] == b"n+1\0"
            header_size = 348
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            datatype, bitpix = struct.unpack(endian + "2h", header[12:16])
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = max(int(struct.unpack(endian + "q", header[168:176])[0]), 540)
            slope, inter = struct.unpack(endian + "2d", header[176:192])
            single_file = header[4:8] == b"n+2\0"
            header_size = 540
            break
    else:
        return None
    n_dims = int(dims[0])
    if not 1 <= n_dims <= 7 or bitpix <= 0 or bitpix % 8:
        return None
    return _NiftiLayout(endian, offset, tuple(int(d) for d in dims[1:n_dims + 1]), bitpix // 8, int(datatype),
                        float(slope), float(inter), single_file, bytes(header[:header_size]))


def check_nifti_complete(path: Path) -> Optional[np.ndarray]:
    """Raise :class:`InputError` for a truncated NIfTI file or one with NaN/infinite voxels.

    ITK reads a truncated ``.nii``/``.nii.gz`` without an error, filling the missing voxels with
    zeros, and its NIfTI reader turns NaN voxels into 0: both would silently give wrong features.
    The header says how many bytes the file must hold; for ``.gz`` the gzip trailer's
    uncompressed size is checked. Floating-point data is decoded once to count non-finite values.

    Returns the voxels (flat, file order) where they stand in for ITK's reading of the file, so
    that it is not decompressed twice: one 3D volume of scalar voxels in native byte order
    without intensity scaling, from a ``.nii``, or from a ``.nii.gz`` when they are floating-point
    (decoded anyway to look for NaN) or when the optional libdeflate decoder is installed
    (:func:`whole_gzip_decoder`). Otherwise None: ITK reads the file.
    """
    return _check_nifti(path)[1]


#: Set to ``zlib`` to decode ``.nii.gz`` files with zlib / ITK even where libdeflate is installed.
GZIP_DECODER_ENV = "PYSERA_GZIP_DECODER"


def whole_gzip_decoder() -> Optional[Callable[[bytes], Optional[bytes]]]:
    """libdeflate's one-shot gzip decoder from the optional ``deflate`` package (``pip install
    PySERASlicerLib[fast]``), which inflates a CT's ``.nii.gz`` in about a third of zlib's (and ITK's)
    time and gives the same bytes; None where it is not installed (Slicer's default) or where
    ``PYSERA_GZIP_DECODER=zlib``. The decoder returns None for data it cannot decode."""
    if os.environ.get(GZIP_DECODER_ENV, "").strip().lower() == "zlib":
        return None
    return _libdeflate_decoder()


@lru_cache(maxsize=1)
def _libdeflate_decoder() -> Optional[Callable[[bytes], Optional[bytes]]]:
    try:
        import deflate
    except ImportError:
        return None

    def decode(data: bytes) -> Optional[bytes]:
        try:
            return deflate.gzip_decompress(data)
        except (deflate.DeflateError, ValueError, OverflowError):
            return None  # truncated, corrupt, several members: the streamed read tells which
    return decode


def _check_nifti(path: Path) -> Tuple[Optional[_NiftiLayout], Optional[np.ndarray]]:
    """:func:`check_nifti_complete`, also giving the header's layout (None: not a NIfTI header)."""
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
        return None, None  # not a NIfTI header we understand; let ITK report it
    offset, item_size = layout.offset, layout.item_size
    expected = offset + layout.n_voxels * item_size
    decoder = whole_gzip_decoder() if compressed else None
    code = _NIFTI_TYPES.get(layout.datatype)
    if code is not None and item_size != int(code[1]):
        code = None
    dtype = np.dtype(layout.endian + code) if code is not None else None
    is_float = dtype is not None and dtype.kind == "f"
    # ITK reads these voxels as they are in the file: its image is the array and the header's grid
    as_read_by_itk = (dtype is not None and dtype.isnative and layout.single_file and len(layout.dims) == 3
                      and layout.slope in (0.0, 1.0) and layout.inter == 0.0)
    # integer voxels of a .nii.gz are left to ITK unless libdeflate inflates them: ITK's zlib-ng
    # inflates a mask about three times as fast as Python's zlib
    keep = as_read_by_itk and (is_float or not compressed or decoder is not None)
    if decoder and as_read_by_itk:
        data = decoder(path.read_bytes())
        if data is not None and len(data) >= expected:
            voxels = np.frombuffer(data, dtype, layout.n_voxels, offset).copy()  # writable, as ITK's
            del data
            _raise_for_non_finite(path, voxels)
            return layout, voxels
    if not compressed:
        size = path.stat().st_size
        if size < expected:
            raise InputError(f"{path}: cannot read image (file is truncated: {size} of {expected} bytes)")
        if keep:
            voxels = np.fromfile(path, dtype, layout.n_voxels, offset=offset)
            _raise_for_non_finite(path, voxels)
            return layout, voxels
        if not is_float:
            return layout, None
    elif not is_float and not keep:
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            if int.from_bytes(handle.read(4), "little") == expected % (1 << 32):
                return layout, None
    # streamed: voxels ITK would read as they are kept; other floating-point voxels are checked
    # block by block; a compressed file whose trailer does not tell (over 4 GB, several members)
    # is counted
    if not is_float and not keep:
        dtype = None
    voxels = np.empty(layout.n_voxels, dtype=dtype) if keep else None
    count, bad = 0, 0
    block = item_size * (1 << 20)
    try:
        with opener() as handle:
            handle.read(offset)
            count = offset
            for chunk in iter(lambda: handle.read(block), b""):
                usable = min(len(chunk), max(expected - count, 0)) // item_size * item_size
                if usable > 0 and dtype is not None:
                    values = np.frombuffer(chunk, dtype, usable // item_size)
                    if voxels is not None:
                        start = (count - offset) // item_size
                        voxels[start:start + values.size] = values
                    else:  # not kept: memory stays one block
                        bad += int(np.count_nonzero(~np.isfinite(values)))
                count += len(chunk)
    except (OSError, EOFError, zlib.error):
        raise InputError(f"{path}: cannot read image (compressed file is truncated or corrupt after "
                         f"{count} of {expected} bytes)") from None
    if count < expected:
        raise InputError(f"{path}: cannot read image (file is truncated: {count} of {expected} bytes)")
    if voxels is not None:
        _raise_for_non_finite(path, voxels)
    elif bad:
        raise InputError(f"{path}: image contains {bad} NaN or infinite voxel value(s)")
    return layout, voxels


def _raise_for_non_finite(path: Path, voxels: np.ndarray) -> None:
    if voxels.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(voxels)))
        if bad:
            raise InputError(f"{path}: image contains {bad} NaN or infinite voxel value(s)")


def _image_from_voxels(path: Path, layout: _NiftiLayout, voxels: np.ndarray, modality: str) -> Optional[Image]:
    """The image of a NIfTI file from its decoded voxels and the grid ITK gives its header (in
    LPS, as a full read): worked out here where ITK's rules decide simply (SimpleITK is then not
    imported), else read by ITK from the header alone. None where ITK would read other voxels."""
    grid = itk_grid(layout.header)
    if grid is not None:
        spacing, origin, direction = grid
        return Image(voxels.reshape(layout.dims[::-1]), spacing, origin, direction, modality=modality,
                     source=str(path))
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO("NiftiImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read image ({sitk_message(exc)})") from None
    size = reader.GetSize()
    if reader.GetDimension() != 3 or reader.GetNumberOfComponents() != 1 or int(np.prod(size)) != voxels.size:
        return None
    # the array type ITK's full read would give: SimpleITK's own pixel-type mapping, on one voxel
    if sitk.GetArrayViewFromImage(sitk.Image([1, 1, 1], reader.GetPixelID())).dtype != voxels.dtype:
        return None
    return image_on_sitk_grid(voxels.reshape(size[::-1]), reader, str(path), modality)


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
