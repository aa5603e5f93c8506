"""DICOM as scanners and PACS exports write it (issue 17): enhanced multi-frame files, gantry tilt,
missing slices, mixed series folders, compressed transfer syntaxes, files without preamble,
nested folders / DICOMDIR, 32-bit values, DWI with gradient directions.

Every fixture is written with pydicom (enhanced files from the functional-group macros) and the
read is compared with the true geometry and values, and where one exists with an independent
read (SimpleITK/GDCM on the same pixels written as a plain single-frame series).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_fixtures import (
    compress_file,
    ct_volume,
    strip_preamble,
    world_geometry,
    write_enhanced,
    write_rtstruct,
    write_series,
)
from PySERASlicerLib.io.dicom import list_volumes, read_dicom_series
from PySERASlicerLib.io.readers import InputError, read_image, read_mask
from PySERASlicerLib.settings import DicomSettings

SPACING, ORIGIN = (0.8, 0.8, 2.5), (-10.0, -20.0, 30.0)


def _sitk_series(folder: Path):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _assert_geometry(image, spacing, origin, iop):
    direction, _ = world_geometry(spacing, origin, iop)
    np.testing.assert_allclose(image.spacing, spacing, atol=1e-5)
    np.testing.assert_allclose(image.origin, origin, atol=1e-5)
    np.testing.assert_allclose(image.direction, direction, atol=1e-6)


def _enhanced_frames(stored, spacing=SPACING, origin=ORIGIN, iop=(1, 0, 0, 0, 1, 0), **per_frame):
    """Frame dicts of a volume (k, j, i), positions on the true grid; per_frame values are
    functions of k."""
    _, affine = world_geometry(spacing, origin, iop)
    frames = []
    for k in range(stored.shape[0]):
        frame = {"stored": stored[k], "position": affine[:3, :3] @ [0, 0, k] + affine[:3, 3]}
        frame.update({key: function(k) for key, function in per_frame.items()})
        frames.append(frame)
    return frames


# ---------------------------------------------------------------------------------------------
# 1. Enhanced multi-frame
# ---------------------------------------------------------------------------------------------
def test_enhanced_frames_sorted_with_per_frame_rescale(tmp_path):
    """Frames out of order with a different rescale each: sorted by position, each frame's
    Pixel Value Transformation applied; equals the same pixels as a single-frame series."""
    stored = ct_volume((9, 12, 10), seed=7)
    frames = _enhanced_frames(stored, slope=lambda k: 1 + k % 3, intercept=lambda k: -1000 + 7 * k)
    order = np.random.default_rng(0).permutation(len(frames))
    write_enhanced(tmp_path / "enhanced.dcm", [frames[i] for i in order], modality="CT")
    image = read_image(tmp_path / "enhanced.dcm")
    k = np.arange(9)[:, None, None]
    np.testing.assert_array_equal(image.array, stored.astype(np.int64) * (1 + k % 3) + (-1000 + 7 * k))
    _assert_geometry(image, SPACING, ORIGIN, (1, 0, 0, 0, 1, 0))
    assert image.modality == "CT"
    # the folder holding it reads the same
    folder_image = read_image(tmp_path)
    np.testing.assert_array_equal(folder_image.array, image.array)
    # independent read: SimpleITK on the same stored values as a plain series (rescale 1, 0)
    write_series(tmp_path / "plain", stored, spacing=SPACING, origin=ORIGIN, intercept=0)
    reference = _sitk_series(tmp_path / "plain")
    np.testing.assert_array_equal((image.array - (-1000 + 7 * k)) // (1 + k % 3), sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(image.origin, reference.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(image.spacing, reference.GetSpacing(), atol=1e-5)


def test_enhanced_multi_echo_split_like_single_frame_series(tmp_path):
    """2 echoes x 6 slices in one file, interleaved: two volumes split by echo time, exactly
    as a single-frame multi-echo series is."""
    echo1, echo2 = ct_volume((6, 8, 9), seed=4), ct_volume((6, 8, 9), seed=5) // 2
    frames = (_enhanced_frames(echo1, echo_time=lambda k: 10.0) + _enhanced_frames(echo2, echo_time=lambda k: 25.0))
    interleaved = [frames[i // 2 + (i % 2) * 6] for i in range(12)]
    uids = write_enhanced(tmp_path / "me.dcm", interleaved)
    warnings = []
    first = read_dicom_series(tmp_path, warnings)
    np.testing.assert_array_equal(first.array, echo1)
    assert any("2 volumes split by echo time (10, 25)" in w for w in warnings)
    second = read_image(tmp_path, volume=1)
    np.testing.assert_array_equal(second.array, echo2)
    _assert_geometry(second, SPACING, ORIGIN, (1, 0, 0, 0, 1, 0))
    assert list_volumes(tmp_path) == [(uids["series"], 0, "MR echo time 10"), (uids["series"], 1, "MR echo time 25")]


def test_enhanced_dynamic_series_split_by_temporal_position(tmp_path):
    phases = [ct_volume((4, 6, 5), seed=30 + t) for t in range(3)]
    frames = sum((_enhanced_frames(phase, temporal_index=lambda k, t=t: t + 1) for t, phase in enumerate(phases)), [])
    write_enhanced(tmp_path / "dce.dcm", frames[::-1])
    assert [label for _, _, label in list_volumes(tmp_path)] == [f"MR temporal position {t}" for t in (1, 2, 3)]
    for t, phase in enumerate(phases):
        np.testing.assert_array_equal(read_image(tmp_path / "dce.dcm", volume=t).array, phase)


SAGITTAL = (0, 1, 0, 0, 0, -1)


def _two_plane_file(path: Path, stack_ids: bool):
    """An enhanced MR file with an axial stack (5 frames) and a sagittal stack (4 frames, same
    rows x columns), frames interleaved, no LOCALIZER flag; StackID "1"/"2" if ``stack_ids``."""
    axial, sagittal = ct_volume((5, 8, 9), seed=40), ct_volume((4, 8, 9), seed=41) + 500
    sagittal_origin = (20.0, -20.0, 40.0)
    frames_axial = _enhanced_frames(axial)
    frames_sagittal = _enhanced_frames(sagittal, origin=sagittal_origin, iop=SAGITTAL)
    for frames, iop in ((frames_axial, (1, 0, 0, 0, 1, 0)), (frames_sagittal, SAGITTAL)):
        for frame in frames:
            frame["iop"] = iop  # per-frame Plane Orientation
    if stack_ids:
        for frames, stack in ((frames_axial, "1"), (frames_sagittal, "2")):
            for frame in frames:
                frame["stack_id"] = stack
    # axial first: without StackID, the stacks are numbered in the order their first frames come
    interleaved = [f for pair in zip(frames_axial, frames_sagittal[::-1]) for f in pair] + [frames_axial[-1]]
    uids = write_enhanced(path, interleaved)
    return uids, axial, sagittal, sagittal_origin


@pytest.mark.parametrize("stack_ids", [True, False], ids=["StackID", "orientation only"])
def test_enhanced_file_with_stacks_in_two_orientations_split_by_stack(tmp_path, stack_ids):
    """A 3-plane-style enhanced file is split into one volume per stack (StackID, else
    orientation), each sorted along its own normal, like any multi-volume series."""
    uids, axial, sagittal, sagittal_origin = _two_plane_file(tmp_path / "planes.dcm", stack_ids)
    warnings = []
    first = read_dicom_series(tmp_path, warnings)
    np.testing.assert_array_equal(first.array, axial)
    _assert_geometry(first, SPACING, ORIGIN, (1, 0, 0, 0, 1, 0))
    label = "stack" if stack_ids else "orientation"
    assert any(f"2 volumes split by {label}" in w for w in warnings), warnings
    second = read_image(tmp_path / "planes.dcm", volume=1)
    np.testing.assert_array_equal(second.array, sagittal)
    _assert_geometry(second, SPACING, sagittal_origin, SAGITTAL)
    volumes = list_volumes(tmp_path)
    assert [(uid, index) for uid, index, _ in volumes] == [(uids["series"], 0), (uids["series"], 1)]
    if stack_ids:
        assert [text for _, _, text in volumes] == ["MR stack 1", "MR stack 2"]
    else:
        assert [text for _, _, text in volumes] == ["MR orientation 1 (normal 0,0,1)",
                                                    "MR orientation 2 (normal -1,0,0)"]


def test_batch_split_dicom_on_a_two_plane_enhanced_file(tmp_path):
    from PySERASlicerLib import process_batch

    _, axial, _, _ = _two_plane_file(tmp_path / "planes.dcm", stack_ids=True)
    mask = _box_mask(tmp_path / "mask.nii.gz", axial.shape)
    result = process_batch(tmp_path / "planes.dcm", mask, tmp_path / "out", split_dicom=True, **STAT)
    frame = result["features_extracted"].set_index("PatientID")
    assert list(frame.index) == ["planes_1"]  # the sagittal stack is not on the mask's grid: a Report row
    box = (slice(1, 5), slice(2, 7), slice(2, 7))
    assert frame.loc["planes_1", "stat_mean"] == pytest.approx(axial[box].mean(), rel=1e-12)
    assert result["failed_files"] == 1


def test_two_enhanced_files_of_one_series(tmp_path):
    stored = ct_volume((8, 6, 7), seed=9)
    frames = _enhanced_frames(stored, slope=lambda k: 2, intercept=lambda k: -5)
    uids = write_enhanced(tmp_path / "part1.dcm", frames[1::2])
    write_enhanced(tmp_path / "part2.dcm", frames[0::2], uids=uids)
    image = read_image(tmp_path)
    np.testing.assert_array_equal(image.array, stored.astype(np.int64) * 2 - 5)
    _assert_geometry(image, SPACING, ORIGIN, (1, 0, 0, 0, 1, 0))


def test_enhanced_dwi_split_by_b_value_and_gradient_direction(tmp_path):
    """b = 0 plus b = 1000 in three gradient directions: four volumes."""
    base = ct_volume((4, 5, 6), seed=11)
    directions = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    frames = _enhanced_frames(base, b_value=lambda k: 0)
    for number, direction in enumerate(directions, start=1):
        frames += _enhanced_frames(base + 100 * number, b_value=lambda k: 1000,
                                   gradient=lambda k, d=direction: d)
    write_enhanced(tmp_path / "dwi.dcm", frames[::-1])
    volumes = list_volumes(tmp_path)
    assert [label for _, _, label in volumes] == [
        "MR b-value and gradient direction 0", "MR b-value and gradient direction 1000 (0,0,1)",
        "MR b-value and gradient direction 1000 (0,1,0)", "MR b-value and gradient direction 1000 (1,0,0)"]
    np.testing.assert_array_equal(read_image(tmp_path, volume=0).array, base)
    np.testing.assert_array_equal(read_image(tmp_path, volume=3).array, base + 100)  # (1, 0, 0)


def test_single_frame_dwi_split_by_gradient_direction(tmp_path):
    base = ct_volume((4, 5, 6), seed=12)
    uids = None
    for number, direction in enumerate([(1, 0, 0), (0, 1, 0)]):
        keep = {} if uids is None else {"series_uid": uids["series"], "study_uid": uids["study"],
                                        "frame_uid": uids["frame"]}
        uids = write_series(tmp_path, base + 50 * number, modality="MR", intercept=0, prefix=f"d{number}",
                            seed=number, per_slice=lambda k, d=direction: {
                                "DiffusionBValue": 800.0, "DiffusionGradientOrientation": [float(v) for v in d]},
                            **keep)
    assert [label for _, _, label in list_volumes(tmp_path)] == [
        "MR b-value and gradient direction 800 (0,1,0)", "MR b-value and gradient direction 800 (1,0,0)"]
    np.testing.assert_array_equal(read_image(tmp_path, volume=1).array, base)


# ---------------------------------------------------------------------------------------------
# 2. Gantry tilt
# ---------------------------------------------------------------------------------------------
def _tilted_series(folder: Path, tilt_degrees: float = 15.0, n_slices: int = 10):
    """CT acquired with a tilted gantry: slices in planes tilted about the x axis, positions
    stepping along z (as the scanner writes them). Stored values are a linear function of the
    world position, so the truth is known at every point."""
    angle = np.radians(tilt_degrees)
    iop = (1, 0, 0, 0, np.cos(angle), -np.sin(angle))
    row, column = np.array(iop[:3], float), np.array(iop[3:], float)
    spacing = (1.0, 1.0, 3.0)
    origin = np.array([-10.0, -12.0, 40.0])
    positions = origin + np.outer(np.arange(n_slices) * spacing[2], [0, 0, 1])  # along z, not the normal
    j, i = np.mgrid[0:24, 0:20]

    def field(points):  # HU + 1024 as a linear function of LPS position
        return 400 + 3.0 * points[..., 0] + 2.0 * points[..., 1] + 4.0 * points[..., 2]

    stored = np.stack([np.rint(field(p + i[..., None] * row + j[..., None] * column)) for p in positions])
    write_series(folder, stored.astype(np.int16), spacing=spacing, iop=iop, positions=positions,
                 per_slice=lambda k: {"GantryDetectorTilt": f"{tilt_degrees:g}"})
    return field, positions, row, column


def test_gantry_tilt_regularised_onto_orthogonal_grid(tmp_path):
    field, positions, row, column = _tilted_series(tmp_path)
    warnings = []
    image = read_image(tmp_path, warnings=warnings)
    tilt = [w for w in warnings if "gantry tilt" in w]
    assert len(tilt) == 1 and "about 15 deg" in tilt[0] and "GantryDetectorTilt says 15 deg" in tilt[0]
    assert "resampled each slice in its plane onto an orthogonal grid" in tilt[0]
    normal = np.cross(row, column)
    np.testing.assert_allclose(image.direction, np.column_stack([row, column, normal]), atol=1e-6)
    assert image.spacing[2] == pytest.approx(3.0 * np.cos(np.radians(15)), abs=1e-4)
    # every voxel that lies inside an acquired slice holds the field's value at its world centre
    k, j, i = np.indices(image.array.shape)
    world = image.origin + (image.direction @ (np.stack([i, j, k], -1)[..., None] * np.array(image.spacing)[:, None])
                            )[..., 0]
    in_slice = (world - positions[k]) @ np.column_stack([row, column])  # (u, v) mm within slice k
    covered = (in_slice[..., 0] >= 0) & (in_slice[..., 0] <= 19) & (in_slice[..., 1] >= 0) & (in_slice[..., 1] <= 23)
    assert covered.mean() > 0.6
    np.testing.assert_allclose(image.array[covered] + 1024, field(world[covered]), atol=0.51)
    # the slices' world centres are where DICOM says they are
    np.testing.assert_allclose((world[:, 0, 0] - positions) @ normal, 0, atol=1e-6)


def test_gantry_tilt_rtstruct_roi_keeps_its_volume(tmp_path):
    """An RTSTRUCT drawn on the tilted slices (a 10 x 10 mm square on each of 6 slices) covers
    10 x 10 x 6 slice distances on the regularised image (was 21 % short without it)."""
    field, positions, row, column = _tilted_series(tmp_path / "image")
    uids = {"study": pydicom.dcmread(next((tmp_path / "image").iterdir())).StudyInstanceUID,
            "frame": pydicom.dcmread(next((tmp_path / "image").iterdir())).FrameOfReferenceUID}
    contours = []
    for k in range(2, 8):
        corners = [positions[k] + u * row + v * column for u, v in ((4.5, 6.5), (14.5, 6.5), (14.5, 16.5), (4.5, 16.5))]
        contours.append(np.array(corners))
    write_rtstruct(tmp_path / "rs.dcm", {"GTV": contours}, uids)
    image = read_image(tmp_path / "image")
    mask = read_mask(tmp_path / "rs.dcm", image)
    roi = np.asarray(mask.named["GTV"])
    assert np.count_nonzero(roi) * np.prod(image.spacing) == pytest.approx(10 * 10 * 6 * image.spacing[2], rel=1e-6)
    # and the ROI holds the intensities of the contoured tissue: for a linear field, its mean
    # is the field at the prism's centre (a grid left sheared would sample shifted tissue)
    centre = np.mean([positions[k] + 9.5 * row + 11.5 * column for k in range(2, 8)], axis=0)
    assert image.array[roi].mean() + 1024 == pytest.approx(field(centre), abs=0.5)


def test_gantry_tilt_label_series_resampled_by_nearest_neighbour(tmp_path):
    """A DICOM label-map series on the tilted grid: the same regularised grid as the image,
    labels only shifted (nearest neighbour), never blended into new values."""
    _, positions, row, column = _tilted_series(tmp_path / "image")
    labels = np.zeros((10, 24, 20), np.int16)
    labels[2:8, 5:15, 4:12] = 3
    iop = tuple(row) + tuple(column)
    write_series(tmp_path / "labels", labels, spacing=(1.0, 1.0, 3.0), iop=iop, positions=positions, intercept=0)
    image = read_image(tmp_path / "image")
    warnings = []
    mask = read_mask(tmp_path / "labels", image, warnings=warnings)
    assert set(np.unique(mask.labels)) == {0, 3}
    assert np.count_nonzero(mask.labels) == np.count_nonzero(labels)  # a box keeps its size when shifted
    assert any("gantry tilt" in w and "nearest neighbour" in w for w in warnings)


def test_gantry_tilt_refused_when_asked(tmp_path):
    _tilted_series(tmp_path)
    with pytest.raises(InputError, match="gantry tilt.*about 15 deg.*refused because dicom.gantry_tilt is 'error'"):
        read_image(tmp_path, dicom=DicomSettings(gantry_tilt="error"))


# ---------------------------------------------------------------------------------------------
# 3. Missing slices, truncated headers
# ---------------------------------------------------------------------------------------------
def test_truncated_header_named_and_the_gap_refused(tmp_path):
    write_series(tmp_path, ct_volume((6, 5, 5)))
    by_z = sorted(tmp_path.iterdir(), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    victim = by_z[2]
    victim.write_bytes(victim.read_bytes()[:300])  # cut inside the header
    warnings = []
    with pytest.raises(InputError, match="between slice positions 32.5 and 37.5 mm.*1 missing slice") as error:
        read_image(tmp_path, warnings=warnings)
    assert f"1 unreadable file(s) in this folder were skipped: {victim.name}" in str(error.value)
    assert any(victim.name in w for w in warnings), warnings


def test_positions_rounded_to_a_tenth_of_a_mm_are_not_gaps(tmp_path):
    """0.625 mm slices whose positions are written to 0.1 mm (steps 0.6 / 0.7 mm): read on the
    fitted uniform grid, every slice within 0.05 mm of its written position, with a warning."""
    stored = ct_volume((12, 5, 6), seed=16)
    written = np.round(30 + 0.625 * np.arange(12), 1)
    write_series(tmp_path, stored, spacing=(0.8, 0.8, 0.625),
                 positions=np.column_stack([np.full(12, -10.0), np.full(12, -20.0), written]))
    warnings = []
    image = read_image(tmp_path, warnings=warnings)
    np.testing.assert_array_equal(image.array, stored.astype(np.int64) - 1024)
    placed = image.origin[2] + image.spacing[2] * np.arange(12)
    assert np.max(np.abs(placed - written)) <= 0.1 * 0.625
    assert any("deviate by up to" in w and "rounded positions?" in w for w in warnings)


# ---------------------------------------------------------------------------------------------
# 4. Choosing among series
# ---------------------------------------------------------------------------------------------
def test_localizer_series_and_dose_report_skipped_with_reasons(tmp_path):
    ct = ct_volume((6, 10, 12), seed=3)
    uids = write_series(tmp_path, ct, prefix="ct")
    # a 3-image localizer series: two images share a position, the third does not
    scout = ct_volume((3, 10, 12), seed=4)
    write_series(tmp_path, scout, prefix="scout", study_uid=uids["study"], frame_uid=uids["frame"],
                 positions=np.array([[0, 0, 0], [0, 0, 0], [0, 0, 5.0]]))
    # a secondary-capture dose report: an image without plane geometry
    report = write_series(tmp_path, ct_volume((1, 10, 12)), prefix="dose", study_uid=uids["study"])
    dose = next(tmp_path.glob("dose_*.dcm"))
    ds = pydicom.dcmread(dose)
    del ds.ImagePositionPatient, ds.ImageOrientationPatient
    ds.SeriesDescription = "Dose Report"
    ds.save_as(dose)
    warnings = []
    image = read_image(tmp_path, warnings=warnings)
    np.testing.assert_array_equal(image.array, ct.astype(np.int64) - 1024)
    skipped = [w for w in warnings if "skipped" in w]
    assert any("slice positions repeat unevenly" in w for w in skipped)
    assert any(report["series"] in w and "cannot be stacked" in w for w in skipped)
    with pytest.raises(InputError, match=f"series {report['series']} cannot be read: images without"):
        read_image(tmp_path, series_uid=report["series"])


def test_series_with_a_gap_gives_way_to_the_next_complete_series(tmp_path):
    """The biggest series has a slice gap (refused by default) and a complete reconstruction
    lies beside it: without series_uid the complete one is read and the Report says why the
    first was not; asked for by series_uid, the gapped series still fails."""
    gapped = ct_volume((10, 8, 9), seed=20)
    z = 30.0 + 2.5 * np.array([0, 1, 2, 3, 4, 6, 7, 8, 9, 10])  # slice 5 missing
    first = write_series(tmp_path, gapped, prefix="thin",
                         positions=np.column_stack([np.full(10, -10.0), np.full(10, -20.0), z]))
    complete = ct_volume((7, 8, 9), seed=21)
    second = write_series(tmp_path, complete, prefix="thick", spacing=(0.8, 0.8, 4.0),
                          study_uid=first["study"], frame_uid=first["frame"])
    warnings = []
    image = read_image(tmp_path, warnings=warnings)
    np.testing.assert_array_equal(image.array, complete.astype(np.int64) - 1024)
    assert image.spacing[2] == pytest.approx(4.0)
    used = [w for w in warnings if f"using {second['series']}" in w]
    assert len(used) == 1 and "failed when read" in used[0], warnings
    failed = [w for w in warnings if first["series"] in w and "not used, reading it failed" in w]
    assert len(failed) == 1 and "1 missing slice" in failed[0], warnings
    with pytest.raises(InputError, match="1 missing slice"):
        read_image(tmp_path, series_uid=first["series"])
    with pytest.raises(InputError, match="1 missing slice"):  # volume 0 of the default series
        read_image(tmp_path, volume=0)


def test_batch_report_names_the_series_used_after_a_failed_one(tmp_path):
    from PySERASlicerLib import process_batch

    z = 30.0 + 2.5 * np.array([0, 1, 2, 3, 4, 6, 7, 8, 9, 10])
    first = write_series(tmp_path / "ct", ct_volume((10, 8, 9), seed=20), prefix="thin",
                         positions=np.column_stack([np.full(10, -10.0), np.full(10, -20.0), z]))
    complete = ct_volume((7, 8, 9), seed=21)
    second = write_series(tmp_path / "ct", complete, prefix="thick", spacing=(0.8, 0.8, 4.0),
                          study_uid=first["study"], frame_uid=first["frame"])
    mask = _box_mask(tmp_path / "mask.nii.gz", complete.shape, spacing=(0.8, 0.8, 4.0))
    result = process_batch(tmp_path / "ct", mask, tmp_path / "out", **STAT)
    box = (slice(1, 5), slice(2, 7), slice(2, 7))
    assert result["features_extracted"]["stat_mean"].iloc[0] == pytest.approx(complete[box].mean() - 1024, rel=1e-12)
    assert any(first["series"] in line and "not used, reading it failed" in line and "missing slice" in line
               for line in result["logs"]), result["logs"]
    assert any(f"using {second['series']}" in line for line in result["logs"])


def test_every_series_failing_when_read_names_each(tmp_path):
    uids = {}
    for name, missing in (("a", 3), ("b", 2)):
        keep = [k for k in range(8) if k != missing]
        z = 30.0 + 2.5 * np.array(keep, float)
        uids[name] = write_series(tmp_path, ct_volume((7, 6, 6), seed=missing), prefix=name,
                                  positions=np.column_stack([np.full(7, -10.0), np.full(7, -20.0), z]))["series"]
    with pytest.raises(InputError, match="no image series could be read") as error:
        read_image(tmp_path)
    assert all(uid in str(error.value) for uid in uids.values()) and str(error.value).count("missing slice") == 2


def test_localizer_images_in_the_series_left_out(tmp_path):
    ct = ct_volume((6, 10, 12), seed=5)
    uids = write_series(tmp_path, ct, per_slice=lambda k: {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]})
    write_series(tmp_path, ct_volume((1, 10, 12)), prefix="loc", series_uid=uids["series"],
                 study_uid=uids["study"], frame_uid=uids["frame"], iop=(1, 0, 0, 0, 0, -1),
                 per_slice=lambda k: {"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]})
    warnings = []
    image = read_image(tmp_path, warnings=warnings)
    np.testing.assert_array_equal(image.array, ct.astype(np.int64) - 1024)
    assert any("1 LOCALIZER image(s) left out (loc_000.dcm)" in w for w in warnings)


def test_same_file_twice_read_once(tmp_path):
    ct = ct_volume((5, 6, 7), seed=6)
    write_series(tmp_path, ct)
    first = sorted(tmp_path.iterdir())[0]
    shutil.copy(first, tmp_path / "copy_of_first.dcm")
    warnings = []
    image = read_image(tmp_path, warnings=warnings)
    np.testing.assert_array_equal(image.array, ct.astype(np.int64) - 1024)
    assert any("repeats an image already read (same SOPInstanceUID)" in w for w in warnings)


# ---------------------------------------------------------------------------------------------
# 5. Compressed transfer syntaxes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compressor, syntax", [("JPEG", "1.2.840.10008.1.2.4.70"),
                                                ("JPEG2000", "1.2.840.10008.1.2.4.90")])
def test_jpeg_lossless_and_jpeg2000_series(tmp_path, compressor, syntax):
    ct = ct_volume((5, 16, 20), seed=8)
    write_series(tmp_path, ct, slope=2, intercept=-1024)
    for path in tmp_path.iterdir():
        assert compress_file(path, compressor) == syntax
    image = read_image(tmp_path)
    np.testing.assert_array_equal(image.array, ct.astype(np.int64) * 2 - 1024)
    _assert_geometry(image, SPACING, ORIGIN, (1, 0, 0, 0, 1, 0))


def test_jpeg2000_enhanced_file_with_per_frame_rescale(tmp_path):
    """GDCM decodes the frames; the per-frame rescale is still ours (GDCM would apply one)."""
    stored = ct_volume((5, 12, 10), seed=3)
    frames = _enhanced_frames(stored, slope=lambda k: 1 + k, intercept=lambda k: -100 * k)
    write_enhanced(tmp_path / "enhanced.dcm", [frames[i] for i in (3, 0, 4, 1, 2)], modality="CT")
    assert compress_file(tmp_path / "enhanced.dcm", "JPEG2000") == "1.2.840.10008.1.2.4.90"
    image = read_image(tmp_path / "enhanced.dcm")
    k = np.arange(5)[:, None, None]
    np.testing.assert_array_equal(image.array, stored.astype(np.int64) * (1 + k) - 100 * k)
    _assert_geometry(image, SPACING, ORIGIN, (1, 0, 0, 0, 1, 0))


def test_jpeg_ls_series_from_pydicom_test_file(tmp_path):
    """JPEG-LS lossless frames (pydicom's MR_small_jpeg_ls_lossless.dcm, a 64 x 64 MR slice)
    as a 4-slice series; the decoded values equal pydicom's uncompressed MR_small.dcm."""
    from pydicom.data import get_testdata_file

    compressed = pydicom.dcmread(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    truth = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    write_series(tmp_path, np.zeros((4, 64, 64), np.int16), modality="MR", intercept=0)
    for path in tmp_path.iterdir():
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = compressed.file_meta.TransferSyntaxUID
        ds.BitsStored, ds.HighBit = compressed.BitsStored, compressed.HighBit
        ds.PixelRepresentation = compressed.PixelRepresentation
        ds.PixelData = compressed.PixelData
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.save_as(path)
    assert str(pydicom.dcmread(next(tmp_path.iterdir())).file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.80"
    image = read_image(tmp_path)
    assert image.array.shape == (4, 64, 64)
    for k in range(4):
        np.testing.assert_array_equal(image.array[k], truth)


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm"])
def test_pydicom_test_files_match_the_uncompressed_original(name):
    """pydicom's MR_small in other transfer syntaxes reads as the native little-endian file."""
    from pydicom.data import get_testdata_file

    truth = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    image = read_image(get_testdata_file(name))
    expected = truth.pixel_array * float(truth.get("RescaleSlope", 1)) + float(truth.get("RescaleIntercept", 0))
    np.testing.assert_array_equal(image.array[0], expected)
    np.testing.assert_allclose(image.origin, [float(v) for v in truth.ImagePositionPatient])


# ---------------------------------------------------------------------------------------------
# 6. Files without preamble, nested folders, DICOMDIR
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("implicit_vr", [False, True], ids=["explicit", "implicit"])
def test_files_without_preamble(tmp_path, implicit_vr):
    ct = ct_volume((5, 6, 7), seed=13)
    write_series(tmp_path, ct)
    for path in list(tmp_path.iterdir()):
        strip_preamble(path, implicit_vr)
        path.rename(path.with_suffix(""))  # no .dcm suffix either
    assert not any(p.read_bytes()[128:132] == b"DICM" for p in tmp_path.iterdir())
    image = read_image(tmp_path)
    np.testing.assert_array_equal(image.array, ct.astype(np.int64) - 1024)
    _assert_geometry(image, SPACING, ORIGIN, (1, 0, 0, 0, 1, 0))


def test_nested_patient_study_series_folders_walked_down(tmp_path):
    ct = ct_volume((5, 6, 7), seed=14)
    write_series(tmp_path / "patient" / "study_1" / "series_3", ct)
    warnings = []
    image = read_image(tmp_path / "patient", warnings=warnings)
    np.testing.assert_array_equal(image.array, ct.astype(np.int64) - 1024)
    assert any("no DICOM files directly in this folder; read 5 file(s) in 1 subfolder(s) "
               "(study_1/series_3)" in w for w in warnings)


def test_dicomdir_cd_root(tmp_path):
    from pydicom.fileset import FileSet

    ct = ct_volume((5, 6, 7), seed=15)
    write_series(tmp_path / "export", ct)
    file_set = FileSet()
    for path in sorted((tmp_path / "export").iterdir()):
        ds = pydicom.dcmread(path)
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.SeriesNumber = "20260101", "120000", "1", 1
        file_set.add(ds)
    file_set.write(tmp_path / "cd")
    assert (tmp_path / "cd" / "DICOMDIR").is_file()
    warnings = []
    image = read_image(tmp_path / "cd", warnings=warnings)
    np.testing.assert_array_equal(image.array, ct.astype(np.int64) - 1024)
    assert any("no DICOM files directly in this folder; the DICOMDIR references 5 file(s)" in w for w in warnings)


def test_legacy_multi_frame_file_in_a_folder_read_by_simpleitk(tmp_path):
    """A multi-frame file without functional groups (NM-style) alone in a folder reads as
    SimpleITK reads the file itself."""
    write_series(tmp_path, ct_volume((1, 6, 7)), modality="CT", intercept=0)
    path = next(tmp_path.iterdir())
    ds = pydicom.dcmread(path)
    frames = ct_volume((4, 6, 7), seed=3)
    ds.Modality, ds.NumberOfFrames = "NM", 4
    del ds.ImagePositionPatient, ds.ImageOrientationPatient
    ds.PixelData = frames.astype(np.int16).tobytes()
    ds.save_as(path)
    image = read_image(tmp_path)
    np.testing.assert_array_equal(image.array, sitk.GetArrayFromImage(sitk.ReadImage(str(path))))
    np.testing.assert_array_equal(image.array, frames)


# ---------------------------------------------------------------------------------------------
# 7. 32-bit values and rescale overflow
# ---------------------------------------------------------------------------------------------
def test_uint32_above_2_31_does_not_wrap(tmp_path):
    stored = (np.uint64(2_500_000_000) + ct_volume((4, 5, 6)).astype(np.uint64)).astype(np.uint32)
    write_series(tmp_path, stored, intercept=0, dtype=np.uint32)
    image = read_image(tmp_path)
    assert image.array.dtype == np.int64
    np.testing.assert_array_equal(image.array, stored.astype(np.int64))
    assert image.array.mean() == pytest.approx(stored.astype(float).mean())


def test_rescale_beyond_int32_kept_exact(tmp_path):
    stored = ct_volume((4, 5, 6)) * 20  # up to ~21000
    write_series(tmp_path, stored, slope=200000, intercept=-7)
    image = read_image(tmp_path)
    np.testing.assert_array_equal(image.array, stored.astype(np.int64) * 200000 - 7)
    assert image.array.max() > 2 ** 31


# ---------------------------------------------------------------------------------------------
# 8. Report wording for masks on other grids
# ---------------------------------------------------------------------------------------------
def test_mask_grid_messages_say_what_differs():
    from PySERASlicerLib.image import Image
    from PySERASlicerLib.io.readers import mask_from_image

    image = Image(np.zeros((39, 8, 8)), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    labels = np.zeros((40, 8, 8), np.int32)
    labels[35:40, 2:5, 2:5] = 1
    warnings = []
    mask_from_image(Image(labels, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0)), image, False, warnings)
    assert "mask grid (40, 8, 8) overlaps the image grid (39, 8, 8)" in warnings[0]
    assert "9 labelled voxels lie outside the image and were dropped" in warnings[0]
    warnings = []
    mask_from_image(Image(labels[:39], (1.0, 1.0, 2.0), (0.5, 0.0, 0.0)), image, False, warnings)
    assert "differs from the image grid (origin shifted by (0.5, 0.0, 0.0) mm = (0.5, 0.0, 0.0) voxels" in warnings[0]
    assert "shape" not in warnings[0] and "spacing" not in warnings[0]


def test_dicom_settings_round_trip_and_validation():
    from PySERASlicerLib.settings import Settings, SettingsError

    settings = Settings.from_any({"dicom": {"gantry_tilt": "refuse", "missing_slices": "interpolate"}})
    assert (settings.dicom.gantry_tilt.value, settings.dicom.missing_slices.value) == ("error", "interpolate")
    assert Settings.from_json(settings.to_json()).dicom == settings.dicom
    assert Settings().dicom == DicomSettings(gantry_tilt="regularize", missing_slices="error")
    with pytest.raises(SettingsError, match="dicom.missing_slices: 'guess' is not valid; accepted values: error, "
                                            "interpolate"):
        Settings.from_any({"dicom": {"missing_slices": "guess"}})


# ---------------------------------------------------------------------------------------------
# Through the batch: split_dicom, Report warnings of failed cases, series_uid column, nested folders
# ---------------------------------------------------------------------------------------------
STAT = dict(categories="stat", enable_parallelism=False)


def _box_mask(path: Path, shape, spacing=SPACING, origin=ORIGIN) -> Path:
    from batch_fixtures import write_nifti

    mask = np.zeros(shape, dtype=np.uint8)
    mask[1:5, 2:7, 2:7] = 1
    return write_nifti(path, mask, spacing=spacing, origin=origin)


def test_batch_split_dicom_on_an_enhanced_file(tmp_path):
    from PySERASlicerLib import process_batch

    echo1, echo2 = ct_volume((6, 8, 9), seed=4), ct_volume((6, 8, 9), seed=5) // 2
    frames = _enhanced_frames(echo1, echo_time=lambda k: 10.0) + _enhanced_frames(echo2, echo_time=lambda k: 25.0)
    write_enhanced(tmp_path / "mr.dcm", frames[::-1])
    mask = _box_mask(tmp_path / "mask.nii.gz", echo1.shape)
    result = process_batch(tmp_path / "mr.dcm", mask, tmp_path / "out", split_dicom=True, **STAT)
    frame = result["features_extracted"].set_index("PatientID")
    assert list(frame.index) == ["mr_1", "mr_2"]
    box = (slice(1, 5), slice(2, 7), slice(2, 7))
    assert frame.loc["mr_1", "stat_mean"] == pytest.approx(echo1[box].mean(), rel=1e-12)
    assert frame.loc["mr_2", "stat_mean"] == pytest.approx(echo2[box].mean(), rel=1e-12)


def test_batch_reports_reading_warnings_of_a_failed_case_and_dicom_settings(tmp_path):
    from PySERASlicerLib import process_batch
    from PySERASlicerLib.settings import Settings

    write_series(tmp_path / "ct", ct_volume((6, 8, 9)), spacing=SPACING, origin=ORIGIN)
    by_z = sorted((tmp_path / "ct").iterdir(), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    by_z[3].write_bytes(b"\0" * 200)  # an unreadable file, leaving a gap
    mask = _box_mask(tmp_path / "mask.nii.gz", (6, 8, 9))
    result = process_batch(tmp_path / "ct", mask, tmp_path / "out", **STAT)
    assert result["failed_files"] == 1 and "missing slice" in result["error"]
    assert any(f"1 unreadable DICOM file(s) skipped ({by_z[3].name})" in line for line in result["logs"])
    # the same series as the third case of a batch is read ahead while the second is extracted:
    # its reading warnings still reach the log with its error
    from batch_fixtures import write_cases_csv

    cases_csv = write_cases_csv(tmp_path / "cases.csv", [("first", mask, mask, ""), ("second", mask, mask, ""),
                                                         ("ct", tmp_path / "ct", mask, "")])
    result = process_batch(cases_csv=str(cases_csv), output_path=str(tmp_path / "out_csv"), **STAT)
    assert result["processed_files"] == 2 and result["failed_files"] == 1 and result["error"].startswith("ct: ")
    assert any(f"1 unreadable DICOM file(s) skipped ({by_z[3].name})" in line for line in result["logs"])
    # dicom.missing_slices = interpolate (settings object / settings file) reads it
    settings = Settings(categories=("stat",), enable_parallelism=False).replace(
        dicom=DicomSettings(missing_slices="interpolate"))
    result = process_batch(tmp_path / "ct", mask, tmp_path / "out", settings=settings)
    assert result["failed_files"] == 0 and result["processed_files"] == 1
    assert any("Resampled along the normal onto 6 slices" in line for line in result["logs"])


def test_cases_csv_series_uid_column_and_nested_patient_folder(tmp_path):
    from batch_fixtures import write_cases_csv
    from PySERASlicerLib import run_batch_csv

    big = ct_volume((8, 8, 9), seed=2)
    small = ct_volume((6, 8, 9), seed=3) + 500
    write_series(tmp_path / "p1" / "study" / "series_a", big, spacing=SPACING, origin=ORIGIN, prefix="a")
    uids = write_series(tmp_path / "p1" / "study" / "series_b", small, spacing=SPACING, origin=ORIGIN, prefix="b")
    _box_mask(tmp_path / "mask.nii.gz", (6, 8, 9))
    csv_path = write_cases_csv(tmp_path / "cases.csv", [("default", "p1", "mask.nii.gz", "")])
    text = csv_path.read_text().splitlines()
    text[0] += ",series_uid"
    text[1] += ","
    text.append(f"picked,p1,mask.nii.gz,,{uids['series']}")
    csv_path.write_text("\n".join(text) + "\n")
    settings = tmp_path / "settings.json"
    settings.write_text('{"categories": "stat", "enable_parallelism": false}')
    result = run_batch_csv(str(csv_path), str(settings), str(tmp_path / "out"))
    frame = result["features_extracted"].set_index("PatientID")
    box = (slice(1, 5), slice(2, 7), slice(2, 7))
    assert frame.loc["default", "stat_mean"] == pytest.approx(big[box].mean() - 1024, rel=1e-12)
    assert frame.loc["picked", "stat_mean"] == pytest.approx(small[box].mean() - 1024, rel=1e-12)
    assert any("read 14 file(s) in 2 subfolder(s)" in line for line in result["logs"])


def test_batch_nested_patient_folders_as_one_case_and_as_batch_entries(tmp_path):
    from PySERASlicerLib import process_batch

    ct = ct_volume((6, 8, 9), seed=21)
    write_series(tmp_path / "images" / "p1" / "study_1" / "series_2", ct, spacing=SPACING, origin=ORIGIN)
    mask = _box_mask(tmp_path / "masks" / "p1.nii.gz", ct.shape)
    box = (slice(1, 5), slice(2, 7), slice(2, 7))
    one = process_batch(tmp_path / "images" / "p1", mask, tmp_path / "out", **STAT)
    assert one["features_extracted"]["stat_mean"].tolist() == pytest.approx([ct[box].mean() - 1024], rel=1e-12)
    batch = process_batch(tmp_path / "images", tmp_path / "masks", tmp_path / "out", **STAT)
    assert batch["features_extracted"]["PatientID"].tolist() == ["p1"]
    assert batch["features_extracted"]["stat_mean"].tolist() == pytest.approx([ct[box].mean() - 1024], rel=1e-12)
