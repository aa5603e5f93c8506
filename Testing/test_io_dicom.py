"""DICOM series reading (pydicom): sorting, rescale, geometry, several series, multi-volume series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_fixtures import ct_volume, write_series
from PySERASlicerLib.io.dicom import list_volumes, read_dicom_series
from PySERASlicerLib.io.readers import InputError, read_image
from PySERASlicerLib.settings import DicomSettings

DATA = Path(__file__).parent / "Data" / "ibsi" / "ibsi_1_ct_radiomics_phantom"


def _sitk_series(folder: Path, uid: str = ""):
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid) if uid else \
        sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return reader.Execute()


@pytest.mark.parametrize("iop", [(1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 0, -1), (0.8, 0.6, 0, -0.6, 0.8, 0)],
                         ids=["axial", "sagittal", "oblique"])
def test_series_sorted_along_normal_with_rescale(tmp_path, iop):
    stored = ct_volume()
    write_series(tmp_path, stored, iop=iop, slope=2.0, intercept=-1024)
    warnings = []
    image = read_image(tmp_path, warnings=warnings)
    assert warnings == []
    # slice order restored although files are shuffled, rescale applied per slice
    np.testing.assert_array_equal(image.array, stored.astype(np.int64) * 2 - 1024)
    assert image.modality == "CT"
    # geometry equals SimpleITK/GDCM's reading of the same files
    reference = _sitk_series(tmp_path)
    np.testing.assert_allclose(image.spacing, reference.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(image.origin, reference.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(image.direction.ravel(), reference.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(image.array, sitk.GetArrayFromImage(reference))


def test_non_integer_rescale_gives_float(tmp_path):
    stored = ct_volume((4, 6, 5))
    write_series(tmp_path, stored, slope=0.5, intercept=0.25)
    image = read_image(tmp_path)
    assert image.array.dtype == np.float64
    np.testing.assert_allclose(image.array, stored * 0.5 + 0.25)


def test_ibsi_ct_dicom_matches_nifti():
    dicom = read_image(DATA / "dicom" / "image")
    nifti = read_image(DATA / "nifti" / "image" / "phantom.nii.gz")
    assert dicom.array.shape == (60, 201, 204)
    np.testing.assert_array_equal(dicom.array, np.rint(nifti.array))
    assert dicom.same_geometry(nifti, tolerance=1e-4)


def test_two_series_in_one_folder_choice_reported(tmp_path):
    big = write_series(tmp_path, ct_volume((8, 10, 12), seed=2), prefix="a")
    small = write_series(tmp_path, ct_volume((5, 10, 12), seed=3) + 500, prefix="b")
    warnings = []
    image = read_image(tmp_path, warnings=warnings)
    assert image.array.shape == (8, 10, 12)
    assert len(warnings) == 1 and "2 image series" in warnings[0]
    assert big["series"] in warnings[0] and small["series"] in warnings[0] and "most images" in warnings[0]
    other = read_image(tmp_path, series_uid=small["series"])
    assert other.array.shape == (5, 10, 12)
    np.testing.assert_array_equal(other.array, sitk.GetArrayFromImage(_sitk_series(tmp_path, small["series"])))
    with pytest.raises(InputError, match="no series 1.2.3"):
        read_image(tmp_path, series_uid="1.2.3")


def test_multi_echo_series_split_by_echo_time(tmp_path):
    echo1 = ct_volume((6, 8, 9), seed=4)
    uids = write_series(tmp_path, echo1, modality="MR", intercept=0, prefix="e1",
                        per_slice=lambda k: {"EchoTime": "10", "EchoNumbers": 1})
    write_series(tmp_path, echo1 // 2, modality="MR", intercept=0, prefix="e2", series_uid=uids["series"],
                 study_uid=uids["study"], frame_uid=uids["frame"], seed=5,
                 per_slice=lambda k: {"EchoTime": "20", "EchoNumbers": 2})
    warnings = []
    first = read_dicom_series(tmp_path, warnings)
    np.testing.assert_array_equal(first.array, echo1)
    assert first.modality == "MRI"
    assert any("2 volumes split by echo time (10, 20); using volume 0" in w for w in warnings)
    second = read_dicom_series(tmp_path, volume=1)
    np.testing.assert_array_equal(second.array, echo1 // 2)
    assert first.same_geometry(second)
    assert list_volumes(tmp_path) == [(uids["series"], 0, "MR echo time 10"), (uids["series"], 1, "MR echo time 20")]
    with pytest.raises(InputError, match="volume 2 does not exist"):
        read_dicom_series(tmp_path, volume=2)


def test_repeated_positions_without_separating_tag_is_an_error(tmp_path):
    stored = ct_volume((3, 4, 4))
    uids = write_series(tmp_path, stored, prefix="a")
    write_series(tmp_path, stored, prefix="b", series_uid=uids["series"], study_uid=uids["study"],
                 frame_uid=uids["frame"])
    with pytest.raises(InputError, match="2 images per slice position and no value"):
        read_image(tmp_path)


def test_missing_slice_refused_with_the_gap_or_interpolated(tmp_path):
    stored = ct_volume((6, 5, 5))
    write_series(tmp_path, stored)  # slices at z = 30 + 2.5 k
    files = sorted(tmp_path.iterdir())
    import pydicom

    # remove the slice in the middle of the stack (z = 37.5)
    positions = {f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files}
    middle = sorted(files, key=positions.get)[3]
    middle.unlink()
    with pytest.raises(InputError, match=r"5 mm instead of 2.5 mm between slice positions 35 and 40 mm.*"
                                         r"1 missing slice.*missing_slices"):
        read_image(tmp_path)
    warnings = []
    image = read_image(tmp_path, warnings=warnings, dicom=DicomSettings(missing_slices="interpolate"))
    assert image.array.shape[0] == 6 and image.spacing[2] == pytest.approx(2.5)
    expected = (stored.astype(float) - 1024)
    expected[3] = (expected[2] + expected[4]) / 2  # the gap, linear between its neighbours
    np.testing.assert_allclose(image.array, expected)
    assert any("Resampled along the normal onto 6 slices 2.5 mm apart" in w for w in warnings)


def test_truncated_slice_names_the_file(tmp_path):
    write_series(tmp_path, ct_volume((3, 16, 16)))
    victim = sorted(tmp_path.iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:-300])
    with pytest.raises(InputError) as info:
        read_image(tmp_path)
    assert victim.name in str(info.value)


def test_folder_without_dicom_images(tmp_path):
    (tmp_path / "notes.dcm").write_bytes(b"not dicom at all")
    with pytest.raises(InputError, match="no DICOM image series"):
        read_image(tmp_path)
