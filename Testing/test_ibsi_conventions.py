"""IBSI conventions the phantoms do not pin down on their own: N_g with a re-segmentation range
and NGTDM features with a zero denominator. Expected values are worked out by hand below."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySERASlicerLib.engine.discretisation import discretise
from PySERASlicerLib.engine.features import ngtdm
from PySERASlicerLib.engine.pipeline import extract_roi
from PySERASlicerLib.engine.registry import select
from PySERASlicerLib.image import Image
from PySERASlicerLib.settings import (
    DiscretisationMethod,
    DiscretisationSettings,
    ResegmentationSettings,
    Settings,
)


def _fbs_settings(width: float, lower: float, upper: float) -> Settings:
    """No resampling, FBS of ``width`` from the re-segmentation range [lower, upper]."""
    base = Settings()
    return base.replace(
        resampling=dataclasses.replace(base.resampling, enabled=False),
        resegmentation=ResegmentationSettings(range_enabled=True, range_lower=lower, range_upper=upper),
        discretisation=DiscretisationSettings(method=DiscretisationMethod.FBS, bin_width=width))


def _row_image(values):
    """One row of voxels along i (a (1, 1, n) image), all in the ROI."""
    array = np.asarray(values, dtype=float).reshape(1, 1, -1)
    return Image(array, (1.0, 1.0, 1.0)), np.ones(array.shape, dtype=bool)


def test_fixed_bin_size_n_g_is_the_highest_bin_present_not_the_range_bound():
    x = np.array([-500.0, -476, 0, 250]).reshape(1, 1, -1)
    fbs = DiscretisationSettings(method=DiscretisationMethod.FBS, bin_width=25)
    range_ = ResegmentationSettings(range_enabled=True, range_lower=-500, range_upper=400)
    q, n_g = discretise(x, np.ones(x.shape, bool), fbs, range_)
    assert q[0, 0].tolist() == [1, 1, 21, 31]
    assert n_g == 31  # the bin of 250; the bin of the upper bound 400 would be 37


def test_glcm_normalised_inverse_differences_use_the_highest_level_present():
    """Levels 1, 3, 4, 6 in a row (the digital phantom's levels), range up to 20.

    Symmetric 3D-merged GLCM: pairs (1,3), (3,4), (4,6) both ways -> p_{i-j}(1) = 1/3,
    p_{i-j}(2) = 2/3. With N_g = 6: IDN = (1/3)/(1 + 1/6) + (2/3)/(1 + 2/6) = 2/7 + 1/2,
    IDMN = (1/3)/(1 + 1/36) + (2/3)/(1 + 4/36) = 12/37 + 3/5."""
    image, mask = _row_image([1, 3, 4, 6])
    settings = _fbs_settings(1.0, 1.0, 20.0)  # x_min = 1: bin = value
    specs = [s for s in select("glcm", "3d") if s.tag in ("cm_inv_diff_norm_3D_comb", "cm_inv_diff_mom_norm_3D_comb")]
    values = extract_roi(image, mask, settings, specs=specs, threads=1).values
    assert values["cm_inv_diff_norm_3D_comb"] == pytest.approx(2 / 7 + 1 / 2, rel=1e-12)
    assert values["cm_inv_diff_mom_norm_3D_comb"] == pytest.approx(12 / 37 + 3 / 5, rel=1e-12)


def test_intensity_histogram_gradient_ends_at_the_highest_level_present():
    """Bins 1, 2, 2, 2 (range up to 20): histogram (1, 3) has the gradient (2, 2). Empty bins up
    to the range bound would add a falling edge (3 -> 0) and a minimum gradient of -1.5."""
    image, mask = _row_image([1, 2, 2, 2])
    specs = [s for s in select("ih", "1st") if s.tag.startswith("ih_m") and "grad" in s.tag]
    values = extract_roi(image, mask, _fbs_settings(1.0, 1.0, 20.0), specs=specs, threads=1).values
    assert values["ih_min_grad"] == 2.0 and values["ih_min_grad_g"] == 1.0
    assert values["ih_max_grad"] == 2.0 and values["ih_max_grad_g"] == 1.0


NGT_TAGS = [s.tag for s in ngtdm.SPECS]


def test_ngtdm_uniform_roi_has_coarseness_1e6_and_strength_0():
    """One grey level: every s_i = 0, so sum p_i s_i = 0 and sum s_i = 0 (IBSI: coarseness 10^6,
    strength 0); contrast stays undefined (one grey level)."""
    q = np.ones((3, 4, 4), dtype=np.int32)
    values = ngtdm.compute_from_discretised(q, 1, 1, NGT_TAGS)
    for aggregation in ("2D", "2_5D", "3D"):
        assert values[f"ngt_coarseness_{aggregation}"] == 1e6
        assert values[f"ngt_strength_{aggregation}"] == 0.0
        assert np.isnan(values[f"ngt_contrast_{aggregation}"])


def test_ngtdm_zero_denominator_per_slice_enters_the_2d_average():
    """Slice 0 is uniform (coarseness 10^6, strength 0); slice 1 is the 2 x 2 worked example
    (levels 1..4, s = (2, 2/3, 2/3, 2), p = 1/4 each): coarseness 1 / (16/3 / 4) = 3/4,
    strength sum_{i,j} (p_i + p_j)(i - j)^2 / sum s = (1/2 * 40) / (16/3) = 15/4."""
    q = np.zeros((2, 2, 2), dtype=np.int32)
    q[0] = 2
    q[1] = [[1, 2], [3, 4]]
    values = ngtdm.compute_from_discretised(q, 4, 1, ["ngt_coarseness_2D", "ngt_strength_2D"])
    assert values["ngt_coarseness_2D"] == pytest.approx((1e6 + 0.75) / 2, rel=1e-12)
    assert values["ngt_strength_2D"] == pytest.approx((0.0 + 3.75) / 2, rel=1e-12)
