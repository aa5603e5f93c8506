"""Clinical DICOM variants written with pydicom: SEG files with repeated labels, frames off the
image grid or referencing image slices, and PET series with the SUV tags of several vendors.

Built on :mod:`dicom_fixtures` (plain CT/PET series and SEG writers): the files are written
there and then edited here as a clinical system would have written them.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import pydicom
from dicom_fixtures import write_enhanced, write_seg, write_series
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


def edit_dicom(path: Path, change: Callable[[Dataset], None]) -> None:
    """Read ``path``, apply ``change`` to the dataset, write it back in place."""
    dataset = pydicom.dcmread(str(path))
    change(dataset)
    dataset.save_as(str(path))


def series_instances(folder: Path) -> Dict[int, str]:
    """Slice index k (by position along the normal, LPS z for axial) -> SOP instance UID."""
    headers = [pydicom.dcmread(str(p), stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
    headers.sort(key=lambda h: float(h.ImagePositionPatient[2]))
    return {k: str(h.SOPInstanceUID) for k, h in enumerate(headers)}


def write_clinical_seg(path: Path, segments: Sequence[tuple], uids: Dict[str, str], spacing, origin,
                       slice_offset_voxels: float = 0.0, references: Optional[Dict[int, str]] = None) -> None:
    """A binary SEG of ``segments`` = [(label, bool (k, j, i) mask)] (labels may repeat).

    ``slice_offset_voxels`` moves every frame along the slice normal by that fraction of the
    slice spacing (a SEG written a little off the image slices); ``references`` (k -> SOP
    instance UID) adds to each frame the ``DerivationImageSequence`` naming its image slice.
    """
    placeholder = {f"segment {n}": mask for n, (_, mask) in enumerate(segments, start=1)}
    write_seg(path, placeholder, uids, spacing, origin)
    labels = [label for label, _ in segments]
    frame_slices: List[int] = []  # write_seg writes, per segment, one frame per non-empty slice
    for _, mask in segments:
        frame_slices.extend(int(k) for k in np.flatnonzero(mask.any(axis=(1, 2))))

    def change(dataset: Dataset) -> None:
        for item, label in zip(dataset.SegmentSequence, labels):
            item.SegmentLabel = label
        for group, k in zip(dataset.PerFrameFunctionalGroupsSequence, frame_slices):
            plane = group.PlanePositionSequence[0]
            z = float(plane.ImagePositionPatient[2]) + slice_offset_voxels * spacing[2]
            plane.ImagePositionPatient = [plane.ImagePositionPatient[0], plane.ImagePositionPatient[1], f"{z:.6f}"]
            if references is not None:
                source = Dataset()
                source.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
                source.ReferencedSOPInstanceUID = references[k]
                derivation = Dataset()
                derivation.SourceImageSequence = DicomSequence([source])
                group.DerivationImageSequence = DicomSequence([derivation])

    edit_dicom(path, change)


#: Tags of a decay-corrected (START) PET series in Bq/ml: 70 kg, 370 MBq F-18 injected at 10:00:00,
#: series at 11:00:00 -> SUV factor = 70000 g / (370e6 Bq * 2 ** (-3600 / 6586.2)).
PET_TAGS = {
    "Units": "BQML", "DecayCorrection": "START", "CorrectedImage": ["ATTN", "DECY"],
    "PatientWeight": "70", "SeriesDate": "20240105", "SeriesTime": "110000",
    "AcquisitionDate": "20240105", "AcquisitionTime": "110000",
}
RADIOPHARMACEUTICAL = {
    "RadiopharmaceuticalStartTime": "100000", "RadionuclideTotalDose": "370000000",
    "RadionuclideHalfLife": "6586.2",
}


def write_pet_series(folder: Path, stored: np.ndarray, spacing=(4.0, 4.0, 3.0), origin=(-20.0, -20.0, 0.0),
                     tags: Optional[Dict] = None, radiopharmaceutical: Optional[Dict] = None,
                     slope: float = 1.0, private: Optional[Dict[tuple, tuple]] = None) -> Dict[str, str]:
    """A PET series (Modality PT, PET Image Storage) of ``stored`` int16 values with the given
    tags (default :data:`PET_TAGS`) and ``RadiopharmaceuticalInformationSequence`` item (default
    :data:`RADIOPHARMACEUTICAL`; keys with value None are left out); ``private`` adds private
    elements {(group, element): (VR, value)} such as Philips' SUV scale factor (7053,1000)."""
    tags = dict(PET_TAGS if tags is None else tags)
    drug = dict(RADIOPHARMACEUTICAL if radiopharmaceutical is None else radiopharmaceutical)
    uids = write_series(folder, stored, spacing, origin, slope=slope, intercept=0.0, modality="PT")

    def change(dataset: Dataset) -> None:
        dataset.SOPClassUID = PET_IMAGE_STORAGE
        dataset.file_meta.MediaStorageSOPClassUID = PET_IMAGE_STORAGE
        for key, value in tags.items():
            if value is not None:
                setattr(dataset, key, value)
        item = Dataset()
        for key, value in drug.items():
            if value is not None:
                setattr(item, key, value)
        dataset.RadiopharmaceuticalInformationSequence = DicomSequence([item])
        for (group, element), (vr, value) in (private or {}).items():
            dataset.add_new((group, element), vr, value)

    for path in sorted(folder.glob("*.dcm")):
        edit_dicom(path, change)
    return uids


def write_enhanced_pet(path: Path, stored: np.ndarray, top_level: Dict, drug_in_shared_group: bool = False,
                       slope: float = 0.5, rescale_type: str = "BQML") -> Dict[str, str]:
    """An Enhanced PET file (one file, ``stored``'s slices as frames on a 4 x 4 x 3 mm grid,
    written last slice first) with the shared rescale (``slope``, 0, ``rescale_type``), the
    top-level tags ``top_level`` and the :data:`RADIOPHARMACEUTICAL` item at the top level or,
    with ``drug_in_shared_group``, in the shared functional group. Frame k is acquired 30 s
    after frame k - 1, frame 0 at 2024-01-05 11:00:00 (one hour after the injection)."""
    start = datetime.datetime(2024, 1, 5, 11, 0, 0)
    frames = [{"stored": stored[k], "position": (-20.0, -20.0, 3.0 * k),
               "acquisition_datetime": (start + datetime.timedelta(seconds=30 * k)).strftime("%Y%m%d%H%M%S.%f")}
              for k in reversed(range(len(stored)))]
    uids = write_enhanced(path, frames, spacing=(4.0, 4.0), modality="PT", shared_rescale=(slope, 0, rescale_type))

    def change(dataset: Dataset) -> None:
        for key, value in top_level.items():
            setattr(dataset, key, value)
        drug = Dataset()
        for key, value in RADIOPHARMACEUTICAL.items():
            setattr(drug, key, value)
        owner = dataset.SharedFunctionalGroupsSequence[0] if drug_in_shared_group else dataset
        owner.RadiopharmaceuticalInformationSequence = DicomSequence([drug])

    edit_dicom(path, change)
    return uids
