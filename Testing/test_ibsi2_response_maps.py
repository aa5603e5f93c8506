"""IBSI-2 phase 1: every test id with a consensus response map, through the public API
(``PySERASlicerLib.apply_filter`` on the phantom file), must pass the IBSI rule: every voxel within
1 % of the reference map's range. Plus the filter conventions the maps rely on."""

from __future__ import annotations

import numpy as np
import pytest
from ibsi2_support import PHASE1, compare, phantom_path, reference_map, tolerance
from PySERASlicerLib import Image, apply_filter
from PySERASlicerLib.engine.filters import FilterSpecError, parse_filter, parse_filters
from PySERASlicerLib.engine.filters.common import orientations
from PySERASlicerLib.engine.filters.wavelet import wavelet_filters


@pytest.mark.parametrize("case", PHASE1, ids=[c.test_id for c in PHASE1])
def test_phase1_response_map(case):
    result = compare(case)
    assert result.passed, f"{case.test_id}: max deviation {result.deviation:.4g} > tolerance {result.tolerance:.4g}"


def test_all_33_consensus_maps_are_checked():
    assert len(PHASE1) == 33 and len({c.test_id for c in PHASE1}) == 33


def test_quantised_reference_keeps_the_consensus_range():
    reference, bound = reference_map("1.a.3")
    assert reference.shape == (64, 64, 64)
    assert bound < 1e-5 * tolerance("1.a.3") * 100
    assert np.ptp(reference) == pytest.approx(100 * tolerance("1.a.3"))


def test_ibsi_mirror_is_not_scipy_mirror():
    """The negative control of CONFIGURATIONS.md: reflecting without repeating the edge voxel
    fails 2.b, so the test above can tell the boundary conditions apart."""
    from PySERASlicerLib.engine.filters.log import gaussian_factors
    from scipy import ndimage

    image = apply_filter(str(phantom_path("checkerboard")), {"filter": "none"})
    factors = [gaussian_factors(2.5, 4.0)] * 3
    wrong = sum(
        ndimage.convolve1d(ndimage.convolve1d(ndimage.convolve1d(
            image.array, factors[0][a == 0], axis=2, mode="mirror"),
            factors[1][a == 1], axis=1, mode="mirror"), factors[2][a == 2], axis=0, mode="mirror")
        for a in range(3))
    reference, _ = reference_map("2.b")
    assert np.max(np.abs(wrong - reference)) > tolerance("2.b")


def test_response_map_keeps_the_input_grid_and_is_float64():
    image = Image(np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8), spacing=(0.5, 0.7, 2.0),
                  origin=(1.0, 2.0, 3.0), direction=np.diag([1.0, -1.0, 1.0]), source="ramp")
    for entry in ({"filter": "mean", "support": 3}, {"filter": "log", "sigma_mm": 1.0},
                  {"filter": "wavelet", "wavelet": "db3", "set": "HLL"}, {"filter": "simoncelli"},
                  {"filter": "gabor", "sigma_mm": 2, "lambda_mm": 1, "dimensions": "3D"}):
        response = apply_filter(image, entry)
        assert response.array.dtype == np.float64 and response.same_geometry(image), entry


def test_x_axis_is_the_i_axis_on_the_orientation_phantom():
    """The orientation phantom reads with extents 32 (i), 48 (j), 64 (k); the first letter of a
    Laws name acts along i: E3 along x differentiates a ramp in i, E3 along z does not."""
    image = apply_filter(str(phantom_path("orientation")), {"filter": "none"})
    assert image.array.shape == (64, 48, 32)  # (k, j, i)
    k, j, i = np.indices(image.array.shape)
    ramp_i = image.with_array(i.astype(float))
    along_x = apply_filter(ramp_i, {"filter": "laws", "kernel": "E3L3L3"}).array[5:-5, 5:-5, 5:-5]
    along_z = apply_filter(ramp_i, {"filter": "laws", "kernel": "L3L3E3"}).array[5:-5, 5:-5, 5:-5]
    # true convolution with (-1, 0, 1)/sqrt(2) of a unit ramp gives -2/sqrt(2) times L3's sum^2
    l3_sum = 4 / np.sqrt(6)
    assert np.allclose(along_x, -2 / np.sqrt(2) * l3_sum ** 2)
    assert np.allclose(along_z, 0.0)


def test_orientations_are_the_proper_rotations():
    def matrix(permutation, flips):
        m = np.zeros((len(permutation),) * 2)
        for a, (p, f) in enumerate(zip(permutation, flips)):
            m[a, p] = -1 if f else 1
        return m

    rotations = [matrix(p, f) for p, f in orientations(3)]
    assert len(rotations) == 24 and all(np.isclose(np.linalg.det(r), 1) for r in rotations)
    assert len({r.tobytes() for r in rotations}) == 24
    assert len(list(orientations(2))) == 4


@pytest.mark.parametrize("name, low", [
    ("db2", (-0.12940952255126037, 0.2241438680420134, 0.8365163037378079, 0.48296291314453416)),
    ("db3", (0.03522629188570953, -0.08544127388202666, -0.13501102001025458, 0.45987750211849154,
             0.8068915093110925, 0.33267055295008263)),
    ("haar", (0.7071067811865476, 0.7071067811865476)),
])
def test_own_wavelet_taps_match_the_tables(name, low):
    computed_low, computed_high = wavelet_filters(name)
    assert np.allclose(computed_low, low, atol=1e-12)
    n = len(low)
    assert np.allclose(computed_high, [(-1) ** (i + 1) * low[n - 1 - i] for i in range(n)])


@pytest.mark.parametrize("entry, message", [
    ({"filter": "blur"}, "filters[0].filter"),
    ({"filter": "log"}, "filters[0].sigma_mm"),
    ({"filter": "log", "sigma_mm": -1}, "filters[0].sigma_mm"),
    ({"filter": "mean", "support": 4}, "filters[0].support"),
    ({"filter": "laws", "kernel": "E5L5"}, "filters[0].kernel"),
    ({"filter": "wavelet", "wavelet": "nosuch7", "set": "LLH"}, "filters[0].wavelet"),
    ({"filter": "wavelet", "wavelet": "db2", "set": "LXH"}, "filters[0].set"),
    ({"filter": "gabor", "sigma_mm": 1, "lambda_mm": 1, "rotation_invariant": True}, "filters[0].theta_step_deg"),
    ({"filter": "riesz_log", "sigma_mm": 1, "order": [0, 0, 0]}, "filters[0].order"),
    ({"filter": "mean", "support": 3, "sigma_mm": 1}, "filters[0].sigma_mm"),
    ({"filter": "mean", "support": 3, "boundary": "reflect"}, "filters[0].boundary"),
])
def test_bad_filter_entries_name_the_key(entry, message):
    with pytest.raises(FilterSpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_filters([entry])


def test_labels_are_unique_and_documented_scheme():
    specs = parse_filters([{"filter": "log", "sigma_mm": 1.5}, {"filter": "log", "sigma_mm": 1.5,
                                                                "dimensions": "2D"}])
    assert [s.label for s in specs] == ["log_s1.5", "log_s1.5_2D"]
    with pytest.raises(FilterSpecError, match=r"filters\[1\].label"):
        parse_filters([{"filter": "mean", "support": 5}, {"filter": "mean", "support": 5}])
    assert parse_filter({"filter": "mean", "support": 5, "label": "box5"}).label == "box5"


@pytest.mark.parametrize("name, band, key", [("db3", "HHH", "ddd"), ("coif1", "LHL", "ada"), ("haar", "HLL", "aad")])
def test_pywavelets_swtn_agrees_with_periodic_maps(name, band, key):
    """Where the optional PyWavelets is installed: its stationary transform (periodic extension)
    equals ours with the periodic boundary, levels 1 and 2 (docs/filters.md)."""
    pywt = pytest.importorskip("pywt")
    image = apply_filter(str(phantom_path("sphere")), {"filter": "none"})
    levels = pywt.swtn(image.array, name, level=2, axes=(0, 1, 2))  # keys per axis (z, y, x)
    for level, coefficients in ((2, levels[0]), (1, pywt.swtn(image.array, name, level=1, axes=(0, 1, 2))[0])):
        ours = apply_filter(image, {"filter": "wavelet", "wavelet": name, "set": band, "level": level,
                                    "boundary": "periodic"}).array
        assert np.allclose(coefficients[key], ours, atol=1e-6), (name, band, level)


def test_family_functions_default_to_the_filter_entry_defaults():
    """Calling a family function directly gives what the same filter entry gives."""
    import inspect

    from PySERASlicerLib.engine.filters import response_function
    from PySERASlicerLib.engine.filters.spec import _COMMON, _REQUIRED, KINDS

    for kind, parameters in KINDS.items():
        if kind == "none":
            continue
        signature = inspect.signature(response_function(kind)).parameters
        for name, default in {**{k: v for k, v in _COMMON.items() if k != "label"}, **parameters}.items():
            assert name in signature, (kind, name)
            if default is not _REQUIRED:
                assert signature[name].default == default, (kind, name, signature[name].default, default)


@pytest.mark.parametrize("entry", [
    {"filter": "laws", "kernel": "E5W5S3", "rotation_invariant": True, "boundary": "zero"},
    {"filter": "laws", "kernel": "E5S5", "rotation_invariant": True, "dimensions": "2D", "energy_delta": 2},
    {"filter": "wavelet", "wavelet": "db2", "set": "LHH", "level": 2, "rotation_invariant": True},
    {"filter": "wavelet", "wavelet": "coif1", "set": "HL", "rotation_invariant": True, "dimensions": "2D",
     "boundary": "nearest"},
    {"filter": "gabor", "sigma_mm": 2.0, "lambda_mm": 3.0, "gamma": 0.7, "rotation_invariant": True,
     "theta_step_deg": 45, "boundary": "zero"},
    {"filter": "log", "sigma_mm": 1.0},
    {"filter": "simoncelli", "level": 2, "boundary": "periodic"},
], ids=lambda e: parse_filter(e).label)
def test_rotation_invariant_filters_commute_with_quarter_turns(entry):
    """Pseudo-rotational invariance: filtering a cube turned by 90 degrees gives the turned map
    (about k for 2D filters, about every axis for 3D ones)."""
    rng = np.random.default_rng(5)
    cube = Image(rng.normal(size=(15, 15, 15)))
    response = apply_filter(cube, entry).array
    planes = [(1, 2)] if parse_filter(entry)["dimensions"] == "2D" else [(1, 2), (0, 2), (0, 1)]
    for axes in planes:
        turned = apply_filter(cube.with_array(np.rot90(cube.array, axes=axes)), entry).array
        assert np.allclose(turned, np.rot90(response, axes=axes), atol=1e-9), axes


def test_fourier_filters_remove_a_constant():
    """The Simoncelli band-pass and Riesz transforms have no DC response."""
    constant = Image(np.full((12, 14, 16), 7.0))
    for entry in ({"filter": "simoncelli", "level": 1}, {"filter": "riesz_simoncelli", "order": [0, 1, 0]},
                  {"filter": "simoncelli", "level": 2, "dimensions": "2D", "boundary": "periodic"}):
        assert np.abs(apply_filter(constant, entry).array).max() < 1e-9, entry


def test_tabulated_taps_are_orthonormal_low_pass_filters():
    """Each built-in low-pass sums to sqrt(2), has unit norm and is orthogonal to its even shifts
    (the defining conditions of an orthogonal wavelet filter bank)."""
    from PySERASlicerLib.engine.filters.wavelet_taps import LOW_PASS

    for name in list(LOW_PASS) + [f"db{n}" for n in range(1, 11)]:
        low, high = wavelet_filters(name)
        assert np.sum(low) == pytest.approx(np.sqrt(2), abs=1e-10), name
        correlation = np.correlate(low, low, mode="full")[low.size - 1:]
        assert np.allclose(correlation[::2], np.eye(1, correlation[::2].size)[0], atol=1e-10), name
        assert np.sum(high) == pytest.approx(0, abs=1e-10), name


def test_built_in_taps_equal_pywavelets():
    """Where the optional PyWavelets is installed: every built-in wavelet has its taps."""
    pywt = pytest.importorskip("pywt")
    from PySERASlicerLib.engine.filters.wavelet_taps import LOW_PASS

    for name in ["haar"] + [f"db{n}" for n in range(1, 11)] + list(LOW_PASS):
        low, high = wavelet_filters(name)
        assert np.allclose(low, pywt.Wavelet(name).dec_lo, atol=1e-11), name
        assert np.allclose(high, pywt.Wavelet(name).dec_hi, atol=1e-11), name
