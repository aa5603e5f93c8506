"""IBSI processing chain: interpolation grid, cropping invariance, partial volume, re-segmentation,
discretisation (FBS, FBN, Lloyd-Max)."""

from __future__ import annotations

import numpy as np
import pytest
from PySERASlicerLib.engine.processing import (
    discretise,
    image_diagnostics,
    lloyd_max_thresholds,
    prepare_roi,
    resampling_grid,
    resegment,
)
from PySERASlicerLib.image import Image
from PySERASlicerLib.settings import (
    DiscretisationMethod,
    DiscretisationSettings,
    Interpolator,
    Quantiser,
    ResamplingSettings,
    ResegmentationSettings,
    Settings,
)
from scipy import ndimage


def test_grid_sizes_follow_ibsi_rule():
    # IBSI B: in-plane 204 x 201 x 60 voxels of 0.977 x 0.977 x 3 mm -> 100 x 99 x 60
    grid = resampling_grid((204, 201, 60), (0.9765625, 0.9765625, 3.0),
                           ResamplingSettings(enabled=True, in_plane_only=True, voxel_size_2d_mm=2.0))
    assert grid.size == (100, 99, 60)
    assert grid.spacing == (2.0, 2.0, 3.0)
    assert grid.start[2] == 0.0 and grid.step[2] == 1.0
    # 3D: 60 slices of 3 mm -> exactly 90 of 2 mm (no float ceil error)
    grid = resampling_grid((204, 201, 60), (0.9765625, 0.9765625, 3.0),
                           ResamplingSettings(enabled=True, voxel_size_mm=2.0))
    assert grid.size == (100, 99, 90)
    # centres aligned: the middle of the new grid is the middle of the old one
    for n, start, step, n_new in zip((204, 201, 60), grid.start, grid.step, grid.size):
        assert start + step * (n_new - 1) / 2 == pytest.approx((n - 1) / 2)


def _case(seed=0, shape=(20, 30, 28)):
    rng = np.random.default_rng(seed)
    array = np.round(ndimage.gaussian_filter(rng.normal(0, 300, shape), 1.5) * 5)
    k, j, i = np.ogrid[tuple(slice(0, n) for n in shape)]
    mask = ((i - 14) / 6.0) ** 2 + ((j - 13) / 5.0) ** 2 + ((k - 9) / 3.0) ** 2 <= 1
    return Image(array, spacing=(0.9, 0.8, 2.2), origin=(5.0, -3.0, 10.0)), mask


@pytest.mark.parametrize("interpolator", [Interpolator.NEAREST, Interpolator.LINEAR, Interpolator.CUBIC])
@pytest.mark.parametrize("in_plane", [False, True])
def test_cropped_interpolation_equals_full_image(interpolator, in_plane):
    """prepare_roi evaluates the grid around the ROI only; the result must equal interpolating the
    whole image with map_coordinates on the full IBSI grid."""
    image, mask = _case()
    resampling = ResamplingSettings(enabled=True, in_plane_only=in_plane, voxel_size_mm=1.3,
                                    voxel_size_2d_mm=1.1, image_interpolator=interpolator,
                                    roi_interpolator=Interpolator.LINEAR, round_intensities=True)
    ctx = prepare_roi(image, mask, Settings(resampling=resampling))
    grid = resampling_grid(image.size_ijk, image.spacing, resampling)
    axes = [grid.start[a] + grid.step[a] * np.arange(grid.size[a]) for a in (2, 1, 0)]
    coords = np.array(np.meshgrid(*axes, indexing="ij"))
    order = {Interpolator.NEAREST: 0, Interpolator.LINEAR: 1, Interpolator.CUBIC: 3}[interpolator]
    full = np.rint(ndimage.map_coordinates(image.array, coords, order=order, mode="nearest",
                                           prefilter=order > 1))
    full_mask = np.round(ndimage.map_coordinates(mask.astype(float), coords, order=1, mode="nearest"), 6) >= 0.5
    # locate the context's box in the full grid from its origin
    first = np.rint((np.asarray(ctx.image.origin) - np.asarray(image.origin)) / np.asarray(image.spacing)
                    - np.asarray(grid.start)) / np.asarray(grid.step)
    first_kji = np.rint(first[::-1]).astype(int)
    box = tuple(slice(f, f + n) for f, n in zip(first_kji, ctx.image.array.shape))
    assert full_mask.sum() == ctx.morph_mask.sum()
    np.testing.assert_array_equal(full_mask[box], ctx.morph_mask)
    np.testing.assert_array_equal(full[box], ctx.image.array)
    assert ctx.diagnostics["img_dim_x_interp_img"] == grid.size[0]
    assert ctx.diagnostics["morph_mask_vox_count_interp_roi"] == full_mask.sum()


def test_partial_volume_threshold_keeps_exactly_half():
    # ROI of one slab; linear interpolation halfway between a 1 and a 0 gives 0.5 (kept)
    array = np.zeros((1, 1, 4))
    mask = np.zeros((1, 1, 4), dtype=bool)
    mask[0, 0, :2] = True
    image = Image(array, spacing=(1.0, 1.0, 1.0))
    resampling = ResamplingSettings(enabled=True, in_plane_only=True, voxel_size_2d_mm=1.5,
                                    image_interpolator=Interpolator.LINEAR, roi_interpolator=Interpolator.LINEAR)
    ctx = prepare_roi(image, mask, Settings(resampling=resampling))
    # 3 new voxels at old positions 0, 1.5, 3; ROI values 1, 0.5, 0 -> 0.5 is kept
    assert ctx.diagnostics["img_dim_x_interp_img"] == 3
    assert ctx.diagnostics["morph_mask_vox_count_interp_roi"] == 2
    stricter = Settings(resampling=ResamplingSettings(**{**resampling.__dict__, "roi_partial_volume": 0.8}))
    assert prepare_roi(image, mask, stricter).diagnostics["morph_mask_vox_count_interp_roi"] == 1


def test_resegmentation_is_the_intersection_with_stats_over_the_whole_roi():
    values = np.array([-900.0, -100, 0, 10, 20, 30, 40, 50, 60, 350, 390, 3000]).reshape(1, 1, -1)
    morph = np.ones(values.shape, dtype=bool)
    both = ResegmentationSettings(range_enabled=True, range_lower=-1000, range_upper=400, outlier_filter=True)
    mask = resegment(values, morph, both)
    mu, sigma = values.mean(), values.std()  # over the whole ROI, before the range cut
    expected = (values >= max(-1000, mu - 3 * sigma)) & (values <= min(400, mu + 3 * sigma))
    np.testing.assert_array_equal(mask, expected)
    assert not mask[0, 0, -1]
    only_range = resegment(values, morph, ResegmentationSettings(range_enabled=True, range_lower=-100, range_upper=350))
    np.testing.assert_array_equal(only_range[0, 0], (values[0, 0] >= -100) & (values[0, 0] <= 350))
    assert morph.all()  # the morphological mask is untouched


def test_fixed_bin_size_starts_at_range_lower_bound():
    x = np.array([-500.0, -476, -475, 0, 399, 400]).reshape(1, 1, -1)
    mask = np.ones(x.shape, dtype=bool)
    q, n_g = discretise(x, mask, DiscretisationSettings(method=DiscretisationMethod.FBS, bin_width=25),
                        ResegmentationSettings(range_enabled=True, range_lower=-500, range_upper=400))
    assert q[0, 0].tolist() == [1, 1, 2, 21, 36, 37]
    assert n_g == 37
    q, _ = discretise(x + 7, mask, DiscretisationSettings(method=DiscretisationMethod.FBS, bin_width=25),
                      ResegmentationSettings())
    assert q[0, 0, 0] == 1  # without a range: from the ROI minimum


def test_fixed_bin_number_puts_maximum_in_last_bin():
    x = np.linspace(0, 10, 11).reshape(1, 1, -1)
    mask = np.ones(x.shape, dtype=bool)
    mask[0, 0, 0] = False
    q, n_g = discretise(x, mask, DiscretisationSettings(method=DiscretisationMethod.FBN, bin_number=3),
                        ResegmentationSettings())
    assert n_g == 3 and q[0, 0, 0] == 0
    # min 1, max 10: floor(3 (x - 1) / 9) + 1, max -> 3
    assert q[0, 0, 1:].tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]


def test_lloyd_max_is_a_fixed_point_and_beats_uniform_bins():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, 3000), rng.normal(8, 0.5, 1000)])
    thresholds = lloyd_max_thresholds(x, 4)
    index = np.searchsorted(thresholds, x, side="right")
    levels = np.array([x[index == b].mean() for b in range(4)])
    np.testing.assert_allclose(thresholds, 0.5 * (levels[1:] + levels[:-1]), atol=1e-6)
    mse_lloyd = np.mean((x - levels[index]) ** 2)
    uniform = np.minimum(np.floor(4 * (x - x.min()) / np.ptp(x)), 3).astype(int)
    mse_uniform = np.mean((x - np.array([x[uniform == b].mean() for b in range(4)])[uniform]) ** 2)
    assert mse_lloyd < mse_uniform
    q, n_g = discretise(x.reshape(1, 1, -1), np.ones((1, 1, x.size), dtype=bool),
                        DiscretisationSettings(method=DiscretisationMethod.FBN, bin_number=4,
                                               quantiser=Quantiser.LLOYD), ResegmentationSettings())
    assert n_g == 4
    np.testing.assert_array_equal(q[0, 0], index + 1)


def test_initial_diagnostics_use_the_full_image():
    image, mask = _case()
    ctx = prepare_roi(image, mask, Settings())
    assert image_diagnostics(ctx, "init")["mean_int_init_img"] == pytest.approx(image.array.mean())
    assert ctx.diagnostics["img_dim_z_init_img"] == image.array.shape[0]
    assert image_diagnostics(ctx, "interp")["mean_int_interp_img"] == ctx.diagnostics["mean_int_init_img"]
    assert ctx.image.array.shape[0] < image.array.shape[0] or ctx.image.array.shape[1] < image.array.shape[1]
