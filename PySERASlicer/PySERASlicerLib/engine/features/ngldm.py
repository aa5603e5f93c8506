r"""Neighbouring grey level dependence matrix features (IBSI 3.11), aggregations ``_2D``,
``_2_5D``, ``_3D``.

Symbols (IBSI): for each voxel of the intensity mask, its dependence :math:`k` is 1 plus the
number of neighbours in the ROI within Chebyshev distance ``settings.texture.ngldm_distance``
(in-plane for 2D/2.5D) whose grey level differs by at most the coarseness
:math:`\alpha` (``settings.texture.ngldm_alpha``). :math:`s_{ij}` counts voxels of grey level
:math:`i` with dependence :math:`j`; :math:`N_s = \sum s_{ij}` (= :math:`N_v`, every voxel
is counted), :math:`s_{i.}`, :math:`s_{.j}` marginal sums, :math:`p_{ij} = s_{ij}/N_s`.

Aggregations: ``_2D`` (8QNN) per k-slice, averaged over slices; ``_2_5D`` (62GR) per-slice
matrices summed; ``_3D`` (KOBO) 3D neighbourhoods.
"""

from __future__ import annotations

from typing import Dict, Iterable

import numpy as np

from .. import texture
from ..context import RoiContext
from ..registry import ZONE_AGGREGATIONS, texture_specs

FAMILY = "ngldm"

#: (tag stem, IBSI name, IBSI code, generic feature of texture.COUNT_FEATURES)
TABLE = (
    ("ngl_lde", "Low dependence emphasis", "SODN", "sje"),  # sum_j s_.j / j^2 / N_s
    ("ngl_hde", "High dependence emphasis", "IMOQ", "lje"),  # sum_j s_.j j^2 / N_s
    ("ngl_lgce", "Low grey level count emphasis", "TL9H", "lge"),  # sum_i s_i. / i^2 / N_s
    ("ngl_hgce", "High grey level count emphasis", "OAE7", "hge"),  # sum_i s_i. i^2 / N_s
    ("ngl_ldlge", "Low dependence low grey level emphasis", "EQ3F", "sjlge"),  # sum s_ij / (i^2 j^2) / N_s
    ("ngl_ldhge", "Low dependence high grey level emphasis", "JA6D", "sjhge"),  # sum s_ij i^2 / j^2 / N_s
    ("ngl_hdlge", "High dependence low grey level emphasis", "NBZI", "ljlge"),  # sum s_ij j^2 / i^2 / N_s
    ("ngl_hdhge", "High dependence high grey level emphasis", "9QMG", "ljhge"),  # sum s_ij i^2 j^2 / N_s
    ("ngl_glnu", "Grey level non-uniformity", "FP8K", "glnu"),  # sum_i s_i.^2 / N_s
    ("ngl_glnu_norm", "Normalised grey level non-uniformity", "5SPA", "glnu_norm"),  # / N_s^2
    ("ngl_dcnu", "Dependence count non-uniformity", "Z87G", "jnu"),  # sum_j s_.j^2 / N_s
    ("ngl_dcnu_norm", "Normalised dependence count non-uniformity", "OKJI", "jnu_norm"),  # / N_s^2
    ("ngl_dc_perc", "Dependence count percentage", "6XV8", "perc"),  # N_s / N_v
    ("ngl_gl_var", "Grey level variance", "1PFV", "gl_var"),  # sum (i - mu)^2 p_ij
    ("ngl_dc_var", "Dependence count variance", "DNX2", "j_var"),  # sum (j - mu)^2 p_ij
    ("ngl_dc_entr", "Dependence count entropy", "FCBV", "j_entr"),  # -sum p_ij log2 p_ij
    ("ngl_dc_energy", "Dependence count energy", "CAS9", "j_energy"),  # sum p_ij^2
)
SPECS = texture_specs(FAMILY, [row[:3] for row in TABLE], ZONE_AGGREGATIONS)
FEATURES = {stem: texture.COUNT_FEATURES[generic] for stem, _, _, generic in TABLE}


def dependence_matrices(q: np.ndarray, n_g: int, distance: int, alpha: int, need_2d: bool, need_3d: bool):
    """NGLDM ``(counts, dependences)`` per k-slice (counts ``(n_k, n_g, n_j)``, in-plane
    neighbourhoods) and in 3D (counts ``(n_g, n_j)``); ``(None, None)`` when not needed.
    The 3D dependence is the in-plane one plus the out-of-plane neighbours, so the in-plane
    count is computed once."""
    roi = q > 0
    planar_count = texture.equal_neighbour_counts(q, distance, alpha, in_plane=True)
    level = q[roi]
    k = np.nonzero(roi)[0]
    n_k = q.shape[0]
    per_slice = volume = (None, None)
    if need_2d:
        per_slice = texture.count_matrix(level, planar_count[roi] + 1, k, n_g, n_k, True)
    if need_3d:
        full = texture.equal_neighbour_counts(q, distance, alpha, in_plane=False, planar=planar_count)
        volume = texture.count_matrix(level, full[roi] + 1, k, n_g, n_k, False)
    return per_slice, volume


def compute_from_discretised(q: np.ndarray, n_g: int, distance: int, alpha: int, tags: Iterable[str],
                             ) -> Dict[str, float]:
    """Requested NGLDM tags of a discretised ROI (``q``: levels 1..n_g, 0 outside)."""
    groups = texture.requested(tags, SPECS)
    roi = q > 0
    per_slice, volume = dependence_matrices(q, n_g, distance, alpha, "2D" in groups or "2_5D" in groups,
                                            "3D" in groups)
    n_v_slice = roi.sum(axis=(1, 2))
    out: Dict[str, float] = {}
    for aggregation, stems in groups.items():
        stack, n_v, j = texture.zone_aggregations(per_slice, volume, n_v_slice, float(roi.sum()), aggregation)
        out.update(texture.evaluate(FEATURES, texture.count_stats(stack, n_v, j), stems,
                                    stack.sum(axis=(-2, -1)) > 0))
    return out


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested NGLDM features of one ROI."""
    q, n_g, _ = ctx.texture_input  # cropped to the ROI box: same matrices, smaller arrays
    t = ctx.settings.texture
    return compute_from_discretised(q, n_g, t.ngldm_distance, t.ngldm_alpha, tags)
