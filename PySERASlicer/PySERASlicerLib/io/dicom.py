"""DICOM readers written with pydicom: image series folders, single files, RTSTRUCT/SEG masks.

Files
    Anything pydicom reads is a candidate, with or without the 128-byte preamble. Files that
    cannot be read are skipped and named in the Report. A folder without DICOM files of its own
    (a patient folder with study/series subfolders, a CD root with a DICOMDIR) is walked down,
    and the series found below it are treated as if they lay in one folder.
Frames
    Single-frame files and each frame of an enhanced multi-frame file (position, orientation,
    rescale and acquisition values from its functional groups) become the same frame records
    (:mod:`.dicom_frames`); two enhanced files of one series are one series of frames. Decoding
    goes through pydicom, or SimpleITK/GDCM for JPEG, JPEG-LS and JPEG 2000.
Series
    Frames are grouped by ``SeriesInstanceUID``; non-image objects (RTSTRUCT, SEG, reports) are
    set aside. Within a series, frames whose ImageType says LOCALIZER are left out, a frame seen
    twice (same SOPInstanceUID, e.g. a copied file) is read once, and frames are sorted by their
    position along the slice normal ``n = row cosine x column cosine``. A series that cannot be
    stacked (no positions, mixed sizes or orientations, positions repeating unevenly) is skipped
    with its reason; of the readable ones the series with the most frames is read (or the one
    named by ``series_uid``) and the choice is reported. When reading the chosen series fails
    (a slice gap or gantry tilt refused, pixels that do not decode) and neither ``series_uid``
    nor ``volume`` asks for it, the next readable series is read instead, and the Report says why the first failed.
Multi-volume series
    When several frames share a slice position (multi-echo, diffusion, dynamic series), the
    series is split into volumes by the first value that separates them into equal, complete
    volumes (:data:`.dicom_frames.SPLIT_LABELS`: echo time, b-value, b-value and gradient
    direction, trigger/acquisition/content time, flip angle, temporal position, acquisition
    number, echo number, stack). An enhanced file whose frames lie in several orientations (a
    multi-stack acquisition such as a 3-plane MR without a LOCALIZER flag) is split into one
    volume per ``StackID``, or per orientation (numbered in file order) when the stacks have no
    ID, each stack sorted along its own normal. Volume 0 (lowest value) is read unless
    ``volume`` says otherwise; the split is reported. :func:`list_volumes` lets the batch make one case per
    series and volume.
Geometry
    Rescale slope/intercept are applied per frame. Origin = position of the first frame after
    sorting, direction columns = (row cosine, column cosine, normal), spacing = (column spacing,
    row spacing, slice distance), all in DICOM's LPS frame. Gantry tilt and missing slices are
    handled by :mod:`.slice_geometry` as the ``dicom`` settings say.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..image import Image
from .conversion import image_from_sitk, sitk_message
from .conversion import warn as _warn
from .dicom_frames import (
    SPLIT_LABELS,
    Frame,
    frames_of,
    is_enhanced,
    is_localizer,
    read_header,
    rescaled,
    stored_values,
)
from .files import MAX_FOLDER_DEPTH, is_dicom_file
from .types import InputError

#: Modalities that are not image slices.
NON_IMAGE_MODALITIES = ("RTSTRUCT", "SEG", "RTPLAN", "RTDOSE", "SR", "PR", "KO", "REG", "RTRECORD")


@dataclass
class DicomSeries:
    """One image series, split into volumes of sorted frames, or the reason it cannot be read."""

    uid: str
    modality: str
    description: str
    volumes: List[List[Frame]] = field(default_factory=list)
    split_label: str = ""
    split_values: Tuple[str, ...] = ()
    problem: str = ""  # why the series cannot be read ("" = readable)
    notes: List[str] = field(default_factory=list)  # what was left out, for the Report
    n_frames: int = 0
    legacy_file: Optional[Path] = None  # one multi-frame file without functional groups (NM, US)


def _dicomdir_files(folder: Path) -> List[Path]:
    """The files a DICOMDIR references (its directory records), that exist."""
    try:
        import pydicom
        from pydicom.fileset import FileSet

        file_set = FileSet(pydicom.dcmread(str(folder / "DICOMDIR")))
        return sorted(p for p in (Path(instance.path) for instance in file_set) if p.is_file())
    except Exception:  # a damaged DICOMDIR: fall back to walking the folders
        return []


def dicom_files(source: Path, warnings: Optional[List[str]] = None) -> List[Path]:
    """The DICOM files of a folder; a folder without any of its own gives the files its
    DICOMDIR references, or else those of its subfolders (:data:`.files.MAX_FOLDER_DEPTH`
    levels, e.g. patient/study/series)."""
    source = Path(source)
    if source.is_file():
        return [source]
    files = sorted(p for p in source.iterdir() if p.is_file() and is_dicom_file(p) and p.name.upper() != "DICOMDIR")
    if files:
        return files
    found = _dicomdir_files(source) if (source / "DICOMDIR").is_file() else []
    how = "the DICOMDIR references" if found else ""
    if not found:
        base_depth = len(source.parts)
        for root, directories, names in os.walk(source):
            directories[:] = sorted(d for d in directories if not d.startswith("."))
            if len(Path(root).parts) - base_depth >= MAX_FOLDER_DEPTH:
                directories[:] = []
            found.extend(Path(root) / name for name in sorted(names)
                         if name.upper() != "DICOMDIR" and is_dicom_file(Path(root) / name))
    if found:
        folders = sorted({f.parent for f in found})
        shown = ", ".join(str(f.relative_to(source)) for f in folders[:4])
        how = how or ("the DICOMDIR is unreadable; " if (source / "DICOMDIR").is_file() else "") + "read"
        _warn(warnings, f"{source}: no DICOM files directly in this folder; {how} {len(found)} file(s) in "
                        f"{len(folders)} subfolder(s) ({shown}{', ...' if len(folders) > 4 else ''})")
    return found


def scan_folder(source: Path, warnings: Optional[List[str]] = None, unreadable: Optional[List[str]] = None
                ) -> Tuple[Dict[str, List[Tuple[Path, object]]], List[Tuple[Path, object]]]:
    """Headers of the DICOM files of a folder (or one file): ({series uid: [(path, header)]} of
    image files, [(path, header)] of non-image objects). Names of unreadable files are reported
    and added to ``unreadable``."""
    series: Dict[str, List[Tuple[Path, object]]] = {}
    others: List[Tuple[Path, object]] = []
    unreadable = [] if unreadable is None else unreadable
    for path in dicom_files(source, warnings):
        try:
            header = read_header(path)
        except InputError:
            unreadable.append(path.name)
            continue
        modality = str(header.get("Modality", "")).upper()
        if modality in NON_IMAGE_MODALITIES or "Rows" not in header:
            others.append((path, header))
            continue
        series.setdefault(str(header.get("SeriesInstanceUID", "")), []).append((path, header))
    if unreadable:
        _warn(warnings, f"{source}: {len(unreadable)} unreadable DICOM file(s) skipped "
                        f"({', '.join(unreadable[:5])}{', ...' if len(unreadable) > 5 else ''})")
    return series, others


def _sort_key(text: str):
    """Numbers by value, text alphabetically; "1000 (0,0,1)" sorts by b-value, then direction."""
    parts = []
    for part in str(text).split(" "):
        try:
            parts.append((0, float(part), ""))
        except ValueError:
            parts.append((1, 0.0, part))
    return tuple(parts)


def split_volumes(frames: List[Frame], where: str) -> Tuple[List[List[Frame]], str, Tuple[str, ...]]:
    """Sort frames along the slice normal and split them into volumes when positions repeat."""
    normal = np.cross(frames[0].orientation[:3], frames[0].orientation[3:])
    for frame in frames:
        frame.distance = float(np.dot(frame.position, normal))
    positions = np.round([f.distance for f in frames], 3)
    unique, counts = np.unique(positions, return_counts=True)
    if counts.max() == 1:
        return [sorted(frames, key=lambda f: f.distance)], "", ()
    if counts.min() != counts.max():
        raise InputError(f"{where}: slice positions repeat unevenly ({counts.min()} to {counts.max()} images per "
                         "position); cannot split the series into complete volumes")
    per_position = int(counts[0])
    for label in SPLIT_LABELS:
        values = [f.values.get(label) for f in frames]
        if any(v is None for v in values):
            continue
        distinct = sorted(set(values), key=_sort_key)
        if len(distinct) != per_position:
            continue
        volumes = []
        for value in distinct:
            members = [f for f, v in zip(frames, values) if v == value]
            if len(np.unique(np.round([m.distance for m in members], 3))) != len(unique):
                break
            volumes.append(sorted(members, key=lambda f: f.distance))
        else:
            return volumes, label, tuple(distinct)
    raise InputError(f"{where}: {per_position} images per slice position and no value ({', '.join(SPLIT_LABELS)}) "
                     "separates them into volumes")


def _names(frames: List[Frame], limit: int = 4) -> str:
    return ", ".join(f.name for f in frames[:limit]) + (", ..." if len(frames) > limit else "")


def _prepare(uid: str, frames: List[Frame], where: str) -> DicomSeries:
    """Filter, check and split the frames of one series (problems go into ``problem``)."""
    header = frames[0].header
    series = DicomSeries(uid, str(header.get("Modality", "")), str(header.get("SeriesDescription", "")))
    legacy = [f for f in frames if f.number is None and int(f.header.get("NumberOfFrames", 1) or 1) > 1]
    if legacy:  # frames without per-frame geometry: SimpleITK reads such a file as it is
        if len(frames) > 1:
            series.problem = f"multi-frame files without per-frame functional groups ({_names(legacy)}) mixed " \
                             "with other images"
            return series
        series.legacy_file, series.volumes = frames[0].path, [frames]
        series.n_frames = int(header.get("NumberOfFrames"))
        return series
    seen, unique = set(), []
    for frame in frames:
        if frame.identity in seen:
            series.notes.append(f"{where}: {frame.name} repeats an image already read (same SOPInstanceUID); "
                                "read once")
            continue
        seen.add(frame.identity)
        unique.append(frame)
    localizers = [f for f in unique if is_localizer(f.header)]
    frames = [f for f in unique if not is_localizer(f.header)]
    if localizers:
        series.notes.append(f"{where}: {len(localizers)} LOCALIZER image(s) left out ({_names(localizers)})")
    if not frames:
        series.problem = "only LOCALIZER images"
        return series
    incomplete = [f for f in frames if f.position is None or f.orientation is None
                  or len(f.position) != 3 or len(f.orientation) != 6]
    if len(incomplete) == len(frames):
        series.problem = ("images without ImagePositionPatient/ImageOrientationPatient cannot be stacked into a "
                          "volume")
        return series
    if incomplete:
        series.notes.append(f"{where}: {len(incomplete)} image(s) without ImagePositionPatient/"
                            f"ImageOrientationPatient (truncated or incomplete header?) left out: {_names(incomplete)}")
        frames = [f for f in frames if f not in incomplete]
    sizes = {(int(f.header.get("Rows", 0)), int(f.header.get("Columns", 0))) for f in frames}
    if len(sizes) > 1:
        series.problem = f"images have different sizes ({', '.join(f'{r}x{c}' for r, c in sorted(sizes))})"
        return series
    series.n_frames = len(frames)
    if any(not np.allclose(f.orientation, frames[0].orientation, atol=1e-4) for f in frames):
        stacks = _stacks(frames)
        if stacks is None:
            series.problem = "images have different orientations (ImageOrientationPatient)"
            return series
    else:
        stacks = None
    try:
        if stacks is None:
            series.volumes, series.split_label, series.split_values = split_volumes(frames, where)
        else:
            series.volumes, series.split_label, series.split_values = _split_stacks(stacks, where)
    except InputError as exc:
        series.problem = str(exc).split(": ", 1)[-1]
    return series


def _same_orientation(a: Frame, b: Frame) -> bool:
    return bool(np.allclose(a.orientation, b.orientation, atol=1e-4))


def _stacks(frames: List[Frame]) -> Optional[Tuple[str, List[Tuple[str, List[Frame]]]]]:
    """An enhanced file's frames in several orientations (a multi-stack acquisition such as a
    3-plane MR) as ``(label, [(value, frames)])``: by ``StackID`` when every frame has one and
    each stack has one orientation, else by orientation; None for single-frame files, whose
    mixed orientations stay a reason not to read the series."""
    if any(f.number is None for f in frames):
        return None
    if all("stack" in f.values for f in frames):
        by_stack: Dict[str, List[Frame]] = {}
        for frame in frames:
            by_stack.setdefault(frame.values["stack"], []).append(frame)
        if len(by_stack) > 1 and all(all(_same_orientation(f, members[0]) for f in members)
                                     for members in by_stack.values()):
            return "stack", [(value, by_stack[value]) for value in sorted(by_stack, key=_sort_key)]
    by_orientation: List[List[Frame]] = []
    for frame in sorted(frames, key=lambda f: f.number):
        group = next((g for g in by_orientation if _same_orientation(frame, g[0])), None)
        if group is None:
            by_orientation.append([frame])
        else:
            group.append(frame)
    groups = []
    for number, members in enumerate(by_orientation, start=1):
        normal = np.round(np.cross(members[0].orientation[:3], members[0].orientation[3:]), 2) + 0.0  # no "-0"
        groups.append((f"{number} (normal {','.join(f'{v:.2g}' for v in normal)})", members))
    return "orientation", groups


def _split_stacks(stacks: Tuple[str, List[Tuple[str, List[Frame]]]], where: str
                  ) -> Tuple[List[List[Frame]], str, Tuple[str, ...]]:
    """Each stack sorted (and split, if its positions repeat) on its own, one volume list."""
    label, groups = stacks
    volumes, values = [], []
    for value, members in groups:
        stack_volumes, inner_label, inner_values = split_volumes(members, f"{where} [{label} {value}]")
        volumes.extend(stack_volumes)
        values.extend([value] if not inner_label else [f"{value} {inner_label} {v}" for v in inner_values])
    return volumes, label, tuple(values)


def list_series(source: Path, warnings: Optional[List[str]] = None,
                unreadable: Optional[List[str]] = None) -> List[DicomSeries]:
    """The image series of a folder (or one file), readable ones first, most frames first."""
    groups, _ = scan_folder(source, warnings, unreadable)
    result = []
    for uid, files in groups.items():
        frames: List[Frame] = []
        where = f"{source} (series {uid})"
        for path, header in files:
            try:
                frames.extend(frames_of(path, header))
            except InputError as exc:
                _warn(warnings, str(exc) + "; file skipped")
        if frames:
            result.append(_prepare(uid, frames, where))
    return sorted(result, key=lambda s: (bool(s.problem), -s.n_frames))


def _label(series: DicomSeries, index: int) -> str:
    label = series.description or series.modality or series.uid[-8:]
    if series.split_label:
        label += f" {series.split_label} {series.split_values[index]}"
    return label


def list_volumes(folder: Path) -> List[Tuple[str, int, str]]:
    """(series uid, volume index, short label) for every volume of every readable image series."""
    return [(s.uid, index, _label(s, index)) for s in list_series(folder) if not s.problem
            for index in range(len(s.volumes))]


def _describe(series: DicomSeries) -> str:
    text = f"{series.uid} ({series.modality or '?'}"
    if series.description:
        text += f" '{series.description}'"
    return text + f", {series.n_frames} images)"


def _image_modality(dicom_modality) -> str:
    """DICOM's Modality -> the Image's ("CT", "MRI", "PET" or "OTHER")."""
    return {"MR": "MRI", "PT": "PET", "CT": "CT"}.get(str(dicom_modality).strip().upper(), "OTHER")


def read_volume(frames: List[Frame], where: str, warnings: Optional[List[str]] = None, dicom=None,
                labels: bool = False) -> Image:
    """Stack sorted frames into an Image (rescale applied per frame, LPS geometry)."""
    from ..settings import DicomSettings
    from .slice_geometry import regular_grid

    dicom = dicom or DicomSettings()
    first = frames[0]
    array = rescaled(stored_values(frames), np.array([f.slope for f in frames]),
                     np.array([f.intercept for f in frames]))
    pixel_spacing = first.pixel_spacing
    if pixel_spacing is None:
        _warn(warnings, f"{where}: no PixelSpacing; assuming 1 mm in-plane")
        pixel_spacing = (1.0, 1.0)
    else:
        other = [f for f in frames if f.pixel_spacing is None or not np.allclose(f.pixel_spacing, pixel_spacing,
                                                                               rtol=1e-4, atol=1e-6)]
        if other:
            raise InputError(f"{where}: images have different PixelSpacing ({first.name}: {pixel_spacing}, "
                             f"{other[0].name}: {other[0].pixel_spacing})")
    row, column = first.orientation[:3], first.orientation[3:]
    try:
        tilt_tag = float(first.header.get("GantryDetectorTilt", None) or 0) or None
    except (TypeError, ValueError):
        tilt_tag = None
    array, origin, k_spacing = regular_grid(
        array, np.array([f.position for f in frames]), [f.name for f in frames], row, column, pixel_spacing, where,
        gantry_tilt=dicom.gantry_tilt.value, missing_slices=dicom.missing_slices.value, labels=labels,
        tilt_tag=tilt_tag, warnings=warnings)
    if k_spacing is None:  # one slice
        k_spacing = float(first.header.get("SpacingBetweenSlices", first.header.get("SliceThickness", 1.0)) or 1.0)
    direction = np.column_stack([row, column, np.cross(row, column)])
    image = Image(array, (pixel_spacing[1], pixel_spacing[0], k_spacing), origin, direction,
                  modality=_image_modality(first.header.get("Modality", "")), source=where)
    if image.modality == "PET":  # SUV from the series' tags (io/suv.py); applied per the settings
        from .suv import conversion_from_headers

        headers = list({id(f.header): f.header for f in frames}.values())  # one per file
        image = image.with_array(image.array, pet_suv=conversion_from_headers(headers))
    return image


def _candidates(source: Path, all_series: List[DicomSeries], series_uid: Optional[str]) -> List[DicomSeries]:
    """The series to try, in order: the one named by ``series_uid`` alone, else every readable
    series, most images first."""
    if not all_series:
        raise InputError(f"{source}: no DICOM image series found here")
    if series_uid:
        chosen = [s for s in all_series if s.uid == series_uid]
        if not chosen:
            raise InputError(f"{source}: no series {series_uid}; series present: "
                             f"{', '.join(_describe(s) for s in all_series)}")
        if chosen[0].problem:
            raise InputError(f"{source}: series {series_uid} cannot be read: {chosen[0].problem}")
        return chosen
    readable = [s for s in all_series if not s.problem]
    if len(all_series) == 1 and not readable:
        raise InputError(f"{source} (series {all_series[0].uid}): {all_series[0].problem}")
    if not readable:
        reasons = "; ".join(f"{_describe(s)}: {s.problem}" for s in all_series)
        raise InputError(f"{source}: no readable DICOM image series ({reasons})")
    return readable


def _read_series(folder: Path, series: DicomSeries, volume: Optional[int], warnings: List[str], dicom,
                 labels: bool) -> Image:
    for note in series.notes:
        _warn(warnings, note)
    index = 0 if volume is None else int(volume)
    if not 0 <= index < len(series.volumes):
        raise InputError(f"{folder}: series {series.uid} has {len(series.volumes)} volume(s); volume {index} "
                         "does not exist")
    if len(series.volumes) > 1 and volume is None:
        _warn(warnings, f"{folder}: series {series.uid} holds {len(series.volumes)} volumes split by "
                        f"{series.split_label} ({', '.join(series.split_values)}); using volume 0 "
                        f"({series.split_label} {series.split_values[0]})")
    if series.legacy_file is not None:
        return _read_with_sitk(series.legacy_file, series.modality)
    where = str(folder)
    if len(series.volumes) > 1:
        where += f" [{series.split_label} {series.split_values[index]}]"
    return read_volume(series.volumes[index], where, warnings, dicom, labels)


def read_dicom_series(folder: Path, warnings: Optional[List[str]] = None, series_uid: Optional[str] = None,
                      volume: Optional[int] = None, dicom=None, labels: bool = False) -> Image:
    """Read one image volume from a DICOM folder or file (see the module docstring for the choices).

    Without ``series_uid`` and ``volume``, a series that is readable by its headers but fails
    when read (a slice gap refused, a gantry tilt refused, undecodable pixels) gives way to the
    next readable series (most images first), and the Report says which series was used and why
    the others failed; a series named by ``series_uid``, or the default series when ``volume``
    names one of its volumes, is read or fails. ``dicom`` is a
    :class:`~PySERASlicerLib.settings.DicomSettings` (gantry tilt, missing slices); ``labels``
    reads a label-map series (nearest neighbour if it must be regularised).
    """
    folder = Path(folder)
    unreadable: List[str] = []
    all_series = list_series(folder, warnings, unreadable)
    candidates = _candidates(folder, all_series, series_uid)
    failures: List[Tuple[DicomSeries, InputError, List[str]]] = []  # series that failed when read
    # a volume asked for is a volume of the series the user expects: no other series instead
    for series in candidates if volume is None else candidates[:1]:
        attempt: List[str] = []  # this series' reading warnings; kept only if it is the one used
        try:
            image = _read_series(folder, series, volume, attempt, dicom, labels)
        except InputError as exc:
            failures.append((series, exc, attempt))
            continue
        if len(candidates) > 1:
            why = "most images" if not failures else \
                f"the readable series with most images once {len(failures)} failed when read"
            listed = "; ".join(_describe(s) for s in candidates)
            _warn(warnings, f"{folder}: {len(candidates)} image series ({listed}); "
                            f"using {series.uid} ({why}; pick another with series_uid)")
        for failed, exc, _ in failures:
            _warn(warnings, f"{folder}: series {_describe(failed)} not used, reading it failed: {exc}")
        for skipped in all_series:
            if skipped.problem:
                _warn(warnings, f"{folder}: series {_describe(skipped)} skipped: {skipped.problem}")
        if warnings is not None:
            warnings.extend(attempt)
        return image
    for _, _, attempt in failures:  # what was left out may explain the failure (a truncated slice)
        if warnings is not None:
            warnings.extend(attempt)
    message = str(failures[0][1]) if len(failures) == 1 else \
        f"{folder}: no image series could be read ({'; '.join(f'{_describe(s)}: {e}' for s, e, _ in failures)})"
    if unreadable:
        message += (f" ({len(unreadable)} unreadable file(s) in this folder were skipped: "
                    f"{', '.join(unreadable[:5])}{', ...' if len(unreadable) > 5 else ''})")
    raise InputError(message) from None


def read_dicom_file(path: Path, warnings: Optional[List[str]] = None, dicom=None, volume: Optional[int] = None,
                    labels: bool = False) -> Image:
    """A single DICOM image file: one slice, or an enhanced multi-frame file read frame by frame
    like a series. Files without plane geometry (legacy multi-frame NM/US, secondary capture)
    are read by SimpleITK."""
    header = read_header(Path(path))
    modality = str(header.get("Modality", "")).upper()
    if modality in NON_IMAGE_MODALITIES:
        raise InputError(f"{path}: a DICOM {modality} object is not an image (give it as the mask)")
    if is_enhanced(header) or "ImagePositionPatient" in header:
        return read_dicom_series(Path(path), warnings, volume=volume, dicom=dicom, labels=labels)
    return _read_with_sitk(Path(path), modality)


def _read_with_sitk(path: Path, modality: str) -> Image:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: cannot read DICOM image ({sitk_message(exc)})") from None
    return image_from_sitk(image, str(path), _image_modality(modality))
