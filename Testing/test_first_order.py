"""Intensity histogram, IVH (configurations C, D, E options) and local intensity peaks on synthetic
data, against slow reference implementations written here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySERASlicerLib.engine.features import ih, ip, ivh
from PySERASlicerLib.engine.processing import prepare_roi
from PySERASlicerLib.image import Image
from PySERASlicerLib.settings import preset_settings


def test_histogram_features_by_hand():
    bins = np.array([1, 1, 1, 2, 4, 4, 5])
    values = ih.histogram_features(bins, 5)
    assert values["ih_mode"] == 1
    p = np.array([3, 1, 0, 2, 1]) / 7
    assert values["ih_entropy"] == pytest.approx(-(p[p > 0] * np.log2(p[p > 0])).sum())
    assert values["ih_uniformity"] == pytest.approx((p**2).sum())
    # gradient of H = [3, 1, 0, 2, 1]: [-2, -1.5, 0.5, 0.5, -1]
    assert values["ih_max_grad"] == 0.5 and values["ih_max_grad_g"] == 3
    assert values["ih_min_grad"] == -2 and values["ih_min_grad_g"] == 1


def test_histogram_mode_tie_goes_to_bin_nearest_the_mean():
    values = ih.histogram_features(np.array([1, 1, 4, 4, 4, 5, 5, 5, 5, 1, 1]), 5)
    assert values["ih_mode"] == 5  # bins 1 and 5 both hold 4 voxels; the mean 3.27 is nearer to 5


def _ivh_reference(x, points):
    """Slow IVH: loops over the points (IBSI 4.1 definitions)."""
    nu = np.array([np.mean(x >= p) for p in points])
    gamma = (points - points[0]) / (points[-1] - points[0])
    v = {f: max(nu[i] for i in range(len(points)) if gamma[i] >= f) for f in (0.1, 0.9)}
    i_x = {}
    for f in (0.1, 0.9):
        hits = [points[i] for i in range(len(points)) if nu[i] <= f]
        i_x[f] = hits[0] if hits else points[-1] + (points[1] - points[0])
    auc = sum((nu[i] + nu[i + 1]) / 2 * (gamma[i + 1] - gamma[i]) for i in range(len(points) - 1))
    return {"ivh_v10": v[0.1], "ivh_v90": v[0.9], "ivh_i10": i_x[0.1], "ivh_i90": i_x[0.9],
            "ivh_diff_v10_v90": v[0.1] - v[0.9], "ivh_diff_i10_i90": i_x[0.1] - i_x[0.9], "ivh_auc": auc}


def _ct_case(seed=0):
    rng = np.random.default_rng(seed)
    array = np.rint(rng.normal(-50, 250, size=(14, 24, 24)))
    k, j, i = np.ogrid[:14, :24, :24]
    mask = ((i - 12) / 8.0) ** 2 + ((j - 11) / 7.0) ** 2 + ((k - 7) / 4.0) ** 2 <= 1
    return Image(array, spacing=(1.0, 1.0, 2.0), modality="CT"), mask


@pytest.mark.parametrize("preset", ["ibsi_C", "ibsi_D", "ibsi_E"])
def test_ivh_configurations_against_slow_reference(preset):
    image, mask = _ct_case()
    ctx = prepare_roi(image, mask, preset_settings(preset))
    x = ctx.intensities
    if preset == "ibsi_C":  # FBS 2.5 HU from -1000, bin centres; up to the centre of 400 HU's bin (561)
        w = 2.5
        voxel = -1000 + (np.floor((x + 1000) / w) + 0.5) * w
        points = -1000 + (np.arange(1, 562) - 0.5) * w
    elif preset == "ibsi_D":  # raw HU, step 1, ROI min..max
        voxel = x
        points = np.arange(x.min(), x.max() + 1)
    else:  # FBN 1000 bins, points 1..1000
        voxel = np.minimum(np.floor(1000 * (x - x.min()) / np.ptp(x)) + 1, 1000)
        points = np.arange(1, 1001, dtype=float)
    expected = _ivh_reference(voxel, points)
    got = ivh.compute(ctx, [s.tag for s in ivh.SPECS])
    for tag, value in expected.items():
        assert got[tag] == pytest.approx(value, abs=1e-9), tag


def test_ivh_auc_of_uniform_intensities():
    # every integer level 1..101 once: nu falls linearly from 1 to 1/101, area ~ 1/2 + 1/(2*101)
    x = np.arange(1.0, 102.0)
    values = ivh.ivh_features(x, 1.0, 101.0, 1.0)
    assert values["ivh_auc"] == pytest.approx(0.5 + 0.5 / 101)
    assert values["ivh_v10"] == pytest.approx(91 / 101)
    assert values["ivh_i90"] == 12.0  # first level with at most 90% of voxels at or above it


def test_ivh_type1_uses_fbn_with_bin_size_bins():
    image, mask = _ct_case(1)
    settings = preset_settings("mr")
    settings = settings.replace(ivh=settings.ivh.__class__(ivh_type=1, continuous=False, bin_size=50))
    ctx = prepare_roi(image, mask, settings)
    x = ctx.intensities
    voxel = np.minimum(np.floor(50 * (x - x.min()) / np.ptp(x)) + 1, 50)
    expected = _ivh_reference(voxel, np.arange(1, 51, dtype=float))
    got = ivh.compute(ctx, ["ivh_v10", "ivh_i90", "ivh_auc"])
    assert got == pytest.approx({k: expected[k] for k in got})


def test_local_intensity_peaks_against_brute_force():
    image, mask = _ct_case(2)
    ctx = prepare_roi(image, mask, preset_settings("ibsi_A"))
    arr, spacing = ctx.image.array, ctx.spacing
    pos = np.argwhere(np.ones(arr.shape, dtype=bool))
    world = pos[:, ::-1] * np.asarray(spacing)

    def sphere_mean(index):
        centre = np.asarray(index)[::-1] * np.asarray(spacing)
        inside = ((world - centre) ** 2).sum(axis=1) <= ip.PEAK_RADIUS_MM**2
        return arr.ravel()[inside].mean()

    roi = np.argwhere(ctx.int_mask)
    means = np.array([sphere_mean(index) for index in roi])
    values = arr[ctx.int_mask]
    got = ip.compute(ctx, ["loc_peak_loc", "loc_peak_glob"])
    assert got["loc_peak_glob"] == pytest.approx(means.max())
    assert got["loc_peak_loc"] == pytest.approx(means[values == values.max()].max())


def test_statistics_from_the_original_image_are_resegmented_and_untouched_by_interpolation():
    """PySERA radiomics_isQuntzStat = 0: stat_* from the original voxels inside the original ROI,
    with the same re-segmentation range; = 1 (default, IBSI): from the resampled image."""
    from PySERASlicerLib.engine.pipeline import extract_roi
    from PySERASlicerLib.engine.registry import select
    from PySERASlicerLib.settings import Settings

    rng = np.random.default_rng(7)
    array = rng.normal(0, 300, (12, 30, 30)).round()
    mask = np.zeros(array.shape, bool)
    mask[3:9, 6:24, 5:22] = True
    image = Image(array, (0.9, 0.9, 2.4))
    base = Settings.from_pysera(IBSI_based_parameters={
        "radiomics_isScale": 1, "radiomics_isotVoxSize": 1.7, "radiomics_VoxInterp": "linear",
        "radiomics_ROIInterp": "linear", "radiomics_isReSegRng": 1, "radiomics_ReSegIntrvl01": -400,
        "radiomics_ReSegIntrvl02": 350})
    original = base.replace(resampling=dataclasses.replace(base.resampling, statistics_on_resampled=False))
    specs = select("stat", "1st")
    kept = array[mask][(array[mask] >= -400) & (array[mask] <= 350)]
    from_original = extract_roi(image, mask, original, specs=specs).values
    from_resampled = extract_roi(image, mask, base, specs=specs).values
    assert from_original["stat_mean"] == pytest.approx(kept.mean(), rel=1e-12)
    assert from_original["stat_min"] == kept.min() and from_original["stat_max"] == kept.max()
    assert from_resampled["stat_mean"] != pytest.approx(kept.mean(), rel=1e-6)
