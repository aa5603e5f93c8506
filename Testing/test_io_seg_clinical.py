"""DICOM SEG as clinical systems write it: repeated segment labels, frames a few hundredths of a
voxel off the image slices, frames that reference their image slices by SOP instance UID."""

from __future__ import annotations

import numpy as np
import pytest
from clinical_dicom_fixtures import series_instances, write_clinical_seg
from dicom_fixtures import write_series
from PySERASlicerLib.io.readers import read_image, read_mask
from PySERASlicerLib.io.seg import segment_names

SPACING, ORIGIN = (0.8, 0.8, 2.5), (-10.0, -20.0, 30.0)
SHAPE = (8, 24, 20)


def _box(k0, k1, j0, j1, i0, i1):
    mask = np.zeros(SHAPE, dtype=bool)
    mask[k0:k1, j0:j1, i0:i1] = True
    return mask


@pytest.fixture
def ct(tmp_path):
    uids = write_series(tmp_path / "ct", np.zeros(SHAPE, dtype=np.int16), SPACING, ORIGIN)
    return tmp_path, uids, read_image(tmp_path / "ct")


def test_segments_sharing_a_label_are_all_read_and_named_by_segment_number(ct):
    """A whole-body SEG labels most lesions alike: each segment is its own ROI."""
    tmp_path, uids, image = ct
    segments = [("Liver", _box(1, 4, 2, 10, 2, 10)),
                ("Neoplasm, Secondary", _box(2, 3, 12, 15, 3, 6)),
                ("Neoplasm, Secondary", _box(5, 7, 16, 20, 12, 18)),
                ("Neoplasm, Secondary", _box(6, 7, 1, 3, 14, 16))]
    write_clinical_seg(tmp_path / "seg.dcm", segments, uids, SPACING, ORIGIN)
    warnings = []
    mask = read_mask(tmp_path / "seg.dcm", image, warnings=warnings)
    assert list(mask.named) == ["Liver", "Neoplasm, Secondary_2", "Neoplasm, Secondary_3", "Neoplasm, Secondary_4"]
    for (_, expected), name in zip(segments, mask.named):
        np.testing.assert_array_equal(mask.named[name], expected, err_msg=name)
    assert any("segments 2, 3, 4 share the label 'Neoplasm, Secondary'" in w for w in warnings)
    assert mask.sources == {"Liver": "seg.dcm: segment 1 'Liver'",
                            "Neoplasm, Secondary_2": "seg.dcm: segment 2 'Neoplasm, Secondary'",
                            "Neoplasm, Secondary_3": "seg.dcm: segment 3 'Neoplasm, Secondary'",
                            "Neoplasm, Secondary_4": "seg.dcm: segment 4 'Neoplasm, Secondary'"}


def test_segment_names_stay_unique_against_labels_that_look_numbered():
    assert segment_names({1: "A_2", 2: "A", 3: "A"}) == {1: "A_2", 2: "A_2_2", 3: "A_3"}
    assert segment_names({1: "B", 2: "C"}) == {1: "B", 2: "C"}


def test_frames_two_hundredths_of_a_voxel_off_the_slices_keep_every_slice(ct):
    tmp_path, uids, image = ct
    lesion = _box(2, 8, 4, 12, 5, 11)  # up to the last image slice
    write_clinical_seg(tmp_path / "seg.dcm", [("Lesion", lesion)], uids, SPACING, ORIGIN, slice_offset_voxels=0.02)
    warnings = []
    mask = read_mask(tmp_path / "seg.dcm", image, warnings=warnings)
    np.testing.assert_array_equal(mask.named["Lesion"], lesion)
    assert warnings == []


def test_resampled_frames_off_the_slices_keep_the_last_slice(ct):
    """A SEG on a 2x coarser in-plane grid is resampled; its last frame 0.02 voxel beyond the last
    image slice still rounds onto it (scipy's mode "constant" dropped it)."""
    tmp_path, uids, image = ct
    coarse_origin = tuple(np.add(ORIGIN, (0.4, 0.4, 0.0)))  # centre of a 2 x 2 block of image voxels
    coarse = np.zeros((8, 12, 10), dtype=bool)
    coarse[4:8, 2:5, 1:4] = True  # image voxels i 2..7, j 4..9, slices 4..7
    write_clinical_seg(tmp_path / "seg.dcm", [("Lesion", coarse)], uids, (1.6, 1.6, 2.5), coarse_origin,
                       slice_offset_voxels=0.02)
    warnings = []
    mask = read_mask(tmp_path / "seg.dcm", image, warnings=warnings)
    assert any("resampled onto the image grid" in w for w in warnings)
    np.testing.assert_array_equal(mask.named["Lesion"], _box(4, 8, 4, 10, 2, 8))


def test_frames_referencing_image_slices_go_onto_those_slices(ct):
    """Frames 0.6 voxel off (position alone would put them one slice further) but naming their
    source image by SOP instance UID are placed on that slice."""
    tmp_path, uids, image = ct
    lesion = _box(1, 7, 3, 9, 3, 9)
    write_clinical_seg(tmp_path / "seg.dcm", [("Lesion", lesion)], uids, SPACING, ORIGIN, slice_offset_voxels=0.6,
                       references=series_instances(tmp_path / "ct"))
    warnings = []
    mask = read_mask(tmp_path / "seg.dcm", image, warnings=warnings)
    np.testing.assert_array_equal(mask.named["Lesion"], lesion)
    assert warnings == []
    # the same frames without references are resampled by position: one slice further
    write_clinical_seg(tmp_path / "seg2.dcm", [("Lesion", lesion)], uids, SPACING, ORIGIN, slice_offset_voxels=0.6)
    shifted = read_mask(tmp_path / "seg2.dcm", image).named["Lesion"]
    np.testing.assert_array_equal(shifted, _box(2, 8, 3, 9, 3, 9))
