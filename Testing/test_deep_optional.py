"""Deep-feature parts that must work without torch: lazy import, install hint, ROI cropping."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySERASlicerLib.engine import deep
from PySERASlicerLib.settings import DeepSettings, Modality

SOURCE = Path(__file__).resolve().parents[1] / "PySERASlicer"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(SOURCE)!r})\n" + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120,
    )


def test_engine_import_does_not_import_torch():
    result = _run("""
        import PySERASlicerLib.engine.deep as d, PySERASlicerLib.engine.pipeline
        assert d.feature_names("vgg16")[-1] == "vgg16_0511"
        assert "torch" not in sys.modules and "torchvision" not in sys.modules, "torch imported"
    """)
    assert result.returncode == 0, result.stderr


def test_missing_torch_gives_install_instructions():
    result = _run("""
        sys.modules["torch"] = None  # as if torch were not installed
        import numpy as np
        from PySERASlicerLib.engine import deep
        from PySERASlicerLib.image import Image
        from PySERASlicerLib.settings import Settings
        mask = np.zeros((2, 4, 4), bool); mask[0, 1, 1] = True
        try:
            deep.extract_deep_features(Image(np.zeros((2, 4, 4))), mask, Settings())
        except ImportError as error:
            assert isinstance(error, deep.DeepDependencyError)
            print(error)
        else:
            raise SystemExit("no error")
    """)
    assert result.returncode == 0, result.stderr
    assert "pip install torch torchvision" in result.stdout and "PyTorch" in result.stdout


def test_feature_names_and_unknown_model():
    assert deep.feature_names("resnet50")[:2] == ["resnet50_0000", "resnet50_0001"]
    assert len(deep.feature_names("densenet121")) == 1024
    with pytest.raises(ValueError, match="accepted values"):
        deep.feature_names("alexnet")


def test_roi_slices_crop_square_in_mm_with_margin_and_padding():
    array = np.arange(6 * 30 * 40, dtype=np.int16).reshape(6, 30, 40)
    mask = np.zeros(array.shape, bool)
    mask[1, 10:14, 2:22] = True   # touches the left image edge once the margin is added
    mask[4, 12:13, 5:6] = True    # slice 2 and 3 have no ROI voxel
    spacing_ij = (0.5, 1.0)       # i (columns) 0.5 mm, j (rows) 1.0 mm
    slices, ks = deep.roi_slices(array, mask, spacing_ij, window=(0.0, 1.0e4), margin_voxels=3)
    assert ks.tolist() == [1, 4]
    n, rows, cols = slices.shape
    # bbox + margin: rows 7..16 (10 rows = 10 mm), cols -1..24 (26 cols = 13 mm) -> square 13 mm
    assert (rows, cols) == (13, 26)
    assert rows * spacing_ij[1] == cols * spacing_ij[0]
    # rows grown symmetrically around 7..16 -> 6..18; cols -1..24: column -1 is outside -> 0
    r0, c0 = 6, -1
    expected = np.zeros((2, rows, cols), np.float32)
    expected[:, :, 1:] = array[[1, 4], r0:r0 + rows, 0:c0 + cols] / 1.0e4
    np.testing.assert_allclose(slices, np.clip(expected, 0, 1), rtol=1e-6)
    assert slices.dtype == np.float32


def test_window_clips_and_scales():
    array = np.array([[[-2000, -1000, -300, 400, 3000]]], dtype=np.int16)
    mask = np.ones(array.shape, bool)
    ct = deep.intensity_window(array, mask, Modality.CT, DeepSettings())
    slices, _ = deep.roi_slices(array, mask, (1.0, 1.0), ct, margin_voxels=0)
    # one row of 5 -> square 5x5 centred on it: the row sits in the middle
    np.testing.assert_allclose(slices[0, 2], [0.0, 0.0, 0.5, 1.0, 1.0])
    assert slices[0, :2].max() == 0 and slices[0, 3:].max() == 0
    low, high = deep.intensity_window(array, mask, Modality.MRI, DeepSettings(percentiles=(0, 100)))
    assert (low, high) == (-2000, 3000)
