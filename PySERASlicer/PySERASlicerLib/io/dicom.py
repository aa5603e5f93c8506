"""DICOM readers written with pydicom: image series folders, single files, RTSTRUCT/SEG masks.

Series folders
    Files are grouped by ``SeriesInstanceUID``; non-image objects (RTSTRUCT, SEG, reports) are
    set aside. When a folder holds several image series, the one with the most images is read
    (or the one named by ``series_uid``) and the choice is reported. Within a series, slices
    are sorted by their position along the slice normal, ``n = row_cosine x column_cosine``,
    i.e. by ``ImagePositionPatient . n``; ``RescaleSlope``/``RescaleIntercept`` are applied per
    slice.
Multi-volume series
    When several images share a slice position (multi-echo, diffusion, dynamic series), the
    series is split into volumes by the first tag that separates them into equal, complete
    volumes: echo time, b-value, trigger/acquisition/content time, flip angle, temporal
    position, acquisition number, echo number (as imagedata sorts by 'te', 'b', 'time', 'fa').
    Volume 0 (lowest tag value) is read unless ``volume`` says otherwise; the split is reported.
    :func:`list_volumes` lets the batch make one case per series and volume.

Geometry: origin = position of the first slice after sorting, direction columns = (row cosine,
column cosine, normal), spacing = (column spacing, row spacing, median slice distance), all in
DICOM's LPS frame, as :class:`~PySERASlicerLib.image.Image` expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..image import Image
from .conversion import image_from_sitk, mask_from_image, sitk_message
from .files import is_dicom_file
from .types import InputError, MaskData

#: SOP classes / modalities that are not image slices.
NON_IMAGE_MODALITIES = ("RTSTRUCT", "SEG", "RTPLAN", "RTDOSE", "SR", "PR", "KO", "REG", "RTRECORD")

#: Tags that split a multi-volume series, in the order they are tried: (keyword or tag, label).
SPLIT_TAGS: Tuple[Tuple[object, str], ...] = (
    ("EchoTime", "echo time"),
    ((0x0018, 0x9087), "b-value"),  # DiffusionBValue
    ((0x0043, 0x1039), "b-value"),  # GE private b-value
    ((0x0019, 0x100C), "b-value"),  # Siemens private b-value
    ("TriggerTime", "trigger time"),
    ("AcquisitionTime", "acquisition time"),
    ("ContentTime", "content time"),
    ("FlipAngle", "flip angle"),
    ("TemporalPositionIdentifier", "temporal position"),
    ("AcquisitionNumber", "acquisition number"),
    ("EchoNumbers", "echo number"),
)


@dataclass
class _Slice:
    path: Path
    header: object  # pydicom Dataset without pixel data
    position: float  # along the slice normal


@dataclass
class DicomSeries:
    """One image series of a folder, already split into volumes (lists of sorted slices)."""

    uid: str
    modality: str
    description: str
    volumes: List[List[_Slice]]
    split_label: str = ""
    split_values: Tuple[str, ...] = ()

    @property
    def n_files(self) -> int:
        return sum(len(v) for v in self.volumes)


def _dcmread(path: Path, headers_only: bool = True):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=headers_only)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: cannot read DICOM file ({type(exc).__name__}: {exc})") from None


def scan_folder(folder: Path, warnings: Optional[List[str]] = None) -> Tuple[Dict[str, List[Tuple[Path, object]]],
                                                                              List[Tuple[Path, object]]]:
    """Headers of the DICOM files directly in ``folder``: ({series uid: [(path, header)]} of
    image files, [(path, header)] of non-image objects)."""
    series: Dict[str, List[Tuple[Path, object]]] = {}
    others: List[Tuple[Path, object]] = []
    unreadable = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_dicom_file(p)):
        try:
            header = _dcmread(path)
        except InputError:
            unreadable.append(path.name)
            continue
        modality = str(header.get("Modality", "")).upper()
        if modality in NON_IMAGE_MODALITIES or "ImagePositionPatient" not in header and "NumberOfFrames" not in header:
            others.append((path, header))
            continue
        series.setdefault(str(header.get("SeriesInstanceUID", "")), []).append((path, header))
    if unreadable and warnings is not None:
        warnings.append(f"{folder}: {len(unreadable)} unreadable DICOM file(s) skipped "
                        f"({', '.join(unreadable[:5])}{', ...' if len(unreadable) > 5 else ''})")
    return series, others


def _normal(header) -> np.ndarray:
    iop = np.asarray([float(v) for v in header.ImageOrientationPatient], dtype=float)
    return np.cross(iop[:3], iop[3:])


def _tag_value(header, tag) -> Optional[str]:
    element = header.get(tag) if isinstance(tag, tuple) else header.get(tag, None)
    if element is None:
        return None
    value = element.value if hasattr(element, "value") else element
    if value is None or value == "":
        return None
    if isinstance(value, bytes):  # private tags read as raw bytes
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    return None if value is None else str(value).strip()


def _sort_key(text: str):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def split_volumes(files: List[Tuple[Path, object]], where: str) -> Tuple[List[List[_Slice]], str, Tuple[str, ...]]:
    """Sort a series' slices along the normal and split it into volumes when positions repeat."""
    if any("ImagePositionPatient" not in h or "ImageOrientationPatient" not in h for _, h in files):
        raise InputError(f"{where}: DICOM images without ImagePositionPatient/ImageOrientationPatient "
                         "cannot be stacked into a volume")
    normal = _normal(files[0][1])
    slices = [_Slice(p, h, float(np.dot([float(v) for v in h.ImagePositionPatient], normal))) for p, h in files]
    positions = np.round([s.position for s in slices], 3)
    unique, counts = np.unique(positions, return_counts=True)
    if counts.max() == 1:
        return [sorted(slices, key=lambda s: s.position)], "", ()
    if counts.min() != counts.max():
        raise InputError(f"{where}: slice positions repeat unevenly ({counts.min()} to {counts.max()} images per "
                         "position); cannot split the series into complete volumes")
    per_position = int(counts[0])
    for tag, label in SPLIT_TAGS:
        values = [_tag_value(s.header, tag) for s in slices]
        if any(v is None for v in values):
            continue
        distinct = sorted(set(values), key=_sort_key)
        if len(distinct) != per_position:
            continue
        volumes = []
        for value in distinct:
            members = [s for s, v in zip(slices, values) if v == value]
            if len(np.unique(np.round([m.position for m in members], 3))) != len(unique):
                break
            volumes.append(sorted(members, key=lambda s: s.position))
        else:
            return volumes, label, tuple(distinct)
    raise InputError(f"{where}: {per_position} images per slice position and no tag (echo time, b-value, "
                     "time, flip angle, temporal position, acquisition/echo number) separates them into volumes")


def list_series(folder: Path, warnings: Optional[List[str]] = None) -> List[DicomSeries]:
    """The image series of a folder, most images first, each split into volumes."""
    groups, _ = scan_folder(folder, warnings)
    result = []
    for uid, files in groups.items():
        header = files[0][1]
        if len(files) == 1 and int(header.get("NumberOfFrames", 1) or 1) > 1:
            volumes = [[_Slice(files[0][0], header, 0.0)]]
            label, values = "", ()
        else:
            volumes, label, values = split_volumes(files, f"{folder} (series {uid})")
        result.append(DicomSeries(uid, str(header.get("Modality", "")), str(header.get("SeriesDescription", "")),
                                  volumes, label, values))
    return sorted(result, key=lambda s: -s.n_files)


def list_volumes(folder: Path) -> List[Tuple[str, int, str]]:
    """(series uid, volume index, short label) for every volume of every image series in a folder."""
    items = []
    for series in list_series(folder):
        for index in range(len(series.volumes)):
            label = series.description or series.modality or series.uid[-8:]
            if series.split_label:
                label += f" {series.split_label} {series.split_values[index]}"
            items.append((series.uid, index, label))
    return items


def _describe(series: DicomSeries) -> str:
    text = f"{series.uid} ({series.modality or '?'}"
    if series.description:
        text += f" '{series.description}'"
    return text + f", {series.n_files} images)"


def _pixel_data(path: Path):
    dataset = _dcmread(path, headers_only=False)
    try:
        pixels = dataset.pixel_array
    except Exception as exc:  # pydicom raises many types for missing handlers / truncated data
        raise InputError(f"{path}: cannot decode pixel data ({type(exc).__name__}: {exc})") from None
    return dataset, pixels


def read_volume(slices: Sequence[_Slice], where: str, warnings: Optional[List[str]] = None) -> Image:
    """Stack sorted slices into an Image (rescale applied, LPS geometry)."""
    first = slices[0].header
    if len(slices) == 1 and int(first.get("NumberOfFrames", 1) or 1) > 1:
        return read_dicom_file(slices[0].path, warnings)
    rows, columns = int(first.Rows), int(first.Columns)
    iop = np.asarray([float(v) for v in first.ImageOrientationPatient], dtype=float)
    for s in slices[1:]:
        if int(s.header.Rows) != rows or int(s.header.Columns) != columns:
            raise InputError(f"{where}: slices have different sizes ({rows}x{columns} and "
                             f"{s.header.Rows}x{s.header.Columns})")
        if not np.allclose([float(v) for v in s.header.ImageOrientationPatient], iop, atol=1e-4):
            raise InputError(f"{where}: slices have different orientations (ImageOrientationPatient)")
    planes = []
    slopes, intercepts = [], []
    for s in slices:
        dataset, pixels = _pixel_data(s.path)
        if pixels.ndim != 2:
            raise InputError(f"{s.path}: expected one 2D frame per file, got pixel data of shape {pixels.shape}")
        planes.append(pixels)
        slopes.append(float(dataset.get("RescaleSlope", 1) or 1))
        intercepts.append(float(dataset.get("RescaleIntercept", 0) or 0))
    slopes_a, intercepts_a = np.asarray(slopes), np.asarray(intercepts)
    stack = np.stack(planes)
    integral = np.all(slopes_a == np.rint(slopes_a)) and np.all(intercepts_a == np.rint(intercepts_a))
    dtype = np.int32 if integral and stack.dtype.kind in "iu" else np.float64
    array = stack.astype(dtype) * slopes_a.astype(dtype)[:, None, None] + intercepts_a.astype(dtype)[:, None, None]

    pixel_spacing = [float(v) for v in first.get("PixelSpacing", [1.0, 1.0])]
    if "PixelSpacing" not in first and warnings is not None:
        warnings.append(f"{where}: no PixelSpacing; assuming 1 mm in-plane")
    positions = np.array([s.position for s in slices])
    if len(slices) > 1:
        steps = np.diff(positions)
        k_spacing = float(np.median(steps))
        if k_spacing <= 0:
            raise InputError(f"{where}: slices share one position; cannot build a volume")
        if np.max(np.abs(steps - k_spacing)) > 0.01 * k_spacing + 1e-3 and warnings is not None:
            warnings.append(f"{where}: slice spacing is not uniform ({steps.min():.4g} to {steps.max():.4g} mm; "
                            f"missing slices?); using the median {k_spacing:.4g} mm")
    else:
        k_spacing = float(first.get("SpacingBetweenSlices", first.get("SliceThickness", 1.0)) or 1.0)
    normal = np.cross(iop[:3], iop[3:])
    direction = np.column_stack([iop[:3], iop[3:], normal])
    origin = tuple(float(v) for v in first.ImagePositionPatient)
    modality = {"MR": "MRI", "PT": "PET"}.get(str(first.get("Modality", "")).upper(),
                                              str(first.get("Modality", "OTHER")).upper() or "OTHER")
    image = Image(array, (pixel_spacing[1], pixel_spacing[0], k_spacing), origin, direction,
                  modality=modality if modality in ("CT", "MRI", "PET") else "OTHER", source=where)
    if image.modality == "PET":  # SUV from the series' tags (io/suv.py); applied per the settings
        from .suv import conversion_from_headers

        image = image.with_array(image.array, pet_suv=conversion_from_headers([s.header for s in slices]))
    return image


def read_dicom_series(folder: Path, warnings: Optional[List[str]] = None, series_uid: Optional[str] = None,
                      volume: Optional[int] = None) -> Image:
    """Read one image volume from a DICOM folder (see the module docstring for the choices)."""
    folder = Path(folder)
    all_series = list_series(folder, warnings)
    if not all_series:
        raise InputError(f"{folder}: no DICOM image series found in this folder")
    if series_uid:
        chosen = [s for s in all_series if s.uid == series_uid]
        if not chosen:
            raise InputError(f"{folder}: no series {series_uid}; series present: "
                             f"{', '.join(_describe(s) for s in all_series)}")
        series = chosen[0]
    else:
        series = all_series[0]
        if len(all_series) > 1 and warnings is not None:
            warnings.append(f"{folder}: {len(all_series)} image series in this folder "
                            f"({'; '.join(_describe(s) for s in all_series)}); using {series.uid} (most images)")
    index = 0 if volume is None else int(volume)
    if not 0 <= index < len(series.volumes):
        raise InputError(f"{folder}: series {series.uid} has {len(series.volumes)} volume(s); volume {index} "
                         "does not exist")
    if len(series.volumes) > 1 and warnings is not None and volume is None:
        warnings.append(f"{folder}: series {series.uid} holds {len(series.volumes)} volumes split by "
                        f"{series.split_label} ({', '.join(series.split_values)}); using volume 0 "
                        f"({series.split_label} {series.split_values[0]})")
    where = str(folder)
    if len(series.volumes) > 1:
        where += f" [{series.split_label} {series.split_values[index]}]"
    return read_volume(series.volumes[index], where, warnings)


def read_dicom_file(path: Path, warnings: Optional[List[str]] = None) -> Image:
    """A single DICOM image file (one slice, or an enhanced multi-frame volume) via SimpleITK."""
    import SimpleITK as sitk

    header = _dcmread(Path(path))
    modality = str(header.get("Modality", "")).upper()
    if modality in NON_IMAGE_MODALITIES:
        raise InputError(f"{path}: a DICOM {modality} object is not an image (give it as the mask)")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read DICOM image ({sitk_message(exc)})") from None
    return image_from_sitk(image, str(path), {"MR": "MRI", "PT": "PET", "CT": "CT"}.get(modality, "OTHER"))


def read_dicom_mask(path: Path, reference: Image, apply_preprocessing: bool = False,
                    warnings: Optional[List[str]] = None, temp_dir: Optional[str] = None) -> MaskData:
    """A DICOM mask: an RTSTRUCT or SEG file (or a folder holding one), or a label-map series."""
    path = Path(path)
    if path.is_dir():
        series, others = scan_folder(path, warnings)
        masks = [(p, h) for p, h in others if str(h.get("Modality", "")).upper() in ("RTSTRUCT", "SEG")]
        if masks:
            if len(masks) > 1 and warnings is not None:
                warnings.append(f"{path}: {len(masks)} RTSTRUCT/SEG files; using {masks[0][0].name}")
            path = masks[0][0]
        elif series:
            labels = read_dicom_series(path, warnings)
            return mask_from_image(labels, reference, apply_preprocessing, warnings)
        else:
            raise InputError(f"{path}: no RTSTRUCT, SEG or DICOM label series found in this mask folder")
    header = _dcmread(path)
    modality = str(header.get("Modality", "")).upper()
    if modality == "RTSTRUCT":
        from .rtstruct import read_rtstruct

        return read_rtstruct(path, reference, warnings=warnings, temp_dir=temp_dir)
    if modality == "SEG":
        from .seg import read_seg

        return read_seg(path, reference, warnings=warnings)
    labels = read_dicom_file(path, warnings)
    return mask_from_image(labels, reference, apply_preprocessing, warnings)
