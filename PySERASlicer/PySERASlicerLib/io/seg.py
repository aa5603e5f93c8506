"""DICOM SEG -> one boolean mask per segment on an image grid.

Each segment (``SegmentSequence``) becomes its own ROI, named by its ``SegmentLabel``; where
several segments share a label (a whole-body SEG with ten "Neoplasm, Secondary" lesions), each
of them is named ``<label>_<segment number>``, so none overwrites another. Every frame belongs
to one segment (``SegmentIdentificationSequence``) and has its own position
(``PlanePositionSequence``) and orientation (per frame or shared ``PlaneOrientationSequence``).

Placement, per frame:

1. a frame that references an image slice (``DerivationImageSequence`` /
   ``SourceImageSequence`` -> ``ReferencedSOPInstanceUID``) of the reference series goes onto
   that slice;
2. otherwise its position is mapped into the image grid; when the frame lines up with the grid
   (same in-plane spacing and orientation, position within :data:`ON_GRID_TOLERANCE` voxel of a
   voxel centre; writers often leave a few hundredths of a voxel) it is copied in place;
3. the remaining frames of a segment are stacked into a volume on their own grid and resampled
   onto the image grid by nearest neighbour (reported).

``FRACTIONAL`` segmentations are thresholded at half their maximum value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..image import Image
from .types import InputError, MaskData

#: A frame whose position is within this fraction of a voxel of the image grid is on the grid.
ON_GRID_TOLERANCE = 0.1


def _first(sequence_owner, keyword):
    sequence = sequence_owner.get(keyword) if sequence_owner is not None else None
    return sequence[0] if sequence else None


def _frame_geometry(dataset, index: int):
    """(position (3,), orientation (6,), pixel spacing (row, column)) of one frame."""
    shared = _first(dataset, "SharedFunctionalGroupsSequence")
    per_frame = dataset.PerFrameFunctionalGroupsSequence[index]

    def lookup(sequence, attribute):
        for group in (per_frame, shared):
            item = _first(group, sequence)
            if item is not None and attribute in item:
                return [float(v) for v in item.get(attribute)]
        return None

    position = lookup("PlanePositionSequence", "ImagePositionPatient")
    orientation = lookup("PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = lookup("PixelMeasuresSequence", "PixelSpacing")
    if position is None or orientation is None or spacing is None:
        raise InputError(f"frame {index + 1}: missing plane position, orientation or pixel spacing")
    return np.asarray(position), np.asarray(orientation), spacing


def _referenced_instance(dataset, index: int) -> Optional[str]:
    """The SOP instance UID of the image slice frame ``index`` was derived from, if given."""
    derivation = _first(dataset.PerFrameFunctionalGroupsSequence[index], "DerivationImageSequence")
    source = _first(derivation, "SourceImageSequence")
    uid = source.get("ReferencedSOPInstanceUID") if source is not None else None
    return str(uid) if uid else None


def _slices_by_instance(reference: Image, world_to_index: np.ndarray) -> Dict[str, int]:
    """SOP instance UID -> slice index k of the reference image's DICOM files (headers only),
    when the reference was read from a DICOM folder; empty otherwise."""
    # the DICOM reader names a series by its folder, plus " [<tag> <value>]" for one volume of several
    candidates = [Path(reference.source), Path(reference.source.rsplit(" [", 1)[0])] if reference.source else []
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        return {}
    from .dicom import scan_folder

    n_k = reference.array.shape[0]
    series, _ = scan_folder(folder)
    slices: Dict[str, int] = {}
    for files in series.values():
        for _, header in files:
            if "SOPInstanceUID" not in header or "ImagePositionPatient" not in header:
                continue
            position = np.asarray([float(v) for v in header.ImagePositionPatient])
            k = (world_to_index[:3, :3] @ position + world_to_index[:3, 3])[2]
            if abs(k - round(k)) < ON_GRID_TOLERANCE and 0 <= round(k) < n_k:
                slices[str(header.SOPInstanceUID)] = int(round(k))
    return slices


def segment_names(labels: Dict[int, str]) -> Dict[int, str]:
    """Segment number -> ROI name: the label, or ``<label>_<segment number>`` for every segment
    whose label another segment shares (then also unique against the other names).

    >>> segment_names({1: "Liver", 2: "Lesion", 3: "Lesion"})
    {1: 'Liver', 2: 'Lesion_2', 3: 'Lesion_3'}
    """
    counts: Dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    names: Dict[int, str] = {}
    taken = {label for label, count in counts.items() if count == 1}
    for number, label in labels.items():
        if counts[label] == 1:
            names[number] = label
            continue
        name, extra = f"{label}_{number}", 1
        while name in taken:  # a label that already reads "<label>_<number>"
            extra += 1
            name = f"{label}_{number}_{extra}"
        taken.add(name)
        names[number] = name
    return names


def read_seg(path: Path, reference: Image, warnings: Optional[List[str]] = None) -> MaskData:
    """All segments of a DICOM SEG as named bool masks on ``reference``'s grid."""
    import pydicom

    path = Path(path)
    try:
        dataset = pydicom.dcmread(str(path))
        frames = dataset.pixel_array
    except Exception as exc:  # pydicom: truncated or malformed file, missing pixel handler
        raise InputError(f"{path}: cannot read DICOM SEG ({type(exc).__name__}: {exc})") from None
    if str(dataset.get("Modality", "")).upper() != "SEG":
        raise InputError(f"{path}: not a DICOM SEG (Modality {dataset.get('Modality', '?')})")
    n_frames = int(dataset.get("NumberOfFrames", 1) or 1)
    frames = frames.reshape(n_frames, int(dataset.Rows), int(dataset.Columns))
    if str(dataset.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL":
        maximum = float(dataset.get("MaximumFractionalValue", 255) or 255)
        frames = frames >= 0.5 * maximum
    else:
        frames = frames > 0
    labels = {int(item.SegmentNumber): str(item.get("SegmentLabel", f"segment_{item.SegmentNumber}"))
              for item in dataset.get("SegmentSequence", [])}
    if not labels:
        raise InputError(f"{path}: the SEG defines no segments")

    world_to_index = np.linalg.inv(reference.index_to_world())
    n_k, n_j, n_i = reference.array.shape
    names = segment_names(labels)
    named: Dict[str, np.ndarray] = {}
    by_segment: Dict[int, List[int]] = {number: [] for number in labels}
    for index in range(n_frames):
        item = _first(dataset.PerFrameFunctionalGroupsSequence[index], "SegmentIdentificationSequence")
        number = int(item.ReferencedSegmentNumber) if item is not None else 1
        by_segment.setdefault(number, []).append(index)
    instance_slices: Optional[Dict[str, int]] = None  # read on first need
    resampled = []
    outside = 0
    for number, frame_indices in by_segment.items():
        name = names.get(number, f"segment_{number}")
        mask = np.zeros(reference.array.shape, dtype=bool)
        off_grid = []
        for index in frame_indices:
            try:
                position, orientation, spacing = _frame_geometry(dataset, index)
            except InputError as exc:
                raise InputError(f"{path}: {exc}") from None
            start = world_to_index[:3, :3] @ position + world_to_index[:3, 3]
            in_plane = (np.allclose(orientation[:3], reference.direction[:, 0], atol=1e-3)
                        and np.allclose(orientation[3:], reference.direction[:, 1], atol=1e-3)
                        and np.allclose([spacing[1], spacing[0]], reference.spacing[:2], rtol=1e-3)
                        and np.all(np.abs(start[:2] - np.rint(start[:2])) < ON_GRID_TOLERANCE))
            uid = _referenced_instance(dataset, index) if in_plane else None
            if uid is not None and instance_slices is None:
                instance_slices = _slices_by_instance(reference, world_to_index)
            if uid is not None and uid in instance_slices:
                k = instance_slices[uid]
            elif in_plane and abs(start[2] - np.rint(start[2])) < ON_GRID_TOLERANCE:
                k = int(np.rint(start[2]))
            else:
                off_grid.append(index)
                continue
            i0, j0 = (int(v) for v in np.rint(start[:2]))
            if not 0 <= k < n_k:
                outside += int(frames[index].sum())
                continue
            frame = frames[index]
            j_lo, i_lo = max(j0, 0), max(i0, 0)
            j_hi, i_hi = min(j0 + frame.shape[0], n_j), min(i0 + frame.shape[1], n_i)
            if j_hi > j_lo and i_hi > i_lo:
                part = frame[j_lo - j0:j_hi - j0, i_lo - i0:i_hi - i0]
                mask[k, j_lo:j_hi, i_lo:i_hi] |= part
                outside += int(frame.sum() - part.sum())
            else:
                outside += int(frame.sum())
        if off_grid:
            mask |= _resample_frames(dataset, frames, off_grid, reference, path)
            resampled.append(name)
        named[name] = mask
    if warnings is not None:
        repeated = sorted({label for label in labels.values() if list(labels.values()).count(label) > 1})
        for label in repeated:
            numbers = [number for number, text in labels.items() if text == label]
            warnings.append(f"{path.name}: segments {', '.join(map(str, numbers))} share the label {label!r}; "
                            f"read as ROIs {', '.join(repr(names[n]) for n in numbers)}")
        if resampled:
            warnings.append(f"{path.name}: segment(s) {', '.join(resampled)} are on another grid than the image; "
                            "resampled onto the image grid (nearest neighbour)")
        if outside:
            warnings.append(f"{path.name}: {outside} segmented voxels lie outside the image and were dropped")
    sources = {names.get(n, f"segment_{n}"): f"{path.name}: segment {n} {labels.get(n, '')!r}" for n in by_segment}
    return MaskData(named=named, sources=sources)


def _resample_frames(dataset, frames: np.ndarray, indices: List[int], reference: Image, path: Path) -> np.ndarray:
    """Stack frames (one segment) into a volume on their own grid, then nearest-neighbour
    resample it onto ``reference``."""
    from .geometry import resample_labels_to

    geometry = [_frame_geometry(dataset, index) for index in indices]
    orientation = geometry[0][1]
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([float(np.dot(g[0], normal)) for g in geometry])
    order = np.argsort(positions)
    sorted_positions = positions[order]
    if len(indices) > 1:
        steps = np.diff(sorted_positions)
        step = float(np.median(steps[steps > 1e-6])) if np.any(steps > 1e-6) else 1.0
    else:
        step = float(dataset.get("SharedFunctionalGroupsSequence", [{}])[0].get("PixelMeasuresSequence", [{}])[0]
                     .get("SliceThickness", 1.0) or 1.0) if "SharedFunctionalGroupsSequence" in dataset else 1.0
    slots = np.rint((sorted_positions - sorted_positions[0]) / step).astype(int)
    volume = np.zeros((int(slots.max()) + 1, frames.shape[1], frames.shape[2]), dtype=np.uint8)
    for slot, index in zip(slots, np.asarray(indices)[order]):
        volume[slot] |= frames[index].astype(np.uint8)
    first = geometry[int(order[0])]
    direction = np.column_stack([orientation[:3], orientation[3:], normal])
    grid = Image(volume, (first[2][1], first[2][0], step), tuple(first[0]), direction, source=str(path))
    return resample_labels_to(grid, reference) > 0
