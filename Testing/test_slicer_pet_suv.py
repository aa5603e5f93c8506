"""PET SUV inside Slicer: a PET volume loaded by the DICOM module keeps its tags in its DICOM
files, found through the node attribute ``DICOM.instanceUIDs``; real MRML nodes (slicer-core),
real pydicom-written files and a real worker process.

slicer-core has no DICOM database (``slicer.dicomDatabase`` is the Slicer application's
ctkDICOMDatabase); :class:`FolderDatabase` answers its ``fileForInstance`` from the files
written here, so everything after the UID lookup is the code the application runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

pytest.importorskip("slicer")

from clinical_dicom_fixtures import PET_TAGS, write_enhanced_pet, write_pet_series  # noqa: E402
from dicom_fixtures import write_series  # noqa: E402
from mrml_scene import SlicerCoreScene  # noqa: E402
from PySERASlicerLib.settings import Settings  # noqa: E402

#: 70 kg, 370 MBq of F-18 one hour before the series (see clinical_dicom_fixtures.PET_TAGS)
START_FACTOR = 70_000.0 / (370e6 * 2.0 ** (-3600.0 / 6586.2))
SHAPE = (5, 12, 10)


class FolderDatabase:
    """``fileForInstance`` of the DICOM files in a folder (SOP instance UID -> path)."""

    def __init__(self, *folders: Path):
        self.files = {}
        for folder in folders:
            for path in folder.glob("*.dcm"):
                self.files[str(pydicom.dcmread(str(path), stop_before_pixels=True).SOPInstanceUID)] = str(path)

    def fileForInstance(self, uid: str) -> str:  # noqa: N802 (ctkDICOMDatabase's name)
        return self.files.get(uid, "")


@pytest.fixture(scope="module")
def scene():
    return SlicerCoreScene()


def _loaded_volume(scene, folder: Path, stored: np.ndarray, modality: str = "PT"):
    """A volume node as the DICOM module leaves it: voxels plus the DICOM attributes."""
    volume = scene.add_volume(stored.astype(np.float64), np.diag([-4.0, -4.0, 3.0, 1.0]), name=folder.name)
    uids = sorted(FolderDatabase(folder).files)
    volume.SetAttribute("DICOM.instanceUIDs", " ".join(uids))
    volume.SetAttribute("DICOM.Modality", modality)
    return volume


def test_conversion_read_through_the_instance_uids(scene, tmp_path):
    from PySERASlicerLib.slicer_bridge import pet_suv_conversion

    stored = np.random.default_rng(0).integers(100, 20000, SHAPE).astype(np.int16)
    write_pet_series(tmp_path / "pet", stored)
    volume = _loaded_volume(scene, tmp_path / "pet", stored)
    conversion = pet_suv_conversion(volume, FolderDatabase(tmp_path / "pet").fileForInstance)
    assert conversion.factor == pytest.approx(START_FACTOR, rel=1e-12)
    # no DICOM database (slicer-core, or a volume not loaded from DICOM): nothing to read
    assert pet_suv_conversion(volume) is None
    plain = scene.add_volume(stored, np.eye(4), name="plain")
    assert pet_suv_conversion(plain, FolderDatabase(tmp_path / "pet").fileForInstance) is None


def test_enhanced_pet_volume_uses_its_earliest_frame_time(scene, tmp_path):
    """An Enhanced PET file loaded by the DICOM module (one instance UID): the decay reference is
    the earliest FrameAcquisitionDateTime (11:00), not the later series time (12:30)."""
    from PySERASlicerLib.slicer_bridge import pet_suv_conversion

    stored = np.random.default_rng(2).integers(100, 20000, SHAPE).astype(np.int16)
    (tmp_path / "pet").mkdir()
    tags = {key: PET_TAGS[key] for key in ("Units", "DecayCorrection", "PatientWeight", "SeriesDate")}
    write_enhanced_pet(tmp_path / "pet" / "enhanced.dcm", stored, {**tags, "SeriesTime": "123000"})
    volume = _loaded_volume(scene, tmp_path / "pet", stored)
    conversion = pet_suv_conversion(volume, FolderDatabase(tmp_path / "pet").fileForInstance)
    assert conversion.factor == pytest.approx(START_FACTOR, rel=1e-12)


def test_ct_volume_from_dicom_has_no_conversion(scene, tmp_path):
    from PySERASlicerLib.slicer_bridge import pet_suv_conversion

    stored = np.zeros(SHAPE, dtype=np.int16)
    write_series(tmp_path / "ct", stored)
    volume = _loaded_volume(scene, tmp_path / "ct", stored, modality="CT")
    assert pet_suv_conversion(volume, FolderDatabase(tmp_path / "ct").fileForInstance) is None


def test_extraction_of_a_dicom_pet_volume_is_in_suv_and_reported(scene, tmp_path, monkeypatch):
    import slicer
    from PySERASlicerLib.slicer_logic import ExtractionLogic

    stored = np.random.default_rng(1).integers(100, 20000, SHAPE).astype(np.int16)
    write_pet_series(tmp_path / "pet", stored)
    volume = _loaded_volume(scene, tmp_path / "pet", stored)
    lesion = np.zeros(SHAPE, bool)
    lesion[1:4, 3:9, 2:8] = True
    segmentation = scene.add_segmentation(volume, {"lesion": lesion})
    monkeypatch.setattr(slicer, "dicomDatabase", FolderDatabase(tmp_path / "pet"), raising=False)
    settings = Settings(categories="stat", dimensions="1st")

    running = ExtractionLogic().start(volume, segmentation, settings)
    frame, _, result = running.finish(timeout=120)
    assert frame["stat_mean"].iloc[0] == pytest.approx(stored[lesion].mean() * START_FACTOR, rel=1e-9)
    notes = [r["Message"] for r in result.report if r["Level"] == "INFO"]
    assert any(f"factor {START_FACTOR:.6g}" in n and "PatientWeight 70" in n for n in notes)

    frame, _ = ExtractionLogic().extract(volume, segmentation, settings.replace(pet_suv=False))
    assert frame["stat_mean"].iloc[0] == pytest.approx(stored[lesion].mean(), rel=1e-9)


def test_missing_weight_is_a_report_warning(scene, tmp_path, monkeypatch):
    import slicer
    from PySERASlicerLib.slicer_logic import ExtractionLogic

    stored = np.full(SHAPE, 1000, dtype=np.int16)
    write_pet_series(tmp_path / "pet", stored, tags={**PET_TAGS, "PatientWeight": None})
    volume = _loaded_volume(scene, tmp_path / "pet", stored)
    monkeypatch.setattr(slicer, "dicomDatabase", FolderDatabase(tmp_path / "pet"), raising=False)
    lesion = np.zeros(SHAPE, bool)
    lesion[1:4, 3:9, 2:8] = True
    cases = ExtractionLogic.prepare_cases([(volume, scene.add_segmentation(volume, {"lesion": lesion}))],
                                          Settings(categories="stat", dimensions="1st"))
    np.testing.assert_array_equal(cases[0].image.array, stored)
    assert [r["Level"] for r in cases[0].report] == ["WARNING"]
    assert "missing PatientWeight (0010,1030)" in cases[0].report[0]["Message"]
