"""File formats, NumPy inputs with spacing, masks on cropped/other grids, and bad-input messages."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PySERASlicerLib.image import Image
from PySERASlicerLib.io.geometry import place_labels
from PySERASlicerLib.io.readers import GZIP_DECODER_ENV, InputError, read_image, read_mask


@pytest.fixture(params=["libdeflate", "zlib"])
def gzip_decoder(request, monkeypatch):
    """A .nii.gz read both ways: with libdeflate (the optional ``fast`` extra; skipped where it is
    not installed, as in Slicer's Python) and with zlib / ITK (``PYSERA_GZIP_DECODER=zlib``)."""
    if request.param == "libdeflate":
        pytest.importorskip("deflate")
        monkeypatch.delenv(GZIP_DECODER_ENV, raising=False)
    else:
        monkeypatch.setenv(GZIP_DECODER_ENV, "zlib")
    return request.param


def _sitk(array, spacing=(0.7, 0.9, 2.0), origin=(3.0, -4.0, 5.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"])
def test_simpleitk_formats_keep_geometry(tmp_path, suffix, gzip_decoder):
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    path = tmp_path / f"image{suffix}"
    sitk.WriteImage(_sitk(array), str(path))
    image = read_image(path)
    np.testing.assert_array_equal(image.array, array)
    np.testing.assert_allclose(image.spacing, (0.7, 0.9, 2.0), rtol=1e-6)
    np.testing.assert_allclose(image.origin, (3.0, -4.0, 5.0), rtol=1e-6)


def test_numpy_inputs_use_the_given_spacing(tmp_path):
    array = np.ones((3, 4, 5))
    np.save(tmp_path / "a.npy", array)
    warnings = []
    image = read_image(tmp_path / "a.npy", spacing=(0.5, 0.6, 2.5), warnings=warnings)
    assert image.spacing == (0.5, 0.6, 2.5) and warnings == []
    image = read_image(array, warnings=warnings)
    assert image.spacing == (1.0, 1.0, 1.0) and "assuming 1 x 1 x 1 mm" in warnings[0]
    with pytest.raises(InputError, match="spacing must be three positive numbers"):
        read_image(array, spacing=(1, 0, 1))


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4, 5)])
def test_non_3d_arrays_rejected(shape):
    with pytest.raises(InputError, match=f"expected a 3D array .* got {len(shape)}D"):
        read_image(np.zeros(shape))


def test_4d_file_rejected(tmp_path):
    image = sitk.Image([4, 4, 3, 2], sitk.sitkInt16)
    sitk.WriteImage(image, str(tmp_path / "four.nii.gz"))
    with pytest.raises(InputError, match="four.nii.gz: expected a 3D image, got 4D"):
        read_image(tmp_path / "four.nii.gz")


def test_truncated_and_unreadable_files(tmp_path, gzip_decoder):
    sitk.WriteImage(_sitk(np.random.default_rng(0).normal(size=(20, 30, 30))), str(tmp_path / "t.nii.gz"))
    data = (tmp_path / "t.nii.gz").read_bytes()
    (tmp_path / "t.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"t.nii.gz: cannot read image \(compressed file is truncated"):
        read_image(tmp_path / "t.nii.gz")
    sitk.WriteImage(_sitk(np.ones((20, 30, 30))), str(tmp_path / "u.nii"))
    data = (tmp_path / "u.nii").read_bytes()
    (tmp_path / "u.nii").write_bytes(data[:-1000])
    with pytest.raises(InputError, match=r"u.nii: cannot read image \(file is truncated: \d+ of \d+ bytes\)"):
        read_image(tmp_path / "u.nii")
    sitk.WriteImage(_sitk(np.ones((20, 30, 30), np.int16)), str(tmp_path / "i.nii"))  # read by np.fromfile
    (tmp_path / "i.nii").write_bytes((tmp_path / "i.nii").read_bytes()[:-1000])
    with pytest.raises(InputError, match=r"i.nii: cannot read image \(file is truncated: \d+ of \d+ bytes\)"):
        read_image(tmp_path / "i.nii")
    (tmp_path / "junk.nrrd").write_text("hello")
    with pytest.raises(InputError, match=r"junk.nrrd: cannot read image"):
        read_image(tmp_path / "junk.nrrd")
    np.save(tmp_path / "a.npy", np.zeros((4, 4, 4)))
    (tmp_path / "a.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:100])
    with pytest.raises(InputError, match=r"a.npy: cannot read NumPy file"):
        read_image(tmp_path / "a.npy")
    with pytest.raises(InputError, match="missing.nii.gz: file or folder not found"):
        read_image(tmp_path / "missing.nii.gz")


def test_cropped_mask_placed_by_world_coordinates(tmp_path):
    image = Image(np.zeros((10, 12, 14)), (0.7, 0.9, 2.0), (3.0, -4.0, 5.0))
    crop = np.zeros((4, 5, 6), dtype=np.uint8)
    crop[1:3, 1:4, 2:5] = 2
    # the crop starts at image voxel (i, j, k) = (5, 3, 4)
    origin = (3.0 + 5 * 0.7, -4.0 + 3 * 0.9, 5.0 + 4 * 2.0)
    sitk.WriteImage(_sitk(crop, origin=origin), str(tmp_path / "crop.nrrd"))
    warnings = []
    mask = read_mask(tmp_path / "crop.nrrd", image, warnings=warnings)
    expected = np.zeros(image.array.shape, dtype=np.int64)
    expected[4:8, 3:8, 5:11] = crop
    np.testing.assert_array_equal(mask.labels, expected)
    assert "placed at voxel offset (i, j, k) = (5, 3, 4)" in warnings[0]


def test_crop_partly_outside_the_image_reports_dropped_voxels():
    image = Image(np.zeros((4, 4, 4)))
    labels = Image(np.ones((2, 2, 2), dtype=np.int64), origin=(3.0, 0.0, 0.0))
    placed, message = place_labels(labels, image)
    assert np.count_nonzero(placed) == 4 and "4 labelled voxels lie outside the image" in message


def test_mask_on_other_grid_resampled_nearest_neighbour(tmp_path):
    image = Image(np.zeros((6, 8, 8)), (1.0, 1.0, 1.0))
    coarse = np.zeros((3, 4, 4), dtype=np.uint8)
    coarse[1, 1:3, 2] = 3
    # 2 mm voxels whose centres sit at 0.5, 2.5, ... in image coordinates
    sitk.WriteImage(_sitk(coarse, spacing=(2.0, 2.0, 2.0), origin=(0.5, 0.5, 0.5)), str(tmp_path / "coarse.nii.gz"))
    warnings = []
    mask = read_mask(tmp_path / "coarse.nii.gz", image, warnings=warnings)
    expected = np.zeros(image.array.shape, dtype=np.int64)
    expected[2:4, 2:6, 4:6] = 3
    np.testing.assert_array_equal(mask.labels, expected)
    assert "resampled onto the image grid (nearest neighbour)" in warnings[0]


def test_mask_outside_the_image_is_an_error(tmp_path):
    image = Image(np.zeros((4, 4, 4)))
    sitk.WriteImage(_sitk(np.ones((2, 2, 2), np.uint8), spacing=(1, 1, 1), origin=(100.0, 0, 0)),
                    str(tmp_path / "far.nii.gz"))
    with pytest.raises(InputError, match="does not overlap the image"):
        read_mask(tmp_path / "far.nii.gz", image)


def test_shape_mismatch_without_geometry(tmp_path):
    image = Image(np.zeros((4, 4, 4)))
    np.save(tmp_path / "m.npy", np.ones((4, 4, 5)))
    with pytest.raises(InputError, match=r"m.npy: mask shape \(4, 4, 5\) differs from image shape \(4, 4, 4\).*no "
                                         "geometry"):
        read_mask(tmp_path / "m.npy", image)
    with pytest.raises(InputError, match="mask array: mask shape"):
        read_mask(np.ones((3, 4, 4)), image)


def test_mask_values_rounded_only_with_preprocessing():
    image = Image(np.zeros((2, 2, 2)))
    values = np.full((2, 2, 2), 0.9)
    with pytest.raises(InputError, match="non-integer values .* apply_preprocessing=True"):
        read_mask(values, image)
    np.testing.assert_array_equal(read_mask(values, image, apply_preprocessing=True).labels, 1)
    with pytest.raises(InputError, match="mask contains NaN"):
        read_mask(np.full((2, 2, 2), np.nan), image)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_nifti_decoded_once_equals_itks_reading(tmp_path, suffix, dtype, gzip_decoder):
    """Floating-point NIfTI voxels are decoded once (to look for NaN) and used as they are, with
    the geometry of ITK's header reading: the same image as ITK's full read, oblique axes too."""
    from PySERASlicerLib.io.readers import check_nifti_complete

    array = np.random.default_rng(3).normal(50, 20, (6, 7, 8)).astype(dtype)
    source = _sitk(array)
    angle = np.deg2rad(20)
    source.SetDirection((np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, -1))
    path = tmp_path / f"float{suffix}"
    sitk.WriteImage(source, str(path))
    assert check_nifti_complete(path) is not None  # the decoded voxels stand in for ITK's read
    image, itk = read_image(path, modality="PT"), sitk.ReadImage(str(path))
    assert image.array.dtype == dtype and image.array.flags.writeable and image.modality == "PT"
    np.testing.assert_array_equal(image.array, sitk.GetArrayFromImage(itk))
    assert image.spacing == itk.GetSpacing() and image.origin == itk.GetOrigin()
    np.testing.assert_array_equal(image.direction, np.reshape(itk.GetDirection(), (3, 3)))


def test_scaled_or_integer_nifti_is_read_by_itk(tmp_path, gzip_decoder):
    """Voxels ITK would rescale (scl_slope / scl_inter) come from ITK; so do the integer voxels of
    a .nii.gz unless libdeflate decoded them; those of a .nii are read here."""
    import gzip

    from PySERASlicerLib.io.readers import check_nifti_complete

    array = np.arange(6 * 7 * 8, dtype=np.float32).reshape(6, 7, 8)
    sitk.WriteImage(_sitk(array), str(tmp_path / "plain.nii"))
    header = bytearray((tmp_path / "plain.nii").read_bytes())
    header[112:120] = np.array([2.0, -5.0], "<f4").tobytes()  # scl_slope, scl_inter
    (tmp_path / "scaled.nii.gz").write_bytes(gzip.compress(bytes(header)))
    assert check_nifti_complete(tmp_path / "scaled.nii.gz") is None
    np.testing.assert_array_equal(read_image(tmp_path / "scaled.nii.gz").array, 2 * array - 5)
    sitk.WriteImage(_sitk(array.astype(np.int16)), str(tmp_path / "int.nii.gz"))
    assert (check_nifti_complete(tmp_path / "int.nii.gz") is None) == (gzip_decoder == "zlib")
    np.testing.assert_array_equal(read_image(tmp_path / "int.nii.gz").array, array.astype(np.int16))
    sitk.WriteImage(_sitk(array.astype(np.int16)), str(tmp_path / "int.nii"))
    assert check_nifti_complete(tmp_path / "int.nii") is not None
    np.testing.assert_array_equal(read_image(tmp_path / "int.nii").array, array.astype(np.int16))


def test_nan_voxels_of_a_float_nifti_itk_reads_itself_are_reported(tmp_path, gzip_decoder):
    """A scaled float NIfTI is checked block by block (its voxels are not kept, ITK reads it):
    NaN is still an error naming the file and the count, and a 4D one still says 4D."""
    import gzip

    array = np.ones((6, 7, 8), dtype=np.float32)
    array[1, 2, 3] = np.nan
    sitk.WriteImage(_sitk(array), str(tmp_path / "plain.nii"))
    header = bytearray((tmp_path / "plain.nii").read_bytes())
    header[112:120] = np.array([2.0, 1.0], "<f4").tobytes()  # scl_slope, scl_inter
    (tmp_path / "scaled_nan.nii.gz").write_bytes(gzip.compress(bytes(header)))
    with pytest.raises(InputError, match="scaled_nan.nii.gz: image contains 1 NaN or infinite voxel value"):
        read_image(tmp_path / "scaled_nan.nii.gz")
    sitk.WriteImage(sitk.Image([4, 4, 3, 2], sitk.sitkFloat32), str(tmp_path / "four.nii.gz"))
    with pytest.raises(InputError, match="four.nii.gz: expected a 3D image, got 4D"):
        read_image(tmp_path / "four.nii.gz")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
def test_nan_voxels_are_reported_not_zeroed(tmp_path, suffix, gzip_decoder):
    """ITK's NIfTI reader turns NaN voxels into 0; the reader must report them instead."""
    array = np.ones((5, 6, 7), dtype=np.float32)
    array[2, 3, 4] = np.nan
    array[1, 1, 1] = np.inf
    sitk.WriteImage(_sitk(array), str(tmp_path / f"nan{suffix}"))
    if suffix == ".nrrd":  # ITK keeps NaN here; the batch checks the array (see test_batch_parallel)
        assert np.count_nonzero(~np.isfinite(read_image(tmp_path / f"nan{suffix}").array)) == 2
        return
    with pytest.raises(InputError, match=f"nan{suffix}: image contains 2 NaN or infinite voxel value"):
        read_image(tmp_path / f"nan{suffix}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64, np.uint64,
                                   np.float32, np.float64])
def test_nifti_gz_decoded_by_libdeflate_equals_itks_reading(tmp_path, dtype, monkeypatch):
    """With the optional libdeflate decoder a .nii.gz is inflated once by it, for every voxel type
    ITK reads as it is: the same voxels, type and (oblique) geometry as ITK's full read, writable."""
    pytest.importorskip("deflate")
    monkeypatch.delenv(GZIP_DECODER_ENV, raising=False)  # a PYSERA_GZIP_DECODER=zlib run still tests it
    from PySERASlicerLib.io.readers import check_nifti_complete

    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    array = np.random.default_rng(5).uniform(max(info.min, -2.0**40), min(info.max, 2.0**40), (5, 6, 7)).astype(dtype)
    source = _sitk(array)
    angle = np.deg2rad(30)
    source.SetDirection((1, 0, 0, 0, np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle)))
    path = tmp_path / "image.nii.gz"
    sitk.WriteImage(source, str(path))
    assert check_nifti_complete(path) is not None
    image, itk = read_image(path), sitk.ReadImage(str(path))
    assert image.array.dtype == sitk.GetArrayFromImage(itk).dtype == dtype and image.array.flags.writeable
    np.testing.assert_array_equal(image.array, sitk.GetArrayFromImage(itk))
    assert image.spacing == itk.GetSpacing() and image.origin == itk.GetOrigin()
    np.testing.assert_array_equal(image.direction, np.reshape(itk.GetDirection(), (3, 3)))


def test_nifti_gz_libdeflate_cannot_decode_is_read_as_before(tmp_path, gzip_decoder):
    """A .nii.gz of two gzip members (libdeflate decodes one member only) is read completely; one
    whose second member is cut short is refused with the bytes it holds."""
    import gzip

    array = np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8)
    sitk.WriteImage(_sitk(array), str(tmp_path / "plain.nii"))
    data = (tmp_path / "plain.nii").read_bytes()
    two_members = gzip.compress(data[:1000]) + gzip.compress(data[1000:])
    (tmp_path / "two.nii.gz").write_bytes(two_members)
    np.testing.assert_array_equal(read_image(tmp_path / "two.nii.gz").array, array)
    (tmp_path / "cut.nii.gz").write_bytes(two_members[:-30])
    with pytest.raises(InputError, match=r"cut.nii.gz: cannot read image \((compressed file is truncated or corrupt"
                                         r" after |file is truncated: )\d+ of \d+ bytes"):
        read_image(tmp_path / "cut.nii.gz")
