"""Small DICOM objects written with pydicom for the I/O and batch tests.

CT/MR image series (files shuffled on disk), RTSTRUCT with closed planar contours, and a
binary DICOM SEG. Geometry arguments follow :class:`PySERASlicerLib.image.Image`: arrays are
(k, j, i), spacing (i, j, k) in mm, LPS world coordinates.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
ENHANCED_MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
ENHANCED_PET_STORAGE = "1.2.840.10008.5.1.4.1.1.130"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def _base(sop_class: str, modality: str, study_uid: str, series_uid: str, frame_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Test^Phantom"
    ds.PatientID = "TEST001"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    return ds


_PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])


def _save(ds: Dataset, path: Path) -> None:
    # A conformant Part 10 file (preamble + file meta). pydicom 3 spells this
    # enforce_file_format=True; pydicom 2.x (what Slicer 5.6-5.10 bundle) spells it
    # write_like_original=False, which pydicom 3 deprecates.
    if _PYDICOM_MAJOR >= 3:
        ds.save_as(str(path), enforce_file_format=True)
    else:
        ds.save_as(str(path), write_like_original=False)


def world_geometry(spacing: Sequence[float], origin: Sequence[float], iop: Sequence[float]):
    """(direction (3x3, columns i, j, k), index->world 4x4) of a series with this geometry."""
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    direction = np.column_stack([row, col, np.cross(row, col)])
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(spacing)
    affine[:3, 3] = origin
    return direction, affine


def write_series(folder: Path, stored: np.ndarray, spacing=(0.8, 0.8, 2.5), origin=(-10.0, -20.0, 30.0),
                 iop=(1, 0, 0, 0, 1, 0), slope: float = 1.0, intercept: float = -1024.0, modality: str = "CT",
                 series_uid: Optional[str] = None, study_uid: Optional[str] = None, frame_uid: Optional[str] = None,
                 per_slice: Optional[Callable[[int], Dict]] = None, prefix: str = "slice",
                 seed: int = 0, dtype=np.int16, positions: Optional[np.ndarray] = None) -> Dict[str, str]:
    """Write ``stored`` (k, j, i) stored values (``dtype``: int16, uint16, uint32, ...) as one file
    per slice, in shuffled file order. ``positions`` (k, 3) overrides the slice positions (gantry
    tilt, gaps); by default slice k lies at origin + k * spacing_k * normal.

    Returns the UIDs used ({"series", "study", "frame"}).
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    _, affine = world_geometry(spacing, origin, iop)
    order = list(range(stored.shape[0]))
    random.Random(seed).shuffle(order)
    sop = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
    for file_number, k in enumerate(order):
        ds = _base(sop, modality, study_uid, series_uid, frame_uid)
        position = affine[:3, :3] @ np.array([0.0, 0.0, float(k)]) + affine[:3, 3]
        if positions is not None:
            position = positions[k]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in iop]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]  # (row spacing, column spacing)
        ds.SliceThickness = f"{spacing[2]:.6f}"
        ds.InstanceNumber = file_number + 1  # deliberately not the slice order
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[2]
        bits = np.dtype(dtype).itemsize * 8
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
        ds.PixelRepresentation = 1 if np.dtype(dtype).kind == "i" else 0
        ds.PixelData = np.ascontiguousarray(stored[k], dtype=dtype).tobytes()
        if per_slice:
            for key, value in per_slice(k).items():
                setattr(ds, key, value)
        _save(ds, folder / f"{prefix}_{file_number:03d}.dcm")
    return {"series": series_uid, "study": study_uid, "frame": frame_uid}


def _item(**elements) -> DicomSequence:
    """A one-item sequence (functional-group macros hold one item)."""
    item = Dataset()
    for key, value in elements.items():
        setattr(item, key, value)
    return DicomSequence([item])


def write_enhanced(path: Path, frames: Sequence[Dict], spacing=(0.8, 0.8), iop=(1, 0, 0, 0, 1, 0),
                   modality: str = "MR", uids: Optional[Dict[str, str]] = None, shared_rescale=None,
                   dtype=np.int16) -> Dict[str, str]:
    """An Enhanced MR/CT Image file built from the standard's functional-group macros.

    ``frames`` are dicts with ``stored`` (2D array, (j, i)) and ``position`` (LPS) and
    optionally ``slope``/``intercept`` (per-frame Pixel Value Transformation), ``echo_time``
    (MR Echo), ``b_value`` / ``gradient`` (MR Diffusion with a gradient direction),
    ``temporal_index``, ``stack_id``, ``acquisition_datetime`` (Frame Content), ``iop`` (a
    per-frame Plane Orientation, e.g. a file with stacks in several orientations). Frames are
    written in the given order. Orientation and pixel measures are shared unless a frame has its
    own; ``shared_rescale`` = (slope, intercept[, rescale type]) puts the rescale in the shared
    group instead. ``modality`` "MR", "CT" or "PT" (Enhanced PET). Returns the UIDs used.
    """
    uids = dict(uids or {})
    uids.setdefault("series", generate_uid())
    uids.setdefault("study", generate_uid())
    uids.setdefault("frame", generate_uid())
    sop = {"MR": ENHANCED_MR_STORAGE, "PT": ENHANCED_PET_STORAGE}.get(modality, ENHANCED_CT_STORAGE)
    ds = _base(sop, modality, uids["study"], uids["series"], uids["frame"])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    first = np.asarray(frames[0]["stored"])
    ds.Rows, ds.Columns = first.shape
    bits = np.dtype(dtype).itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 1 if np.dtype(dtype).kind == "i" else 0
    ds.NumberOfFrames = len(frames)
    shared = Dataset()
    if not any("iop" in frame for frame in frames):
        shared.PlaneOrientationSequence = _item(ImageOrientationPatient=[f"{v:.6f}" for v in iop])
    shared.PixelMeasuresSequence = _item(PixelSpacing=[f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"],
                                         SliceThickness="1.0")
    if shared_rescale is not None:
        shared.PixelValueTransformationSequence = _item(RescaleSlope=f"{shared_rescale[0]:g}",
                                                        RescaleIntercept=f"{shared_rescale[1]:g}",
                                                        RescaleType=(list(shared_rescale) + ["US"])[2])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for number, frame in enumerate(frames):
        group = Dataset()
        group.PlanePositionSequence = _item(ImagePositionPatient=[f"{v:.6f}" for v in frame["position"]])
        content = {"FrameAcquisitionNumber": number + 1}
        if "temporal_index" in frame:
            content["TemporalPositionIndex"] = frame["temporal_index"]
        if "stack_id" in frame:
            content["StackID"] = str(frame["stack_id"])
        if "acquisition_datetime" in frame:
            content["FrameAcquisitionDateTime"] = frame["acquisition_datetime"]
        if "iop" in frame:
            group.PlaneOrientationSequence = _item(ImageOrientationPatient=[f"{v:.6f}" for v in frame["iop"]])
        group.FrameContentSequence = _item(**content)
        if "slope" in frame or "intercept" in frame:
            group.PixelValueTransformationSequence = _item(RescaleSlope=f"{frame.get('slope', 1):g}",
                                                           RescaleIntercept=f"{frame.get('intercept', 0):g}",
                                                           RescaleType="US")
        if "echo_time" in frame:
            group.MREchoSequence = _item(EffectiveEchoTime=float(frame["echo_time"]))
        if "b_value" in frame:
            diffusion = Dataset()
            diffusion.DiffusionBValue = float(frame["b_value"])
            diffusion.DiffusionDirectionality = "DIRECTIONAL" if "gradient" in frame else "NONE"
            if "gradient" in frame:
                diffusion.DiffusionGradientDirectionSequence = _item(
                    DiffusionGradientOrientation=[float(v) for v in frame["gradient"]])
            group.MRDiffusionSequence = DicomSequence([diffusion])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = np.ascontiguousarray(np.stack([np.asarray(f["stored"]) for f in frames]), dtype=dtype).tobytes()
    _save(ds, path)
    return uids


def compress_file(path: Path, compressor: str) -> str:
    """Re-encode a file's pixel data frame by frame with SimpleITK/GDCM ("JPEG" = JPEG Lossless
    process 14, "JPEG2000" = JPEG 2000 lossless), keeping every other element as written
    (single- and multi-frame files). Returns the new transfer syntax UID."""
    import tempfile

    import SimpleITK as sitk
    from pydicom.encaps import encapsulate

    if _PYDICOM_MAJOR >= 3:
        from pydicom.encaps import generate_frames
    else:  # pydicom 2.x
        from pydicom.encaps import generate_pixel_data_frame as generate_frames

    ds = pydicom.dcmread(str(path))
    stored = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    fragments = []
    with tempfile.TemporaryDirectory() as folder:
        encoded = Path(folder) / "encoded.dcm"
        for frame in stored:
            writer = sitk.ImageFileWriter()
            writer.SetFileName(str(encoded))
            writer.SetUseCompression(True)
            writer.SetCompressor(compressor)
            writer.Execute(sitk.GetImageFromArray(frame[None]))
            compressed = pydicom.dcmread(str(encoded))
            syntax = compressed.file_meta.TransferSyntaxUID
            fragments.append(next(generate_frames(compressed.PixelData)))
    ds.PixelData = encapsulate(fragments)
    ds.file_meta.TransferSyntaxUID = syntax
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    _save(ds, path)
    return str(syntax)


def strip_preamble(path: Path, implicit_vr: bool = False) -> None:
    """Rewrite a Part 10 file as old scanners write DICOM: no 128-byte preamble, no file meta
    (the data set starts at byte 0, in explicit or ``implicit_vr`` little endian)."""
    if implicit_vr:
        from pydicom.uid import ImplicitVRLittleEndian

        ds = pydicom.dcmread(str(path))
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        if _PYDICOM_MAJOR < 3:  # pydicom 2.x encodes by these flags, 3.x by the transfer syntax
            ds.is_implicit_VR, ds.is_little_endian = True, True
        _save(ds, path)
    data = path.read_bytes()
    assert data[128:132] == b"DICM" and data[132:134] == b"\x02\x00"
    group_length = int.from_bytes(data[140:144], "little")
    path.write_bytes(data[144 + group_length:])


def write_rtstruct(path: Path, structures: Dict[str, List[np.ndarray]], uids: Dict[str, str],
                   open_contours: int = 0) -> None:
    """An RTSTRUCT; ``structures`` maps ROI name -> list of (n, 3) LPS contour point arrays."""
    ds = _base(RTSTRUCT_STORAGE, "RTSTRUCT", uids["study"], generate_uid(), uids["frame"])
    ds.StructureSetLabel = "test"
    roi_items, contour_items = [], []
    for number, (name, contours) in enumerate(structures.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ROIName = name
        roi.ReferencedFrameOfReferenceUID = uids["frame"]
        roi.ROIGenerationAlgorithm = "MANUAL"
        roi_items.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = [255, 0, 0]
        sequence = []
        for points in contours:
            contour = Dataset()
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [f"{v:.4f}" for v in np.asarray(points, float).ravel()]
            sequence.append(contour)
        for _ in range(open_contours):
            contour = Dataset()
            contour.ContourGeometricType = "POINT"
            contour.NumberOfContourPoints = 1
            contour.ContourData = [f"{v:.4f}" for v in np.asarray(contours[0][0], float)]
            sequence.append(contour)
        item.ContourSequence = DicomSequence(sequence)
        contour_items.append(item)
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    _save(ds, path)


def write_seg(path: Path, segments: Dict[str, np.ndarray], uids: Dict[str, str], spacing=(0.8, 0.8, 2.5),
              origin=(-10.0, -20.0, 30.0), iop=(1, 0, 0, 0, 1, 0)) -> None:
    """A binary DICOM SEG; ``segments`` maps label -> bool (k, j, i) array on the grid given by
    spacing/origin/iop. Only slices where a segment is present get a frame."""
    try:
        from pydicom.pixels import pack_bits  # pydicom >= 3
    except ImportError:  # pydicom 2.x (Slicer 5.6-5.10)
        from pydicom.pixel_data_handlers.numpy_handler import pack_bits

    ds = _base(SEG_STORAGE, "SEG", uids["study"], generate_uid(), uids["frame"])
    first = next(iter(segments.values()))
    ds.SegmentationType = "BINARY"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = first.shape[1], first.shape[2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.LossyImageCompression = "00"
    _, affine = world_geometry(spacing, origin, iop)
    segment_items, frames, per_frame = [], [], []
    for number, (label, mask) in enumerate(segments.items(), start=1):
        item = Dataset()
        item.SegmentNumber = number
        item.SegmentLabel = label
        item.SegmentAlgorithmType = "MANUAL"
        segment_items.append(item)
        for k in np.flatnonzero(mask.any(axis=(1, 2))):
            frames.append(mask[k].astype(np.uint8))
            group = Dataset()
            ident = Dataset()
            ident.ReferencedSegmentNumber = number
            group.SegmentIdentificationSequence = DicomSequence([ident])
            plane = Dataset()
            position = affine[:3, :3] @ np.array([0.0, 0.0, float(k)]) + affine[:3, 3]
            plane.ImagePositionPatient = [f"{v:.6f}" for v in position]
            group.PlanePositionSequence = DicomSequence([plane])
            per_frame.append(group)
    ds.SegmentSequence = DicomSequence(segment_items)
    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    measures = Dataset()
    measures.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]
    measures.SliceThickness = f"{spacing[2]:.6f}"
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = pack_bits(np.stack(frames))
    _save(ds, path)


def square(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    """A closed square contour (LPS points) in the plane z."""
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


def index_to_world(affine: np.ndarray, ijk: Sequence[float]) -> np.ndarray:
    return affine[:3, :3] @ np.asarray(ijk, float) + affine[:3, 3]


def slow_point_in_polygon(px: float, py: float, poly: np.ndarray) -> bool:
    """Textbook ray casting (one point, Python loop): the independent reference for the tests."""
    inside = False
    n = len(poly)
    for a in range(n):
        x0, y0 = poly[a]
        x1, y1 = poly[(a + 1) % n]
        if (y0 <= py < y1) or (y1 <= py < y0):
            x_cross = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
            if px >= x_cross:
                inside = not inside
    return inside


def ct_volume(shape: Tuple[int, int, int] = (8, 24, 20), seed: int = 1) -> np.ndarray:
    """Stored int16 values with a recognisable per-slice offset (to check slice order)."""
    rng = np.random.default_rng(seed)
    k = np.arange(shape[0])[:, None, None]
    return (1000 + 10 * k + rng.integers(0, 5, size=shape)).astype(np.int16)


__all__ = ["write_series", "write_enhanced", "compress_file", "strip_preamble", "write_rtstruct",
           "write_seg", "square", "world_geometry", "slow_point_in_polygon",
           "ct_volume", "index_to_world", "pydicom"]
