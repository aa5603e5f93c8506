"""Cases of a batch: image/mask pairs from a file pair, a pair of folders or a cases CSV.

:func:`build_cases` pairs images with masks (flat folders, or patient subfolders mirrored
between images and masks); :func:`read_cases_csv` reads
``case_id, image, mask[, roi_label][, series_uid][, volume]``.
Unmatched names become Report rows (see docs/batch.md).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .image import Image
from .io.files import holds_dicom_below
from .io.readers import case_name, is_dicom_file, is_dicom_folder, is_image_file
from .io.types import InputError, MaskData
from .runlog import RunLog

#: Columns of a cases CSV (``roi_label`` optional).
CSV_COLUMNS = ("case_id", "image", "mask")
#: Columns a cases CSV may add (every help text that describes the CSV names them).
OPTIONAL_CSV_COLUMNS = ("roi_label", "series_uid", "volume")


@dataclass
class Case:
    """One image/mask pair. ``image``/``mask`` are paths, arrays, Images or MaskData.

    roi_label : extract only this label value (label maps) or structure name (RTSTRUCT/SEG).
    series_uid, volume : which series / volume of a DICOM folder (default: reported choice).
    temp_dir : folder for this case's RTSTRUCT mask cache (removed when the case ends).
    """

    case_id: str
    image: Any
    mask: Any
    spacing: Optional[Sequence[float]] = None
    roi_label: Optional[str] = None
    series_uid: Optional[str] = None
    volume: Optional[int] = None
    temp_dir: Optional[str] = None



def build_cases(image_input: Any, mask_input: Any, log: RunLog, spacing: Optional[Sequence[float]] = None,
                split_dicom: bool = False) -> List[Case]:
    """Pair images with masks.

    * arrays / :class:`Image` / :class:`MaskData`: one case;
    * an image file or a DICOM series folder with a mask file/folder: one case (also a folder
      whose DICOM files lie in subfolders, e.g. patient/study/series or a DICOMDIR tree, when
      the mask is a file);
    * two folders: entries matched by name. An entry is an image file (name without suffix) or a
      patient subfolder (its name) holding one DICOM series (directly or in study/series
      subfolders) or one image file; the mask folder
      mirrors it (a mask file with the same name, or a subfolder with an RTSTRUCT, SEG or mask
      file). Unmatched names become Report rows.

    ``split_dicom``: a DICOM folder holding several series or a multi-volume series gives one
    case per series and volume (``<case>_<n>``) instead of the reported default choice.
    """
    if isinstance(image_input, (np.ndarray, Image)) or isinstance(mask_input, (np.ndarray, MaskData, Image)):
        return [Case("array" if isinstance(image_input, np.ndarray) else _image_id(image_input), image_input,
                     mask_input, spacing)]
    if image_input is None or mask_input is None:
        raise InputError("image_input and mask_input are required (or give cases_csv)")
    image_path, mask_path = Path(image_input), Path(mask_input)
    if not image_path.exists():
        raise InputError(f"image_input {image_path}: file or folder not found")
    if not mask_path.exists():
        raise InputError(f"mask_input {mask_path}: file or folder not found")
    if image_path.is_file() or is_dicom_folder(image_path) or (mask_path.is_file() and holds_dicom_below(image_path)):
        name = case_name(image_path) if image_path.is_file() else image_path.name
        return _split(Case(name, image_path, mask_path, spacing), split_dicom, log)
    if not mask_path.is_dir():
        raise InputError(f"mask_input {mask_path}: image_input is a folder, so mask_input must be a folder too")
    images = _entries(image_path)
    if not images:
        raise InputError(f"image_input {image_path}: the folder holds no image files, DICOM series or patient "
                         "folders")
    masks = _entries(mask_path)
    cases: List[Case] = []
    for name, path in images.items():
        if name not in masks:
            log.error(f"No matching mask found for {path.name} in {mask_path}", patient_id=name)
            continue
        try:
            image = _patient_entry(path, "image")
            mask = _patient_entry(masks[name], "mask")
        except InputError as exc:
            log.error(str(exc), patient_id=name)
            continue
        cases.extend(_split(Case(name, image, mask, spacing), split_dicom, log))
    for name, path in masks.items():
        if name not in images:
            log.warning(f"Mask {path.name} has no matching image in {image_path}", patient_id=name)
    return cases


def _image_id(image: Any) -> str:
    return case_name(image.source) if isinstance(image, Image) and image.source else "image"


def _entries(folder: Path) -> Dict[str, Path]:
    """Name -> path of the image files and patient subfolders of a batch folder."""
    entries: Dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            entries[path.name] = path
        elif path.is_file() and (is_image_file(path) or is_dicom_file(path)):
            entries[case_name(path)] = path
    return entries


def _patient_entry(path: Path, kind: str) -> Path:
    """A patient subfolder -> the DICOM folder itself or its single image/mask file."""
    if not path.is_dir() or is_dicom_folder(path):
        return path
    files = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
    if len(files) == 1:
        return files[0]
    if not files and holds_dicom_below(path):  # study/series subfolders: the DICOM reader walks down
        return path
    if not files:
        subfolders = [p.name for p in path.iterdir() if p.is_dir()]
        extra = f" (it has subfolders {', '.join(subfolders[:3])}: one folder level per patient)" if subfolders else ""
        raise InputError(f"{path}: the {kind} folder of this patient holds no {kind} file or DICOM series{extra}")
    raise InputError(f"{path}: the {kind} folder of this patient holds {len(files)} files "
                     f"({', '.join(p.name for p in files[:4])}); expected one {kind} file or one DICOM series")


def _split(case: Case, split_dicom: bool, log: RunLog) -> List[Case]:
    if not split_dicom or not isinstance(case.image, Path) or not (case.image.is_dir() or is_dicom_file(case.image)):
        return [case]
    from .io.dicom import list_volumes

    try:
        volumes = list_volumes(case.image)
    except InputError as exc:  # reported again, with the case, when the case runs
        log.warning(str(exc), patient_id=case.case_id)
        return [case]
    if len(volumes) <= 1:
        return [case]
    cases = []
    for number, (uid, index, label) in enumerate(volumes, start=1):
        case_id = f"{case.case_id}_{number}"
        log.info(f"{case.case_id}: DICOM volume {number} = series {uid} volume {index} ({label}) -> case {case_id}",
                 patient_id=case_id)
        cases.append(Case(case_id, case.image, case.mask, case.spacing, case.roi_label, uid, index))
    return cases


def read_cases_csv(path: Union[str, os.PathLike], spacing: Optional[Sequence[float]] = None) -> List[Case]:
    """Cases from a CSV with columns ``case_id, image, mask`` and optional ``roi_label``,
    ``series_uid`` (which series of a DICOM folder) and ``volume`` (which volume of a
    multi-volume series, from 0).

    Relative paths are relative to the CSV file's folder. A row whose files are missing still
    becomes a case (it fails with a Report row naming the file; the other cases run).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"cases_csv {path}: file not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in columns]
        if missing:
            found = ", ".join(columns) or "none"
            raise InputError(f"cases_csv {path}: missing column(s) {', '.join(missing)}; expected columns "
                             f"{', '.join(CSV_COLUMNS)} and optionally {', '.join(OPTIONAL_CSV_COLUMNS)} "
                             f"(found: {found})")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    cases = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if not row.get("image") or not row.get("mask"):
            raise InputError(f"cases_csv {path}, line {number}: image and mask must both be given")
        image, mask = Path(row["image"]), Path(row["mask"])
        image = image if image.is_absolute() else path.parent / image
        mask = mask if mask.is_absolute() else path.parent / mask
        case_id = row.get("case_id") or case_name(image)
        volume = row.get("volume") or None
        if volume is not None and not volume.isdigit():
            raise InputError(f"cases_csv {path}, line {number}: volume must be a whole number from 0, got {volume!r}")
        cases.append(Case(case_id, image, mask, spacing, row.get("roi_label") or None, row.get("series_uid") or None,
                          None if volume is None else int(volume)))
    if not cases:
        raise InputError(f"cases_csv {path}: no cases (the file has a header but no rows)")
    return cases

