"""IBSI-2 phase 1 (filter response maps on the digital phantoms): the 33 configurations that have
a consensus map, written as our filter entries, and the pass rule. Shared by
Testing/test_ibsi2_response_maps.py and scripts/ibsi2_conformance.py.

Data in Testing/Data/ibsi2/ (see its README.md for sources and licences): the phantoms as NIfTI and
the consensus maps in ``response_maps.npz`` (quantised, see :func:`reference_map`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, NamedTuple, Tuple

import numpy as np

DATA = Path(__file__).resolve().parent / "Data" / "ibsi2"


class Phase1Case(NamedTuple):
    test_id: str
    phantom: str
    filter: Dict


def _case(test_id, phantom, **entry) -> Phase1Case:
    return Phase1Case(test_id, phantom, entry)


_LAWS_RI = {"rotation_invariant": True, "pooling": "max"}

#: Every phase-1 id with a consensus map, in the order of CONFIGURATIONS.md section 3.
PHASE1 = (
    _case("1.a.1", "checkerboard", filter="mean", support=15, boundary="zero"),
    _case("1.a.2", "checkerboard", filter="mean", support=15, boundary="nearest"),
    _case("1.a.3", "checkerboard", filter="mean", support=15, boundary="periodic"),
    _case("1.a.4", "checkerboard", filter="mean", support=15, boundary="mirror"),
    _case("1.b.1", "impulse", filter="mean", support=15, dimensions="2D", boundary="zero"),
    _case("2.a", "impulse", filter="log", sigma_mm=3.0, cutoff=4, boundary="zero"),
    _case("2.b", "checkerboard", filter="log", sigma_mm=5.0, cutoff=4, boundary="mirror"),
    _case("2.c", "checkerboard", filter="log", sigma_mm=5.0, cutoff=4, dimensions="2D", boundary="mirror"),
    _case("3.a.1", "impulse", filter="laws", kernel="E5L5S5", boundary="zero"),
    _case("3.a.2", "impulse", filter="laws", kernel="E5L5S5", boundary="zero", **_LAWS_RI),
    _case("3.a.3", "impulse", filter="laws", kernel="E5L5S5", boundary="zero", energy_delta=7, **_LAWS_RI),
    _case("3.b.1", "checkerboard", filter="laws", kernel="E3W5R5", boundary="mirror"),
    _case("3.b.2", "checkerboard", filter="laws", kernel="E3W5R5", boundary="mirror", **_LAWS_RI),
    _case("3.b.3", "checkerboard", filter="laws", kernel="E3W5R5", boundary="mirror", energy_delta=7, **_LAWS_RI),
    _case("3.c.1", "checkerboard", filter="laws", kernel="L5S5", dimensions="2D", boundary="mirror"),
    _case("3.c.2", "checkerboard", filter="laws", kernel="L5S5", dimensions="2D", boundary="mirror", **_LAWS_RI),
    _case("3.c.3", "checkerboard", filter="laws", kernel="L5S5", dimensions="2D", boundary="mirror",
          energy_delta=7, **_LAWS_RI),
    _case("4.a.1", "impulse", filter="gabor", sigma_mm=10.0, lambda_mm=4.0, gamma=0.5, theta_deg=60.0,
          dimensions="2D", boundary="zero"),
    _case("4.a.2", "impulse", filter="gabor", sigma_mm=10.0, lambda_mm=4.0, gamma=0.5, rotation_invariant=True,
          theta_step_deg=45.0, dimensions="3D", boundary="zero"),
    _case("4.b.1", "sphere", filter="gabor", sigma_mm=20.0, lambda_mm=8.0, gamma=2.5, theta_deg=225.0,
          dimensions="2D", boundary="mirror"),
    _case("4.b.2", "sphere", filter="gabor", sigma_mm=20.0, lambda_mm=8.0, gamma=2.5, rotation_invariant=True,
          theta_step_deg=22.5, dimensions="3D", boundary="mirror"),
    _case("5.a.1", "impulse", filter="wavelet", wavelet="db2", set="LHL", level=1, boundary="zero"),
    _case("5.a.2", "impulse", filter="wavelet", wavelet="db2", set="LHL", level=1, rotation_invariant=True,
          boundary="zero"),
    _case("6.a.1", "sphere", filter="wavelet", wavelet="coif1", set="HHL", level=1, boundary="periodic"),
    _case("6.a.2", "sphere", filter="wavelet", wavelet="coif1", set="HHL", level=1, rotation_invariant=True,
          boundary="periodic"),
    _case("7.a.1", "checkerboard", filter="wavelet", wavelet="haar", set="LLL", level=2, rotation_invariant=True,
          boundary="mirror"),
    _case("7.a.2", "checkerboard", filter="wavelet", wavelet="haar", set="HHH", level=2, rotation_invariant=True,
          boundary="mirror"),
    _case("8.a.1", "checkerboard", filter="simoncelli", level=1, boundary="periodic"),
    _case("8.a.2", "checkerboard", filter="simoncelli", level=2, boundary="periodic"),
    _case("8.a.3", "checkerboard", filter="simoncelli", level=3, boundary="periodic"),
    _case("9.a", "impulse", filter="riesz_log", sigma_mm=3.0, cutoff=4, order=[1, 0, 0], boundary="zero"),
    _case("9.b.1", "sphere", filter="riesz_log", sigma_mm=3.0, cutoff=4, order=[0, 2, 0], boundary="zero"),
    _case("10.b.1", "pattern_1", filter="riesz_simoncelli", level=1, order=[0, 2, 0], boundary="nearest"),
)


def phantom_path(name: str) -> Path:
    return DATA / "phantoms" / f"{name}.nii.gz"


@functools.cache
def _maps():
    with np.load(DATA / "response_maps.npz") as data:
        return {key: data[key] for key in data.files}


def reference_map(test_id: str) -> Tuple[np.ndarray, float]:
    """(consensus map indexed (k, j, i), quantisation error bound). The maps are stored as uint16
    codes over [min, max] of each map: the decoded value is within half a code step (range / 131070,
    0.0008 % of the range) of the original float32 value; the bound is returned so that the pass
    test can be made stricter by it."""
    maps = _maps()
    key = test_id.replace(".", "_")
    codes = maps[key].astype(np.float64)
    low, high = maps[key + "_range"]
    step = (high - low) / 65535.0
    return low + codes * step, step / 2.0


def tolerance(test_id: str) -> float:
    """1 % of the consensus map's range (the IBSI-2 phase 1 pass rule)."""
    low, high = _maps()[test_id.replace(".", "_") + "_range"]
    return 0.01 * (float(high) - float(low))


class Comparison(NamedTuple):
    label: str
    deviation: float
    tolerance: float
    passed: bool


def compare(case: Phase1Case) -> Comparison:
    """Filter the phantom through the public API and compare with the consensus map. Passing
    requires max |ours - consensus| <= tolerance - quantisation bound of the stored map, so a pass
    here implies a pass against the original float32 map."""
    from PySERASlicerLib import apply_filter
    from PySERASlicerLib.engine.filters import parse_filter

    spec = parse_filter(case.filter)
    response = apply_filter(str(phantom_path(case.phantom)), spec)
    reference, quantisation = reference_map(case.test_id)
    deviation = float(np.max(np.abs(response.array - reference)))
    limit = tolerance(case.test_id)
    return Comparison(spec.label, deviation, limit, deviation <= limit - quantisation)
