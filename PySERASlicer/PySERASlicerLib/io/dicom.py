"""DICOM readers (series folders, single files, RTSTRUCT/SEG masks).

Basic version: SimpleITK's GDCM series reader for image folders. RTSTRUCT and SEG support
lives in :mod:`.rtstruct` / :mod:`.seg`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from ..image import Image
from .readers import InputError, MaskData, image_from_sitk


def read_dicom_series(folder: Path, warnings: Optional[List[str]] = None) -> Image:
    import SimpleITK as sitk

    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or []
    if not series_ids:
        raise InputError(f"{folder}: no DICOM image series found in this folder")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return image_from_sitk(reader.Execute(), str(folder), "CT")


def read_dicom_file(path: Path, warnings: Optional[List[str]] = None) -> Image:
    import SimpleITK as sitk

    return image_from_sitk(sitk.ReadImage(str(path)), str(path))


def read_dicom_mask(path: Path, reference: Image, warnings: Optional[List[str]] = None) -> MaskData:
    raise InputError(f"{path}: DICOM masks (RTSTRUCT/SEG) are not supported yet")
