"""One record per image frame, whether it comes from a single-frame file or from one frame of an
enhanced multi-frame file, and the decoding of their pixel data.

Single-frame files carry their geometry, rescale and acquisition values at the top level of the
header. Enhanced multi-frame files (Enhanced CT/MR/PET, the default of current Philips and
Siemens XA scanners) carry them in functional-group macros: each frame's item of
``PerFrameFunctionalGroupsSequence`` or, when equal for all frames, the one item of
``SharedFunctionalGroupsSequence``. :func:`frames_of` turns both into the same :class:`Frame`
records, so that a series is sorted and split into volumes by one piece of code
(:mod:`.dicom`) whatever the files look like.

Pixel data is decoded by pydicom for native, deflated and RLE transfer syntaxes and by
SimpleITK's GDCM for JPEG, JPEG-LS and JPEG 2000, so no optional pydicom plugin is needed
(GDCM always applies the rescale it finds, so it is given a copy of the file without one, and
the per-frame rescale is applied here like for every other frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .types import InputError

#: Acquisition values that may separate the volumes of a series whose slice positions repeat, in
#: the order they are tried (see :func:`.dicom.split_volumes`). Each maps to where the value is in
#: a single-frame header (keywords or private tags, first found wins) and in an enhanced frame's
#: functional groups ((sequence, keyword) paths).
SPLIT_LABELS: Tuple[str, ...] = (
    "echo time", "b-value", "b-value and gradient direction", "trigger time", "acquisition time",
    "content time", "flip angle", "temporal position", "acquisition number", "echo number", "stack",
)
_SINGLE_FRAME_TAGS: Dict[str, Tuple[object, ...]] = {
    "echo time": ("EchoTime",),
    "b-value": ((0x0018, 0x9087), (0x0043, 0x1039), (0x0019, 0x100C)),  # standard, GE, Siemens
    "gradient direction": ((0x0018, 0x9089), (0x0019, 0x100E)),  # standard, Siemens
    "trigger time": ("TriggerTime",),
    "acquisition time": ("AcquisitionTime",),
    "content time": ("ContentTime",),
    "flip angle": ("FlipAngle",),
    "temporal position": ("TemporalPositionIdentifier",),
    "acquisition number": ("AcquisitionNumber",),
    "echo number": ("EchoNumbers",),
}
_FUNCTIONAL_GROUP_PATHS: Dict[str, Tuple[Tuple[str, ...], ...]] = {
    "echo time": (("MREchoSequence", "EffectiveEchoTime"),),
    "b-value": (("MRDiffusionSequence", "DiffusionBValue"),),
    "gradient direction": (("MRDiffusionSequence", "DiffusionGradientDirectionSequence",
                            "DiffusionGradientOrientation"),),
    "trigger time": (("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"),),
    "acquisition time": (("FrameContentSequence", "FrameAcquisitionDateTime"),),
    "flip angle": (("MRTimingAndRelatedParametersSequence", "FlipAngle"),),
    "temporal position": (("FrameContentSequence", "TemporalPositionIndex"),),
    "stack": (("FrameContentSequence", "StackID"),),
}


@dataclass(eq=False)  # frames are compared by identity
class Frame:
    """One 2D image of a series: a single-frame file or frame ``number`` of a multi-frame file."""

    path: Path
    number: Optional[int]  # 0-based frame of a multi-frame file; None for a single-frame file
    header: object  # the file's pydicom Dataset, without pixel data
    position: Optional[np.ndarray]  # ImagePositionPatient (LPS, mm)
    orientation: Optional[np.ndarray]  # ImageOrientationPatient (row cosine, column cosine)
    pixel_spacing: Optional[Tuple[float, float]]  # (between rows, between columns), mm
    slope: float = 1.0
    intercept: float = 0.0
    known_values: Optional[Dict[str, str]] = None  # SPLIT_LABELS -> value; None = read on first use
    distance: float = 0.0  # position along the series' slice normal, set when the series is sorted

    @property
    def values(self) -> Dict[str, str]:
        """The acquisition values that may split a series (read from a single-frame header only
        when positions repeat: most series never need them)."""
        if self.known_values is None:
            self.known_values = _single_frame_values(self.header)
        return self.known_values

    @property
    def name(self) -> str:
        return self.path.name if self.number is None else f"{self.path.name} frame {self.number + 1}"

    @property
    def identity(self) -> Tuple[str, Optional[int]]:
        """(SOPInstanceUID, frame): the same file copied twice has the same identity."""
        return str(self.header.get("SOPInstanceUID", self.path)), self.number


def read_header(path: Path, headers_only: bool = True):
    """A pydicom Dataset (``force=True``: files without the preamble are read too)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(str(path), stop_before_pixels=headers_only, force=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: cannot read DICOM file ({type(exc).__name__}: {exc})") from None
    if not any(k in dataset for k in ("SOPClassUID", "Modality", "SeriesInstanceUID", "Rows")):
        raise InputError(f"{path}: not a DICOM file (no SOP class, modality, series or image attributes)")
    return dataset


def is_enhanced(header) -> bool:
    """A multi-frame file with per-frame functional groups (Enhanced CT/MR/PET, SEG, ...)."""
    return "PerFrameFunctionalGroupsSequence" in header


def is_localizer(header) -> bool:
    """ImageType says LOCALIZER (scout / topogram images that share a series with the volume)."""
    image_type = header.get("ImageType", None)
    if image_type is None:
        return False
    values = [image_type] if isinstance(image_type, str) else list(image_type)
    return any(str(v).strip().upper() == "LOCALIZER" for v in values)


def _text(value) -> Optional[str]:
    if value is None or value == "" or isinstance(value, bytes):  # private tags read as raw bytes
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        if not len(value):
            return None
        if len(value) > 1:  # a vector (gradient direction)
            return "(" + ",".join(f"{float(v):g}" for v in value) + ")"
        value = value[0]
    if isinstance(value, float):  # binary (FD/FL) values: 1000.0 -> "1000", as DS strings read
        return f"{value:g}"
    text = str(value).strip()
    return text or None


def _header_value(header, tag) -> Optional[str]:
    element = header.get(tag) if isinstance(tag, tuple) else header.get(tag, None)
    if element is None:
        return None
    return _text(element.value if hasattr(element, "value") else element)


def _floats(value) -> Optional[np.ndarray]:
    if value is None:
        return None
    try:
        return np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None


def _combine_diffusion(values: Dict[str, str]) -> None:
    # b = 0 images have no direction; their key is the b-value alone.
    if "b-value" in values:
        direction = values.get("gradient direction")
        values["b-value and gradient direction"] = values["b-value"] + (f" {direction}" if direction else "")


def _single_frame_values(header) -> Dict[str, str]:
    values = {}
    for label, tags in _SINGLE_FRAME_TAGS.items():
        for tag in tags:
            value = _header_value(header, tag)
            if value is not None:
                values[label] = value
                break
    _combine_diffusion(values)
    return values


def _single_frame(path: Path, header) -> Frame:
    spacing = _floats(header.get("PixelSpacing", None))
    return Frame(path, None, header, _floats(header.get("ImagePositionPatient", None)),
                 _floats(header.get("ImageOrientationPatient", None)),
                 None if spacing is None or len(spacing) != 2 else (float(spacing[0]), float(spacing[1])),
                 float(header.get("RescaleSlope", 1) or 1), float(header.get("RescaleIntercept", 0) or 0))


def _group_value(groups: Sequence, path: Sequence[str]):
    """The value at ``path`` (sequence keywords, then an element keyword) in the first of
    ``groups`` (a frame's per-frame item, then the shared item) that has it."""
    for group in groups:
        node = group
        for keyword in path[:-1]:
            sequence = node.get(keyword, None) if node is not None else None
            node = sequence[0] if sequence else None
        if node is not None and path[-1] in node:
            return node.get(path[-1])
    return None


def _enhanced_frames(path: Path, header) -> List[Frame]:
    shared_sequence = header.get("SharedFunctionalGroupsSequence", None)
    shared = shared_sequence[0] if shared_sequence else None
    per_frame = header.PerFrameFunctionalGroupsSequence
    n_frames = int(header.get("NumberOfFrames", len(per_frame)) or len(per_frame))
    if len(per_frame) != n_frames:
        raise InputError(f"{path}: NumberOfFrames is {n_frames} but PerFrameFunctionalGroupsSequence has "
                         f"{len(per_frame)} items")
    frames = []
    for number, item in enumerate(per_frame):
        groups = [g for g in (item, shared) if g is not None]
        values = {}
        for label, paths in _FUNCTIONAL_GROUP_PATHS.items():
            for group_path in paths:
                value = _text(_group_value(groups, group_path))
                if value is not None:
                    values[label] = value
                    break
        _combine_diffusion(values)
        spacing = _floats(_group_value(groups, ("PixelMeasuresSequence", "PixelSpacing")))
        slope = _group_value(groups, ("PixelValueTransformationSequence", "RescaleSlope"))
        intercept = _group_value(groups, ("PixelValueTransformationSequence", "RescaleIntercept"))
        frames.append(Frame(
            path, number, header, _floats(_group_value(groups, ("PlanePositionSequence", "ImagePositionPatient"))),
            _floats(_group_value(groups, ("PlaneOrientationSequence", "ImageOrientationPatient"))),
            None if spacing is None or len(spacing) != 2 else (float(spacing[0]), float(spacing[1])),
            float(slope if slope not in (None, "") else header.get("RescaleSlope", 1) or 1),
            float(intercept if intercept not in (None, "") else header.get("RescaleIntercept", 0) or 0),
            values))
    return frames


def frames_of(path: Path, header) -> List[Frame]:
    """The frames of one image file (one for a single-frame file)."""
    return _enhanced_frames(path, header) if is_enhanced(header) else [_single_frame(path, header)]


# ---------------------------------------------------------------------------------------------
# Pixel data
# ---------------------------------------------------------------------------------------------
def _decoded_by_gdcm(header) -> bool:
    from pydicom.uid import RLELossless

    syntax = getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", None)
    return bool(syntax) and syntax.is_compressed and syntax != RLELossless


def _set_transfer_syntax(dataset) -> None:
    """A file without file meta (no preamble) was parsed with a guessed encoding; pydicom needs
    it written down as the transfer syntax to decode the pixel data."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(dataset, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    if meta is None:
        dataset.file_meta = meta = FileMetaDataset()
    encoding = getattr(dataset, "original_encoding", None)  # pydicom >= 3; 2.x: is_implicit_VR/...
    if encoding is None or encoding[0] is None:
        encoding = (getattr(dataset, "is_implicit_VR", True), getattr(dataset, "is_little_endian", True))
    implicit, little = encoding
    meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                              ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _gdcm_stored_values(path: Path, dataset) -> np.ndarray:
    """Stored values of a JPEG / JPEG-LS / JPEG 2000 file decoded by SimpleITK (GDCM), from a
    copy without rescale (GDCM would apply one rescale to every frame)."""
    import os
    import tempfile

    import SimpleITK as sitk

    for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence"):
        if keyword in dataset:
            delattr(dataset, keyword)
    for sequence in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in dataset.get(sequence, None) or []:
            if "PixelValueTransformationSequence" in item:
                del item.PixelValueTransformationSequence
    handle, temporary = tempfile.mkstemp(suffix=".dcm")
    os.close(handle)
    try:
        dataset.save_as(temporary)
        image = sitk.ReadImage(temporary)
    except RuntimeError as exc:
        from .conversion import sitk_message

        raise InputError(f"{path}: cannot decode pixel data ({sitk_message(exc)})") from None
    finally:
        os.unlink(temporary)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: colour (multi-component) images are not supported")
    return sitk.GetArrayFromImage(image)


def decode_file(path: Path) -> np.ndarray:
    """Stored pixel values of one file, shape (frames, rows, columns)."""
    dataset = read_header(path, headers_only=False)
    if _decoded_by_gdcm(dataset):
        pixels = _gdcm_stored_values(path, dataset)
    else:
        _set_transfer_syntax(dataset)
        try:
            pixels = dataset.pixel_array
        except Exception as exc:  # pydicom raises many types for missing handlers / truncated data
            raise InputError(f"{path}: cannot decode pixel data ({type(exc).__name__}: {exc})") from None
    if int(dataset.get("SamplesPerPixel", 1) or 1) != 1:
        raise InputError(f"{path}: colour (multi-component) images are not supported")
    n_frames = int(dataset.get("NumberOfFrames", 1) or 1)
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3 or pixels.shape[0] != n_frames:
        raise InputError(f"{path}: pixel data of shape {pixels.shape} does not hold {n_frames} frame(s)")
    return pixels


def stored_values(frames: Sequence[Frame]) -> np.ndarray:
    """Stack the stored values of ``frames`` (in their order), decoding each file once."""
    decoded: Dict[Path, np.ndarray] = {}
    planes = []
    for frame in frames:
        if frame.path not in decoded:
            decoded[frame.path] = decode_file(frame.path)
        planes.append(decoded[frame.path][frame.number or 0])
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        raise InputError(f"{frames[0].path.parent}: frames have different sizes ({', '.join(map(str, shapes))})")
    return np.stack(planes)


def rescaled(stack: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """``stored * slope + intercept`` per frame, in a type that holds the result exactly.

    Integer data with integer rescale stays integer: int32 when the rescaled range fits it
    (CT's usual case), else int64 (uint32 stored values above 2**31, large slopes), else
    float64; any non-integer slope or intercept gives float64.
    """
    slopes, intercepts = np.asarray(slopes, dtype=float), np.asarray(intercepts, dtype=float)
    integral = np.all(slopes == np.rint(slopes)) and np.all(intercepts == np.rint(intercepts))
    if not (integral and stack.dtype.kind in "iu"):
        return stack.astype(np.float64) * slopes[:, None, None] + intercepts[:, None, None]
    low = stack.min(axis=(1, 2)).astype(float)
    high = stack.max(axis=(1, 2)).astype(float)
    ends = np.concatenate([low * slopes + intercepts, high * slopes + intercepts])
    for dtype in (np.int32, np.int64):
        info = np.iinfo(dtype)
        if ends.min() >= info.min and ends.max() <= info.max:
            return (stack.astype(dtype) * slopes.astype(dtype)[:, None, None]
                    + intercepts.astype(dtype)[:, None, None])
    return stack.astype(np.float64) * slopes[:, None, None] + intercepts[:, None, None]
