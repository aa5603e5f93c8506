"""DICOM masks: an RTSTRUCT or SEG object, or a label-map series, chosen by what the files hold.

It sits above the series reader (dicom.py) and the RTSTRUCT/SEG readers, which import
nothing of each other through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from ..image import Image
from .conversion import mask_from_image
from .conversion import warn as _warn
from .dicom import read_dicom_file, read_dicom_series, read_header, scan_folder
from .rtstruct import read_rtstruct
from .seg import read_seg
from .types import InputError, MaskData


def read_dicom_mask(path: Path, reference: Image, apply_preprocessing: bool = False,
                    warnings: Optional[List[str]] = None, temp_dir: Optional[str] = None, dicom=None) -> MaskData:
    """A DICOM mask: an RTSTRUCT or SEG file (or a folder holding one), or a label-map series."""
    path = Path(path)
    if path.is_dir():
        series, others = scan_folder(path, warnings)
        masks = [(p, h) for p, h in others if str(h.get("Modality", "")).upper() in ("RTSTRUCT", "SEG")]
        if masks:
            if len(masks) > 1:
                _warn(warnings, f"{path}: {len(masks)} RTSTRUCT/SEG files; using {masks[0][0].name}")
            path = masks[0][0]
        elif series:
            labels = read_dicom_series(path, warnings, dicom=dicom, labels=True)
            return mask_from_image(labels, reference, apply_preprocessing, warnings)
        else:
            raise InputError(f"{path}: no RTSTRUCT, SEG or DICOM label series found in this mask folder")
    header = read_header(path)
    modality = str(header.get("Modality", "")).upper()
    if modality == "RTSTRUCT":
        return read_rtstruct(path, reference, warnings=warnings, temp_dir=temp_dir)
    if modality == "SEG":
        return read_seg(path, reference, warnings=warnings)
    labels = read_dicom_file(path, warnings, dicom=dicom, labels=True)
    return mask_from_image(labels, reference, apply_preprocessing, warnings)
