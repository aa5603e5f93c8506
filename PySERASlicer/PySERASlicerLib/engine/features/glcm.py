r"""Grey level co-occurrence matrix features (IBSI 3.6), in all six aggregations.

Symbols (IBSI): :math:`M_{ij}` counts neighbour pairs with grey levels :math:`(i, j)` at
Chebyshev distance :math:`\delta` (``settings.texture.glcm_distance``) along one direction; the
matrix is symmetric (:math:`M + M^T`). :math:`N_g` is the number of discretised grey levels
(empty levels keep their rows). :math:`p_{ij} = M_{ij} / \sum M`, marginals
:math:`p_{i.} = \sum_j p_{ij}`, :math:`p_{.j}`, diagonal and cross-diagonal probabilities
:math:`p_{i-j,k} = \sum_{|i-j|=k} p_{ij}` (:math:`k = 0..N_g-1`) and
:math:`p_{i+j,k} = \sum_{i+j=k} p_{ij}` (:math:`k = 2..2N_g`), :math:`\mu_{i.} = \sum_i i p_{i.}`,
:math:`\sigma_{i.}^2 = \sum_i (i - \mu_{i.})^2 p_{i.}`; :math:`HX` marginal entropy,
:math:`HXY` joint entropy, :math:`HXY_1 = -\sum p_{ij}\log_2(p_{i.}p_{.j})`,
:math:`HXY_2 = -\sum p_{i.}p_{.j}\log_2(p_{i.}p_{.j})`. Entropies use :math:`\log_2`.

Aggregations (IBSI BTW3, SUJT, JJUI, ZW7Z, ITBB, IAZD): 2D = 4 in-plane directions per
k-slice, 3D = 13 directions. ``_2D_avg``: features per slice and direction, averaged;
``_2D_comb``: direction matrices summed per slice, features averaged over slices;
``_2_5D_avg``: per direction, matrices summed over slices, features averaged over directions;
``_2_5D_comb``: all per-slice matrices summed; ``_3D_avg``: per 3D direction, averaged;
``_3D_comb``: the 13 matrices summed. Empty matrices (no pairs) are skipped when averaging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable

import numpy as np

from .. import texture
from ..context import RoiContext
from ..registry import MATRIX_AGGREGATIONS, texture_specs

FAMILY = "glcm"

ROWS = (
    ("cm_joint_max", "Joint maximum", "GYBY"),
    ("cm_joint_avg", "Joint average", "60VM"),
    ("cm_joint_var", "Joint variance", "UR99"),
    ("cm_joint_entr", "Joint entropy", "TU9B"),
    ("cm_diff_avg", "Difference average", "TF7R"),
    ("cm_diff_var", "Difference variance", "D3YU"),
    ("cm_diff_entr", "Difference entropy", "NTRS"),
    ("cm_sum_avg", "Sum average", "ZGXS"),
    ("cm_sum_var", "Sum variance", "OEEB"),
    ("cm_sum_entr", "Sum entropy", "P6QZ"),
    ("cm_energy", "Angular second moment", "8ZQL"),
    ("cm_contrast", "Contrast", "ACUI"),
    ("cm_dissimilarity", "Dissimilarity", "8S9J"),
    ("cm_inv_diff", "Inverse difference", "IB1Z"),
    ("cm_inv_diff_norm", "Normalised inverse difference", "NDRX"),
    ("cm_inv_diff_mom", "Inverse difference moment", "WF0Z"),
    ("cm_inv_diff_mom_norm", "Normalised inverse difference moment", "1QCO"),
    ("cm_inv_var", "Inverse variance", "E8JP"),
    ("cm_corr", "Correlation", "NI2N"),
    ("cm_auto_corr", "Autocorrelation", "QWB0"),
    ("cm_clust_tend", "Cluster tendency", "DG8W"),
    ("cm_clust_shade", "Cluster shade", "7NFM"),
    ("cm_clust_prom", "Cluster prominence", "AE86"),
    ("cm_info_corr1", "Information correlation 1", "R8DG"),
    ("cm_info_corr2", "Information correlation 2", "JN9H"),
)
SPECS = texture_specs(FAMILY, ROWS, MATRIX_AGGREGATIONS)


# ------------------------------------------------------------------------------------------
# Derived quantities
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CmStats:
    """Derived quantities of a stack of co-occurrence matrices ``(..., n_g, n_g)`` (see module doc)."""

    n_g: int
    p: np.ndarray  # p_ij
    i: np.ndarray  # (n_g, 1), levels from 1
    j: np.ndarray  # (1, n_g)
    p_i: np.ndarray  # (..., n_g) marginal (rows); equals p_.j (symmetric matrix)
    p_minus: np.ndarray  # (..., n_g) p_{i-j,k}, k = 0..n_g-1
    p_plus: np.ndarray  # (..., 2 n_g - 1) p_{i+j,k}, k = 2..2 n_g
    mu: np.ndarray  # (...) mu_i. = mu_.j
    hxy: np.ndarray  # joint entropy


def _diagonal_sums(p: np.ndarray, index: np.ndarray, n_bins: int) -> np.ndarray:
    """Sums of ``p`` (..., n_g, n_g) over the cells with equal ``index`` (n_g, n_g) -> (..., n_bins),
    one weighted ``bincount`` for the whole stack."""
    lead = p.shape[:-2]
    n = int(np.prod(lead)) if lead else 1
    code = (np.arange(n)[:, None] * n_bins + index.ravel()[None, :]).ravel()
    return np.bincount(code, weights=p.reshape(-1), minlength=n * n_bins).reshape(*lead, n_bins)


def cm_stats(m: np.ndarray) -> CmStats:
    """:class:`CmStats` of a stack of symmetric count matrices ``(..., n_g, n_g)``."""
    m = np.asarray(m, dtype=np.float64)
    n_g = m.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = m / m.sum(axis=(-2, -1), keepdims=True)
    i_idx, j_idx = np.ogrid[0:n_g, 0:n_g]
    p_minus = _diagonal_sums(p, np.abs(i_idx - j_idx), n_g)
    p_plus = _diagonal_sums(p, i_idx + j_idx, 2 * n_g - 1)
    p_i = p.sum(axis=-1)
    levels = np.arange(1, n_g + 1, dtype=np.float64)
    return CmStats(
        n_g=n_g, p=p, i=levels[:, None], j=levels[None, :], p_i=p_i,
        p_minus=p_minus, p_plus=p_plus, mu=(p_i * levels).sum(-1),
        hxy=texture.entropy(p, axis=(-2, -1)),
    )


def _sum2(x: np.ndarray) -> np.ndarray:
    return x.sum(axis=(-2, -1))


# ------------------------------------------------------------------------------------------
# Features: pure functions of CmStats, broadcasting over leading axes
# ------------------------------------------------------------------------------------------
def joint_max(s: CmStats) -> np.ndarray:
    r"""Joint maximum [IBSI GYBY]: :math:`\max_{ij} p_{ij}`."""
    return s.p.max(axis=(-2, -1))


def joint_avg(s: CmStats) -> np.ndarray:
    r"""Joint average [IBSI 60VM]: :math:`\mu = \sum_{ij} i\,p_{ij}`."""
    return s.mu


def joint_var(s: CmStats) -> np.ndarray:
    r"""Joint variance [IBSI UR99]: :math:`\sum_{ij} (i-\mu)^2 p_{ij}`."""
    return ((s.i[:, 0] - s.mu[..., None]) ** 2 * s.p_i).sum(-1)


def joint_entr(s: CmStats) -> np.ndarray:
    r"""Joint entropy [IBSI TU9B]: :math:`-\sum_{ij} p_{ij}\log_2 p_{ij}`."""
    return s.hxy


def _k_minus(s: CmStats) -> np.ndarray:
    return np.arange(s.n_g, dtype=np.float64)


def _k_plus(s: CmStats) -> np.ndarray:
    return np.arange(2, 2 * s.n_g + 1, dtype=np.float64)


def diff_avg(s: CmStats) -> np.ndarray:
    r"""Difference average [IBSI TF7R]: :math:`\mu_{x-y} = \sum_k k\,p_{i-j,k}`."""
    return (_k_minus(s) * s.p_minus).sum(-1)


def diff_var(s: CmStats) -> np.ndarray:
    r"""Difference variance [IBSI D3YU]: :math:`\sum_k (k-\mu_{x-y})^2 p_{i-j,k}`."""
    return ((_k_minus(s) - diff_avg(s)[..., None]) ** 2 * s.p_minus).sum(-1)


def diff_entr(s: CmStats) -> np.ndarray:
    r"""Difference entropy [IBSI NTRS]: :math:`-\sum_k p_{i-j,k}\log_2 p_{i-j,k}`."""
    return texture.entropy(s.p_minus, axis=-1)


def sum_avg(s: CmStats) -> np.ndarray:
    r"""Sum average [IBSI ZGXS]: :math:`\mu_{x+y} = \sum_k k\,p_{i+j,k}`."""
    return (_k_plus(s) * s.p_plus).sum(-1)


def sum_var(s: CmStats) -> np.ndarray:
    r"""Sum variance [IBSI OEEB]: :math:`\sum_k (k-\mu_{x+y})^2 p_{i+j,k}`."""
    return ((_k_plus(s) - sum_avg(s)[..., None]) ** 2 * s.p_plus).sum(-1)


def sum_entr(s: CmStats) -> np.ndarray:
    r"""Sum entropy [IBSI P6QZ]: :math:`-\sum_k p_{i+j,k}\log_2 p_{i+j,k}`."""
    return texture.entropy(s.p_plus, axis=-1)


def energy(s: CmStats) -> np.ndarray:
    r"""Angular second moment [IBSI 8ZQL]: :math:`\sum_{ij} p_{ij}^2`."""
    return _sum2(s.p ** 2)


def contrast(s: CmStats) -> np.ndarray:
    r"""Contrast [IBSI ACUI]: :math:`\sum_{ij}(i-j)^2 p_{ij} = \sum_k k^2 p_{i-j,k}`."""
    return (_k_minus(s) ** 2 * s.p_minus).sum(-1)


def dissimilarity(s: CmStats) -> np.ndarray:
    r"""Dissimilarity [IBSI 8S9J]: :math:`\sum_{ij}|i-j|\,p_{ij} = \sum_k k\,p_{i-j,k}`."""
    return diff_avg(s)


def inv_diff(s: CmStats) -> np.ndarray:
    r"""Inverse difference [IBSI IB1Z]: :math:`\sum_k p_{i-j,k}/(1+k)`."""
    return (s.p_minus / (1 + _k_minus(s))).sum(-1)


def inv_diff_norm(s: CmStats) -> np.ndarray:
    r"""Normalised inverse difference [IBSI NDRX]: :math:`\sum_k p_{i-j,k}/(1+k/N_g)`."""
    return (s.p_minus / (1 + _k_minus(s) / s.n_g)).sum(-1)


def inv_diff_mom(s: CmStats) -> np.ndarray:
    r"""Inverse difference moment [IBSI WF0Z]: :math:`\sum_k p_{i-j,k}/(1+k^2)`."""
    return (s.p_minus / (1 + _k_minus(s) ** 2)).sum(-1)


def inv_diff_mom_norm(s: CmStats) -> np.ndarray:
    r"""Normalised inverse difference moment [IBSI 1QCO]: :math:`\sum_k p_{i-j,k}/(1+k^2/N_g^2)`."""
    return (s.p_minus / (1 + (_k_minus(s) / s.n_g) ** 2)).sum(-1)


def inv_var(s: CmStats) -> np.ndarray:
    r"""Inverse variance [IBSI E8JP]: :math:`\sum_{k=1}^{N_g-1} p_{i-j,k}/k^2`."""
    k = _k_minus(s)[1:]
    return (s.p_minus[..., 1:] / k ** 2).sum(-1)


def auto_corr(s: CmStats) -> np.ndarray:
    r"""Autocorrelation [IBSI QWB0]: :math:`\sum_{ij} i\,j\,p_{ij}`."""
    levels = s.i[:, 0]
    return ((s.p @ levels) * levels).sum(-1)


def corr(s: CmStats) -> np.ndarray:
    r"""Correlation [IBSI NI2N]:
    :math:`\frac{1}{\sigma_{i.}\sigma_{.j}}\sum_{ij}(i-\mu_{i.})(j-\mu_{.j})p_{ij}`; undefined
    (NaN) for a single grey level (:math:`\sigma = 0`). For a symmetric matrix
    :math:`\mu_{i.} = \mu_{.j} = \mu`, :math:`\sigma_{i.} = \sigma_{.j}`, and the numerator is
    :math:`\sum_{ij} i j p_{ij} - \mu^2`."""
    return (auto_corr(s) - s.mu ** 2) / joint_var(s)


def _cluster(s: CmStats, power: int) -> np.ndarray:
    # i + j - mu_i. - mu_.j depends on i + j only: sum over p_{i+j,k} (no n_g x n_g work)
    return ((_k_plus(s) - 2 * s.mu[..., None]) ** power * s.p_plus).sum(-1)


def clust_tend(s: CmStats) -> np.ndarray:
    r"""Cluster tendency [IBSI DG8W]: :math:`\sum_{ij}(i+j-\mu_{i.}-\mu_{.j})^2 p_{ij}
    = \sum_k (k - 2\mu)^2 p_{i+j,k}`."""
    return _cluster(s, 2)


def clust_shade(s: CmStats) -> np.ndarray:
    r"""Cluster shade [IBSI 7NFM]: :math:`\sum_{ij}(i+j-\mu_{i.}-\mu_{.j})^3 p_{ij}
    = \sum_k (k - 2\mu)^3 p_{i+j,k}`."""
    return _cluster(s, 3)


def clust_prom(s: CmStats) -> np.ndarray:
    r"""Cluster prominence [IBSI AE86]: :math:`\sum_{ij}(i+j-\mu_{i.}-\mu_{.j})^4 p_{ij}
    = \sum_k (k - 2\mu)^4 p_{i+j,k}`."""
    return _cluster(s, 4)


def _hx(s: CmStats) -> np.ndarray:
    return texture.entropy(s.p_i, axis=-1)


def info_corr1(s: CmStats) -> np.ndarray:
    r"""Information correlation 1 [IBSI R8DG]: :math:`(HXY - HXY_1)/\max(HX, HY)`; NaN for a
    single grey level (:math:`HX = 0`). For a symmetric matrix :math:`HX = HY` and
    :math:`HXY_1 = -\sum_{ij} p_{ij}(\log_2 p_{i.} + \log_2 p_{.j}) = 2HX`."""
    hx = _hx(s)
    return (s.hxy - 2 * hx) / hx


def info_corr2(s: CmStats) -> np.ndarray:
    r"""Information correlation 2 [IBSI JN9H]: :math:`\sqrt{1 - e^{-2(HXY_2 - HXY)}}`, where for a
    symmetric matrix :math:`HXY_2 = -\sum_{ij} p_{i.}p_{.j}\log_2(p_{i.}p_{.j}) = 2HX`."""
    return np.sqrt(np.clip(1 - np.exp(-2 * (2 * _hx(s) - s.hxy)), 0, None))


FEATURES: Dict[str, Callable[[CmStats], np.ndarray]] = {
    "cm_joint_max": joint_max, "cm_joint_avg": joint_avg, "cm_joint_var": joint_var,
    "cm_joint_entr": joint_entr, "cm_diff_avg": diff_avg, "cm_diff_var": diff_var,
    "cm_diff_entr": diff_entr, "cm_sum_avg": sum_avg, "cm_sum_var": sum_var, "cm_sum_entr": sum_entr,
    "cm_energy": energy, "cm_contrast": contrast, "cm_dissimilarity": dissimilarity,
    "cm_inv_diff": inv_diff, "cm_inv_diff_norm": inv_diff_norm, "cm_inv_diff_mom": inv_diff_mom,
    "cm_inv_diff_mom_norm": inv_diff_mom_norm, "cm_inv_var": inv_var, "cm_corr": corr,
    "cm_auto_corr": auto_corr, "cm_clust_tend": clust_tend, "cm_clust_shade": clust_shade,
    "cm_clust_prom": clust_prom, "cm_info_corr1": info_corr1, "cm_info_corr2": info_corr2,
}


# ------------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------------
def aggregated_matrices(m2, m3, aggregation: str) -> np.ndarray:
    """The stack of matrices one aggregation computes features on (see the module docstring)."""
    if aggregation == "2D_avg":
        return m2.reshape(-1, *m2.shape[-2:])
    if aggregation == "2D_comb":
        return m2.sum(axis=1)
    if aggregation == "2_5D_avg":
        return m2.sum(axis=0)
    if aggregation == "2_5D_comb":
        return m2.sum(axis=(0, 1))[None]
    if aggregation == "3D_avg":
        return m3
    if aggregation == "3D_comb":
        return m3.sum(axis=0)[None]
    raise KeyError(aggregation)


def compute_from_discretised(q: np.ndarray, n_g: int, distance: int, tags: Iterable[str]) -> Dict[str, float]:
    """Requested GLCM tags of a discretised ROI (``q``: levels 1..n_g, 0 outside)."""
    groups = texture.requested(tags, SPECS)
    need_2d = any(a.startswith("2") for a in groups)
    need_3d = any(a.startswith("3") for a in groups)
    m2, m3 = texture.glcm_stacks(q, n_g, distance, need_2d, need_3d)
    out: Dict[str, float] = {}
    for aggregation, stems in groups.items():
        stack = aggregated_matrices(m2, m3, aggregation)
        stack = stack[stack.sum(axis=(-2, -1)) > 0]  # IBSI: matrices without pairs are skipped
        stats = cm_stats(stack)
        out.update(texture.evaluate(FEATURES, stats, stems, np.ones(stack.shape[0], dtype=bool)))
    return out


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested GLCM features of one ROI."""
    q, n_g, _ = ctx.texture_input  # cropped to the ROI box: same matrices, smaller arrays
    return compute_from_discretised(q, n_g, ctx.settings.texture.glcm_distance, tags)
