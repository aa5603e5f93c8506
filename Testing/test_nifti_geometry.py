"""The grid of a NIfTI-1 header worked out without SimpleITK (io/nifti_geometry.py) equals
SimpleITK's reading of the same file, bit for bit, wherever it is worked out; ITK reads the
header itself everywhere else; with libdeflate a fresh process extracting a case from two
.nii.gz files does not import SimpleITK."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PySERASlicerLib.io.nifti_geometry import itk_grid, quaternion_matrix

ROOT = Path(__file__).resolve().parents[1]


def _header(tmp_path: Path) -> bytearray:
    """The header of a file SimpleITK writes (qform_code 1, sform_code 1, as Slicer's are)."""
    image = sitk.Image([4, 5, 6], sitk.sitkInt16)
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    angle = np.deg2rad(25)
    image.SetDirection((np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1))
    sitk.WriteImage(image, str(tmp_path / "written.nii"))
    return bytearray((tmp_path / "written.nii").read_bytes())


def _set(header: bytearray, *, pixdim=None, codes=None, quatern=None, srows=None, units=None, intent=None):
    if pixdim is not None:
        header[76:108] = np.array(pixdim, "<f4").tobytes()
    if codes is not None:
        header[252:256] = struct.pack("<2h", *codes)
    if quatern is not None:
        header[256:280] = np.array(quatern, "<f4").tobytes()
    if srows is not None:
        header[280:328] = np.asarray(srows, "<f4").tobytes()
    if units is not None:
        header[123] = units
    if intent is not None:
        header[68:70] = struct.pack("<h", intent)
    return header


def _itk(tmp_path: Path, header: bytearray):
    """SimpleITK's (spacing, origin, direction) of the file with this header, None if it refuses."""
    path = tmp_path / "case.nii"
    path.write_bytes(bytes(header))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO("NiftiImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    return reader.GetSpacing(), reader.GetOrigin(), np.reshape(reader.GetDirection(), (3, 3))


def _assert_same(ours, itk):
    assert ours is not None and itk is not None
    assert ours[0] == itk[0] and ours[1] == itk[1]  # exactly, as floats
    np.testing.assert_array_equal(ours[2], itk[2])


def test_the_files_simpleitk_and_slicer_write_are_worked_out_exactly(tmp_path):
    header = _header(tmp_path)
    _assert_same(itk_grid(bytes(header[:348])), _itk(tmp_path, header))


@pytest.mark.parametrize("case", ["qform only", "sform only", "neither", "both, sform rounded as dcm2niix's",
                                  "left-handed qform", "180-degree quaternion", "non-unit quaternion",
                                  "skewed sform, qform used"])
def test_each_simple_case_equals_itk(tmp_path, case):
    header = _header(tmp_path)
    spacings = np.frombuffer(bytes(header), "<f4", 3, 80)
    quatern = np.frombuffer(bytes(header), "<f4", 6, 256).copy()
    rows = np.frombuffer(bytes(header), "<f4", 12, 280).reshape(3, 4).copy()
    if case == "qform only":
        _set(header, codes=(1, 0))
    elif case == "sform only":
        _set(header, codes=(0, 2))
    elif case == "neither":
        _set(header, codes=(0, 0))
    elif case == "both, sform rounded as dcm2niix's":
        rows[:, :3] *= np.float32(1 + 3e-7)  # the sform from DICOM's doubles, the qform from a quaternion
        _set(header, srows=rows)
    elif case == "left-handed qform":
        _set(header, pixdim=[-1, *spacings, 1, 1, 1, 1], codes=(1, 0))
    elif case == "180-degree quaternion":
        _set(header, codes=(1, 0), quatern=[0, 1, 0, *quatern[3:]])
    elif case == "non-unit quaternion":  # |(b, c, d)| > 1: niftilib normalises it, as here
        _set(header, codes=(1, 0), quatern=[0.9, 0.9, 0, *quatern[3:]])
    else:
        rows[:, :3] = rows[:, :3] @ np.array([[1, 0.3, 0], [0, 1, 0], [0, 0, 1]], np.float32)
        _set(header, codes=(1, 2), srows=rows)
    _assert_same(itk_grid(bytes(header[:348])), _itk(tmp_path, header))


@pytest.mark.parametrize("case", ["sform_code 2 beside a different qform", "metres", "vector intent",
                                  "zero spacing", "NaN spacing", "NaN in the sform", "two-file header"])
def test_what_itk_decides_otherwise_is_left_to_it(tmp_path, case):
    header = _header(tmp_path)
    spacings = np.frombuffer(bytes(header), "<f4", 3, 80)
    rows = np.frombuffer(bytes(header), "<f4", 12, 280).reshape(3, 4).copy()
    if case == "sform_code 2 beside a different qform":
        angle = np.deg2rad(40)
        rows[:, :3] = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]],
                               np.float32) * spacings
        _set(header, codes=(1, 2), srows=rows)
    elif case == "metres":
        _set(header, units=1)
    elif case == "vector intent":
        _set(header, intent=1007)
    elif case == "zero spacing":
        _set(header, pixdim=[1, 0, *spacings[1:], 1, 1, 1, 1])
    elif case == "NaN spacing":
        _set(header, pixdim=[1, *spacings[:2], np.nan, 1, 1, 1, 1])
    elif case == "NaN in the sform":
        rows[1, 2] = np.nan
        _set(header, srows=rows)
    else:
        header[344:348] = b"ni1\0"
    assert itk_grid(bytes(header[:348])) is None


def test_a_header_itk_refuses_is_an_error_naming_the_file(tmp_path):
    """A singular sform and no qform: ITK refuses the grid, and so does read_image, with the file
    named; the voxels decoded here are not used with a made-up grid."""
    from PySERASlicerLib.io.readers import InputError, read_image

    header = _header(tmp_path)
    _set(header, codes=(0, 1), srows=np.zeros((3, 4)))
    assert itk_grid(bytes(header[:348])) is None and _itk(tmp_path, header) is None
    path = tmp_path / "singular.nii"
    path.write_bytes(bytes(header))
    with pytest.raises(InputError, match=r"singular.nii: cannot read image"):
        read_image(path)


def test_random_headers_equal_itk_wherever_worked_out(tmp_path):
    """Random spacings, quaternions, offsets, form codes, units, handedness and sforms (from the
    qform, skewed, another rotation, shifted): never a different grid from ITK's, never a grid
    where ITK refuses the file; and most headers are worked out."""
    rng = np.random.default_rng(20261202)
    worked_out = 0
    for _ in range(300):
        header = _header(tmp_path)
        spacings = rng.uniform(0.3, 3, 3).astype(np.float32)
        qfac = float(rng.choice([1, -1, 0]))
        quaternion = rng.normal(size=4)
        quaternion *= np.sign(quaternion[0]) / np.linalg.norm(quaternion)
        quatern = np.array([*quaternion[1:], *rng.uniform(-200, 200, 3)], np.float32)
        matrix = quaternion_matrix(quatern, spacings, -1.0 if qfac < 0 else 1.0).astype(np.float64)
        change = rng.integers(0, 4)
        if change == 1:
            matrix[:3, :3] = matrix[:3, :3] @ (np.eye(3) + rng.normal(scale=0.2, size=(3, 3)))
        elif change == 2:
            matrix[:3, :3] = np.linalg.qr(rng.normal(size=(3, 3)))[0] * spacings
        elif change == 3:
            matrix[:3, 3] += rng.normal(size=3)
        _set(header, pixdim=[qfac, *spacings, 1, 1, 1, 1], codes=(int(rng.integers(0, 3)), int(rng.integers(0, 4))),
             quatern=quatern, srows=matrix[:3], units=int(rng.choice([0, 2, 10])))
        ours, itk = itk_grid(bytes(header[:348])), _itk(tmp_path, header)
        if ours is not None:
            _assert_same(ours, itk)
            worked_out += 1
    assert worked_out > 150


@pytest.mark.parametrize("decoder", ["libdeflate", "zlib"])
def test_a_fresh_process_extracting_from_nifti_gz_imports_simpleitk_only_for_zlib(tmp_path, decoder):
    """As a user's script: process_batch on an ITK-written CT and mask (.nii.gz). With libdeflate
    (the fast extra) SimpleITK is never imported; with zlib ITK inflates the integer voxels
    (faster than Python's zlib). The features are those of the arrays SimpleITK wrote."""
    if decoder == "libdeflate":
        pytest.importorskip("deflate")
    rng = np.random.default_rng(4)
    array = rng.normal(40, 15, (12, 14, 16)).astype(np.int16)
    mask = np.zeros(array.shape, np.uint8)
    mask[3:9, 4:10, 5:12] = 1
    for name, voxels in (("image", array), ("mask", mask)):
        image = sitk.GetImageFromArray(voxels)
        image.SetSpacing((0.8, 0.8, 2.0))
        image.SetOrigin((-50.0, 20.0, 7.5))
        sitk.WriteImage(image, str(tmp_path / f"{name}.nii.gz"))
    script = f"""
import sys
import numpy as np
from PySERASlicerLib import process_batch
result = process_batch({str(tmp_path / 'image.nii.gz')!r}, {str(tmp_path / 'mask.nii.gz')!r}, None,
                       categories="stat,morph", dimensions="1st,3d", num_workers=1)
assert result["processed_files"] == 1, result["error"]
print("SimpleITK" in sys.modules, repr(float(result["features_extracted"]["morph_volume"].iloc[0])),
      repr(float(result["features_extracted"]["stat_mean"].iloc[0])))
"""
    expected_mean = repr(float(array[mask == 1].mean()))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "PySERASlicer"))
    env.pop("PYSERA_GZIP_DECODER", None)
    if decoder == "zlib":
        env["PYSERA_GZIP_DECODER"] = "zlib"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    imported, volume, mean = done.stdout.split()
    assert imported == str(decoder == "zlib")
    assert mean == expected_mean and float(volume) == pytest.approx(6 * 6 * 7 * 0.8 * 0.8 * 2.0, rel=0.05)
