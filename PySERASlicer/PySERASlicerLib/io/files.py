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


def _looks_like_dicom_without_preamble(head: bytes) -> bool:
    """The file starts with a group 0002 / 0008 element, as DICOM files written without the
    128-byte preamble do (old scanners, some PACS exports); explicit VR shows its VR letters."""
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08"):
        return False
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():
        return True
    length = int.from_bytes(head[4:8], "little" if head[0] else "big")
    return length < 1024  # implicit VR: a short first element (group length, SOP class, ...)


def is_dicom_file(path: Union[str, os.PathLike]) -> bool:
    """A ``.dcm``/``.dicom`` file, any file with the DICOM preamble ``DICM`` at byte 128, or a
    file that starts like a DICOM data set without the preamble."""
    path = Path(path)
    if path.name.startswith("."):
        return False
    if path.name.lower().endswith((".dcm", ".dicom")):
        return True
    if path.name.lower().endswith(IMAGE_SUFFIXES) or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or _looks_like_dicom_without_preamble(head)


def is_dicom_folder(folder: Union[str, os.PathLike]) -> bool:
    """A folder that directly holds DICOM files (a series, an RTSTRUCT or a SEG)."""
    folder = Path(folder)
    return folder.is_dir() and any(p.is_file() and is_dicom_file(p) for p in folder.iterdir())


#: How deep a folder without DICOM files of its own is searched (patient / study / series / ...).
MAX_FOLDER_DEPTH = 5


def holds_dicom_below(folder: Union[str, os.PathLike], depth: int = MAX_FOLDER_DEPTH) -> bool:
    """A folder without DICOM files of its own whose subfolders hold some (patient/study/series
    folders, a DICOMDIR tree), searched ``depth`` levels down."""
    folder = Path(folder)
    if not folder.is_dir() or depth <= 0:
        return False
    if (folder / "DICOMDIR").is_file():
        return True
    subfolders = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    return any(is_dicom_folder(p) or holds_dicom_below(p, depth - 1) for p in subfolders)
