r"""Grey level run length matrix features (IBSI 3.7), in all six aggregations.

Symbols (IBSI): :math:`r_{ij}` counts runs (maximal sequences of consecutive voxels with the
same grey level along one direction) of grey level :math:`i = 1..N_g` and length
:math:`j = 1..N_r`. :math:`N_s = \sum_{ij} r_{ij}` is the number of runs and
:math:`N_v = \sum_{ij} j\,r_{ij}` the number of voxels (for merged matrices, the voxel count
times the number of merged matrices, as IBSI prescribes); :math:`r_{i.} = \sum_j r_{ij}`,
:math:`r_{.j} = \sum_i r_{ij}`, :math:`p_{ij} = r_{ij}/N_s`.

Directions as for the GLCM (4 in-plane per k-slice for 2D/2.5D, 13 in 3D); runs are made of
directly adjacent voxels (IBSI defines no distance for runs). Aggregations as in
:mod:`.glcm`: ``_2D_avg`` (BTW3), ``_2D_comb`` (SUJT), ``_2_5D_avg`` (JJUI), ``_2_5D_comb``
(ZW7Z), ``_3D_avg`` (ITBB), ``_3D_comb`` (IAZD); empty matrices are skipped when averaging.
"""

from __future__ import annotations

from typing import Dict, Iterable

import numpy as np

from .. import texture
from ..context import RoiContext
from ..registry import MATRIX_AGGREGATIONS, texture_specs
from .glcm import aggregated_matrices

FAMILY = "glrlm"

#: (tag stem, IBSI name, IBSI code, generic count-matrix feature of texture.COUNT_FEATURES)
TABLE = (
    ("rlm_sre", "Short runs emphasis", "22OV", "sje"),  # sum_j r_.j / j^2 / N_s
    ("rlm_lre", "Long runs emphasis", "W4KF", "lje"),  # sum_j r_.j j^2 / N_s
    ("rlm_lgre", "Low grey level run emphasis", "V3SW", "lge"),  # sum_i r_i. / i^2 / N_s
    ("rlm_hgre", "High grey level run emphasis", "G3QZ", "hge"),  # sum_i r_i. i^2 / N_s
    ("rlm_srlge", "Short run low grey level emphasis", "HTZT", "sjlge"),  # sum r_ij / (i^2 j^2) / N_s
    ("rlm_srhge", "Short run high grey level emphasis", "GD3A", "sjhge"),  # sum r_ij i^2 / j^2 / N_s
    ("rlm_lrlge", "Long run low grey level emphasis", "IVPO", "ljlge"),  # sum r_ij j^2 / i^2 / N_s
    ("rlm_lrhge", "Long run high grey level emphasis", "3KUM", "ljhge"),  # sum r_ij i^2 j^2 / N_s
    ("rlm_glnu", "Grey level non-uniformity", "R5YN", "glnu"),  # sum_i r_i.^2 / N_s
    ("rlm_glnu_norm", "Normalised grey level non-uniformity", "OVBL", "glnu_norm"),  # sum_i r_i.^2 / N_s^2
    ("rlm_rlnu", "Run length non-uniformity", "W92Y", "jnu"),  # sum_j r_.j^2 / N_s
    ("rlm_rlnu_norm", "Normalised run length non-uniformity", "IC23", "jnu_norm"),  # sum_j r_.j^2 / N_s^2
    ("rlm_r_perc", "Run percentage", "9ZK5", "perc"),  # N_s / N_v
    ("rlm_gl_var", "Grey level variance", "8CE5", "gl_var"),  # sum (i - mu)^2 p_ij
    ("rlm_rl_var", "Run length variance", "SXLW", "j_var"),  # sum (j - mu)^2 p_ij
    ("rlm_rl_entr", "Run entropy", "HJ9O", "j_entr"),  # -sum p_ij log2 p_ij
)
SPECS = texture_specs(FAMILY, [row[:3] for row in TABLE], MATRIX_AGGREGATIONS)
FEATURES = {stem: texture.COUNT_FEATURES[generic] for stem, _, _, generic in TABLE}


def compute_from_discretised(q: np.ndarray, n_g: int, tags: Iterable[str]) -> Dict[str, float]:
    """Requested GLRLM tags of a discretised ROI (``q``: levels 1..n_g, 0 outside)."""
    groups = texture.requested(tags, SPECS)
    need_2d = any(a.startswith("2") for a in groups)
    need_3d = any(a.startswith("3") for a in groups)
    m2, m3, lengths = texture.glrlm_stacks(q, n_g, need_2d, need_3d)
    out: Dict[str, float] = {}
    for aggregation, stems in groups.items():
        stack = aggregated_matrices(m2, m3, aggregation)
        stack = stack[stack.sum(axis=(-2, -1)) > 0]
        n_v = (stack * lengths).sum(axis=(-2, -1))
        out.update(texture.evaluate(FEATURES, texture.count_stats(stack, n_v, lengths), stems,
                                    np.ones(stack.shape[0], dtype=bool)))
    return out


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested GLRLM features of one ROI."""
    q, n_g, _ = ctx.texture_input  # cropped to the ROI box: same matrices, smaller arrays
    return compute_from_discretised(q, n_g, tags)
