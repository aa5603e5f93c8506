r"""Neighbourhood grey tone difference matrix features (IBSI 3.10), aggregations ``_2D``,
``_2_5D``, ``_3D``.

Symbols (IBSI): for each voxel of the intensity mask, :math:`\bar{X}` is the mean grey level
of its neighbours in the ROI within Chebyshev distance ``settings.texture.ngtdm_distance``
(centre excluded; in-plane for 2D/2.5D). Only voxels with at least one such neighbour count.
:math:`n_i` is the number of counted voxels of grey level :math:`i`,
:math:`s_i = \sum |i - \bar{X}|` over them, :math:`N_{v,c} = \sum_i n_i`,
:math:`p_i = n_i / N_{v,c}`, and :math:`N_{g,p}` the number of grey levels with
:math:`p_i > 0`. Sums over :math:`i, j` below run over levels with :math:`p > 0`.

Aggregations: ``_2D`` (8QNN) per k-slice, averaged over slices; ``_2_5D`` (62GR) per-slice
:math:`n_i` and :math:`s_i` summed; ``_3D`` (KOBO) 3D neighbourhoods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable

import numpy as np

from .. import texture
from ..context import RoiContext
from ..registry import ZONE_AGGREGATIONS, texture_specs

FAMILY = "ngtdm"

ROWS = (
    ("ngt_coarseness", "Coarseness", "QCDE"),
    ("ngt_contrast", "Contrast", "65HE"),
    ("ngt_busyness", "Busyness", "NQ30"),
    ("ngt_complexity", "Complexity", "HDEZ"),
    ("ngt_strength", "Strength", "1X9X"),
)
SPECS = texture_specs(FAMILY, ROWS, ZONE_AGGREGATIONS)


def ngtdm_matrix(q: np.ndarray, n_g: int, distance: int, in_plane: bool):
    """``(n, s)``: per k-slice ``(n_k, n_g)`` when ``in_plane`` else ``(n_g,)`` — the voxel counts
    :math:`n_i` and the grey tone differences :math:`s_i`."""
    roi = q > 0
    # One box sum for both the neighbours' level sum and their number: q * scale + roi packs
    # them (the count stays below ``scale``) and the box sums are exact integers.
    scale = (2 * distance + 1) ** (2 if in_plane else 3) + 1
    packed = texture.box_sum(q.astype(np.int64) * scale + roi, distance, in_plane)[roi]
    level = q[roi]
    total, count = np.divmod(packed, scale)
    total -= level  # centre excluded
    count -= 1
    valid = count > 0
    level = level[valid]
    diff = np.abs(level - total[valid] / count[valid])
    if in_plane:
        n_k = q.shape[0]
        code = np.nonzero(roi)[0][valid] * n_g + level - 1
        n = np.bincount(code, minlength=n_k * n_g).reshape(n_k, n_g)
        s = np.bincount(code, weights=diff, minlength=n_k * n_g).reshape(n_k, n_g)
        return n, s
    return np.bincount(level - 1, minlength=n_g), np.bincount(level - 1, weights=diff, minlength=n_g)


@dataclass(frozen=True)
class NgtStats:
    """Derived quantities of a stack of NGTDMs ``(..., n_g)`` (see the module docstring)."""

    p: np.ndarray  # p_i
    s: np.ndarray  # s_i
    i: np.ndarray  # levels 1..n_g
    n_vc: np.ndarray  # N_v,c
    n_gp: np.ndarray  # N_g,p
    present: np.ndarray  # p_i > 0
    pair: np.ndarray  # (..., n_g, n_g): p_i > 0 and p_j > 0


def ngt_stats(n: np.ndarray, s: np.ndarray) -> NgtStats:
    n = np.asarray(n, dtype=np.float64)
    n_vc = n.sum(-1)
    p = n / n_vc[..., None]
    present = p > 0
    return NgtStats(p, np.asarray(s, dtype=np.float64), np.arange(1, n.shape[-1] + 1, dtype=np.float64), n_vc,
                    present.sum(-1), present, present[..., :, None] & present[..., None, :])


#: IBSI's coarseness when :math:`\sum_i p_i s_i = 0` (every counted voxel equals its neighbours' mean)
COARSENESS_WHEN_UNIFORM = 1e6


def coarseness(t: NgtStats) -> np.ndarray:
    r"""Coarseness [IBSI QCDE]: :math:`1 / \sum_i p_i s_i`; :math:`10^6` when the sum is 0 (IBSI)."""
    denominator = (t.p * t.s).sum(-1)
    return np.where(denominator > 0, 1.0 / np.where(denominator > 0, denominator, 1.0), COARSENESS_WHEN_UNIFORM)


def contrast(t: NgtStats) -> np.ndarray:
    r"""Contrast [IBSI 65HE]: :math:`\left(\frac{1}{N_{g,p}(N_{g,p}-1)}\sum_{ij} p_i p_j (i-j)^2\right)
    \left(\frac{1}{N_{v,c}}\sum_i s_i\right)`; NaN for one grey level."""
    pp = t.p[..., :, None] * t.p[..., None, :] * (t.i[:, None] - t.i[None, :]) ** 2
    return pp.sum((-2, -1)) / (t.n_gp * (t.n_gp - 1)) * t.s.sum(-1) / t.n_vc


def busyness(t: NgtStats) -> np.ndarray:
    r"""Busyness [IBSI NQ30]: :math:`\sum_i p_i s_i / \sum_{ij} |i p_i - j p_j|` (:math:`p_i, p_j > 0`)."""
    ip = t.i * t.p
    denominator = (np.abs(ip[..., :, None] - ip[..., None, :]) * t.pair).sum((-2, -1))
    return (t.p * t.s).sum(-1) / denominator


def complexity(t: NgtStats) -> np.ndarray:
    r"""Complexity [IBSI HDEZ]: :math:`\frac{1}{N_{v,c}}\sum_{ij} |i-j|
    \frac{p_i s_i + p_j s_j}{p_i + p_j}` (:math:`p_i, p_j > 0`)."""
    ps = t.p * t.s
    with np.errstate(invalid="ignore", divide="ignore"):
        term = np.abs(t.i[:, None] - t.i[None, :]) * (ps[..., :, None] + ps[..., None, :]) \
            / (t.p[..., :, None] + t.p[..., None, :])
    return np.where(t.pair, term, 0.0).sum((-2, -1)) / t.n_vc


def strength(t: NgtStats) -> np.ndarray:
    r"""Strength [IBSI 1X9X]: :math:`\sum_{ij} (p_i + p_j)(i-j)^2 / \sum_i s_i` (:math:`p_i, p_j > 0`);
    0 when :math:`\sum_i s_i = 0` (IBSI)."""
    term = (t.p[..., :, None] + t.p[..., None, :]) * (t.i[:, None] - t.i[None, :]) ** 2
    denominator = t.s.sum(-1)
    return np.where(denominator > 0, (term * t.pair).sum((-2, -1)) / np.where(denominator > 0, denominator, 1.0), 0.0)


FEATURES: Dict[str, Callable[[NgtStats], np.ndarray]] = {
    "ngt_coarseness": coarseness, "ngt_contrast": contrast, "ngt_busyness": busyness,
    "ngt_complexity": complexity, "ngt_strength": strength,
}


def compute_from_discretised(q: np.ndarray, n_g: int, distance: int, tags: Iterable[str]) -> Dict[str, float]:
    """Requested NGTDM tags of a discretised ROI (``q``: levels 1..n_g, 0 outside)."""
    groups = texture.requested(tags, SPECS)
    planar = ngtdm_matrix(q, n_g, distance, True) if ("2D" in groups or "2_5D" in groups) else None
    volume = ngtdm_matrix(q, n_g, distance, False) if "3D" in groups else None
    out: Dict[str, float] = {}
    for aggregation, stems in groups.items():
        if aggregation == "2D":
            n, s = planar
            keep = n.sum(-1) > 0
            n, s = n[keep], s[keep]
        elif aggregation == "2_5D":
            n, s = planar[0].sum(0)[None], planar[1].sum(0)[None]
        else:
            n, s = volume[0][None], volume[1][None]
        out.update(texture.evaluate(FEATURES, ngt_stats(n, s), stems, n.sum(-1) > 0))
    return out


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested NGTDM features of one ROI."""
    q, n_g, _ = ctx.texture_input  # cropped to the ROI box: same matrices, smaller arrays
    return compute_from_discretised(q, n_g, ctx.settings.texture.ngtdm_distance, tags)
