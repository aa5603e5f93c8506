r"""Moment invariants (PySERA category ``mi``; not an IBSI feature family, so no IBSI codes).

PySERA computes 10 rotation-, translation- and scale-invariant combinations of 3D central
moments up to third order (Sadjadi & Hall 1980; Lo & Don 1989), five for an intensity-weighted
field and five for the ROI shape. We compute the same quantities, vectorised:

* Voxels: the intensity mask; coordinates :math:`(x, y, z)` are voxel **indices** (the
  spacing is not used, as in PySERA: on an isotropic grid this only scales the moments, which
  the normalisation removes; on an anisotropic grid the values depend on the grid).
  ``# PYSERA-COMPAT:`` voxel-index coordinates.
* Weights: intensity set :math:`w = (X - X_{min}) / (\bar{X} - X_{min})` (minimum and mean over
  the intensity mask; raw intensities, not discretised), which makes the intensity invariants
  independent of an affine intensity change :math:`aX + b`, :math:`a > 0`; shape set :math:`w = 1`.
  The intensity set is undefined (NaN) when all intensities are equal (:math:`\bar{X} = X_{min}`).
* Central moments :math:`\mu_{pqr} = \sum w (x - \bar{x})^p (y - \bar{y})^q (z - \bar{z})^r`
  with the weighted centroid :math:`\bar{x} = \sum w x / \sum w` (translation invariance).
* Scale normalisation :math:`\eta_{pqr} = \mu_{pqr} / \mu_{000}^{1 + (p+q+r)/3}`
  (:math:`\mu_{000}^{5/3}` for second and :math:`\mu_{000}^{2}` for third order moments).
* Invariants (rotation invariants of the second-order moment tensor and the squared norm of the
  third-order tensor):

  - ``j1`` :math:`J_1 = \eta_{200} + \eta_{020} + \eta_{002}` (trace),
  - ``q``  :math:`Q = \eta_{200}^2 + \eta_{020}^2 + \eta_{002}^2
    + 2(\eta_{110}^2 + \eta_{101}^2 + \eta_{011}^2)` (squared Frobenius norm),
  - ``j2`` :math:`J_2 = \eta_{200}\eta_{020} + \eta_{200}\eta_{002} + \eta_{020}\eta_{002}
    - \eta_{110}^2 - \eta_{101}^2 - \eta_{011}^2` (second principal invariant),
  - ``j3`` :math:`J_3 = \eta_{200}\eta_{020}\eta_{002} + 2\eta_{110}\eta_{101}\eta_{011}
    - \eta_{002}\eta_{110}^2 - \eta_{020}\eta_{101}^2 - \eta_{200}\eta_{011}^2` (determinant),
  - ``b3`` :math:`B_3 = \eta_{300}^2 + \eta_{030}^2 + \eta_{003}^2 + 3(\eta_{210}^2 + \eta_{201}^2
    + \eta_{120}^2 + \eta_{102}^2 + \eta_{021}^2 + \eta_{012}^2) + 6\eta_{111}^2`.

Tags: ``mi_int_<name>`` (intensity-weighted) and ``mi_shape_<name>`` (shape), in PySERA's order
(J1, Q, J2, J3, B3 of the intensity set, then of the shape set).

Invariance holds exactly for translations, axis permutations and flips (any rotation of the
voxel grid by multiples of 90 degrees) and for affine intensity changes; for spatial scaling it
holds for the continuous definition, and on voxel grids up to a discretisation term of relative
size about :math:`1/(12\,\eta_{200} N^{2/3})` (``Testing/test_moment_invariants.py``).
"""

from __future__ import annotations

from typing import Dict, Iterable, Tuple

import numpy as np

from ..context import RoiContext
from ..registry import volume_specs

FAMILY = "mi"

INVARIANTS = ("j1", "q", "j2", "j3", "b3")
ROWS = tuple(
    (f"mi_{field}_{name}", f"Moment invariant {name.upper()} ({title})", "")
    for field, title in (("int", "intensity-weighted"), ("shape", "shape"))
    for name in INVARIANTS
)
SPECS = volume_specs(FAMILY, ROWS)


def central_moments(weights: np.ndarray) -> Tuple[float, np.ndarray]:
    """``(mu000, mu)`` of a weight array (k, j, i) (0 outside the ROI), with ``mu[p, q, r]`` the
    central moment of order p, q, r (p, q, r in 0..3) along the k, j, i voxel-index axes.

    Separable: the weights are contracted with the powers of the centred index along one axis
    at a time (``tensordot``), so the cost is a few passes over the array, not 64.
    """
    w = np.asarray(weights, dtype=np.float64)
    mu000 = float(w.sum())
    powers = []
    for axis in range(3):
        index = np.arange(w.shape[axis], dtype=np.float64)
        marginal = w.sum(axis=tuple(a for a in range(3) if a != axis))
        d = index - (marginal @ index) / mu000  # centred on the weighted centroid
        powers.append(d[:, None] ** np.arange(4))  # (n_axis, 4)
    mu = np.tensordot(w, powers[2], axes=([2], [0]))  # (k, j, r)
    mu = np.tensordot(mu, powers[1], axes=([1], [0]))  # (k, r, q)
    mu = np.tensordot(powers[0], mu, axes=([0], [0]))  # (p, r, q)
    return mu000, np.transpose(mu, (0, 2, 1))


def invariants(mu000: float, mu: np.ndarray) -> Dict[str, float]:
    """The five invariants of one set of central moments (see the module docstring)."""
    order = np.add.outer(np.add.outer(np.arange(4), np.arange(4)), np.arange(4))
    eta = mu / mu000 ** (1.0 + order / 3.0)
    n200, n020, n002 = eta[2, 0, 0], eta[0, 2, 0], eta[0, 0, 2]
    n110, n101, n011 = eta[1, 1, 0], eta[1, 0, 1], eta[0, 1, 1]
    j1 = n200 + n020 + n002
    q = n200 ** 2 + n020 ** 2 + n002 ** 2 + 2 * (n110 ** 2 + n101 ** 2 + n011 ** 2)
    j2 = n200 * n020 + n200 * n002 + n020 * n002 - n110 ** 2 - n101 ** 2 - n011 ** 2
    j3 = (n200 * n020 * n002 + 2 * n110 * n101 * n011
          - n002 * n110 ** 2 - n020 * n101 ** 2 - n200 * n011 ** 2)
    b3 = (eta[3, 0, 0] ** 2 + eta[0, 3, 0] ** 2 + eta[0, 0, 3] ** 2
          + 3 * (eta[2, 1, 0] ** 2 + eta[2, 0, 1] ** 2 + eta[1, 2, 0] ** 2
                 + eta[1, 0, 2] ** 2 + eta[0, 2, 1] ** 2 + eta[0, 1, 2] ** 2)
          + 6 * eta[1, 1, 1] ** 2)
    return {"j1": float(j1), "q": float(q), "j2": float(j2), "j3": float(j3), "b3": float(b3)}


def moment_invariants(array: np.ndarray, mask: np.ndarray) -> Dict[str, float]:
    """All 10 ``mi_*`` values of an image ``array`` inside a bool ``mask`` (same shape, (k, j, i))."""
    mask = np.asarray(mask, dtype=bool)
    out = {f"mi_shape_{k}": v for k, v in invariants(*central_moments(mask)).items()}
    x = array[mask].astype(np.float64)
    lo, mean = x.min(), x.mean()
    if mean > lo:
        weights = np.zeros(mask.shape)
        weights[mask] = (x - lo) / (mean - lo)
        values = invariants(*central_moments(weights))
    else:  # constant intensity: the weighting (X - min) / (mean - min) is undefined
        values = dict.fromkeys(INVARIANTS, float("nan"))
    out.update({f"mi_int_{k}": v for k, v in values.items()})
    return {tag: out[tag] for tag, _, _ in ROWS}


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested moment invariants of one ROI (intensity mask, raw intensities)."""
    wanted = list(tags)
    if not ctx.int_mask.any():
        return dict.fromkeys(wanted, float("nan"))
    values = moment_invariants(ctx.image.array, ctx.int_mask)
    return {tag: values[tag] for tag in wanted}
