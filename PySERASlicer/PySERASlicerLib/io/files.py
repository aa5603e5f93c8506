"""What kind of file a path is: image suffixes, DICOM files and folders, case names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

#: File name endings treated as images (longest first so ".nii.gz" wins over ".gz").
IMAGE_SUFFIXES = (".nii.gz", ".gipl.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".npy", ".dcm", ".dicom",
                  ".img", ".hdr", ".tif", ".tiff", ".vtk", ".gipl")


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


def is_dicom_file(path: Union[str, os.PathLike]) -> bool:
    """A ``.dcm``/``.dicom`` file, or any file with the DICOM preamble ``DICM`` at byte 128."""
    path = Path(path)
    if path.name.startswith("."):
        return False
    if path.name.lower().endswith((".dcm", ".dicom")):
        return True
    if path.name.lower().endswith(IMAGE_SUFFIXES) or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_folder(folder: Union[str, os.PathLike]) -> bool:
    """A folder that directly holds DICOM files (a series, an RTSTRUCT or a SEG)."""
    folder = Path(folder)
    return folder.is_dir() and any(p.is_file() and is_dicom_file(p) for p in folder.iterdir())
