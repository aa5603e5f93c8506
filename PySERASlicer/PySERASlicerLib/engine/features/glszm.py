r"""Grey level size zone matrix features (IBSI 3.8), aggregations ``_2D``, ``_2_5D``, ``_3D``.

Symbols (IBSI): a zone is a group of connected voxels with the same grey level, linked at
Chebyshev distance ``settings.texture.zone_distance`` (distance 1: 8-connected within a
k-slice for 2D/2.5D, 26-connected in 3D). :math:`s_{ij}` counts zones of grey level
:math:`i = 1..N_g` and size :math:`j` voxels; :math:`N_s = \sum s_{ij}` zones,
:math:`N_v` voxels in the intensity mask, :math:`s_{i.}`, :math:`s_{.j}` the marginal sums,
:math:`p_{ij} = s_{ij}/N_s`.

Aggregations: ``_2D`` (8QNN) features per k-slice, averaged over slices with ROI voxels;
``_2_5D`` (62GR) per-slice matrices summed (voxel counts summed too); ``_3D`` (KOBO) 3D zones.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional

import numpy as np

from .. import texture
from ..context import RoiContext
from ..registry import ZONE_AGGREGATIONS, texture_specs

FAMILY = "glszm"

#: (tag stem, IBSI name, IBSI code, generic feature of texture.COUNT_FEATURES)
TABLE = (
    ("szm_sze", "Small zone emphasis", "5QRC", "sje"),  # sum_j s_.j / j^2 / N_s
    ("szm_lze", "Large zone emphasis", "48P8", "lje"),  # sum_j s_.j j^2 / N_s
    ("szm_lgze", "Low grey level zone emphasis", "XMSY", "lge"),  # sum_i s_i. / i^2 / N_s
    ("szm_hgze", "High grey level zone emphasis", "5GN9", "hge"),  # sum_i s_i. i^2 / N_s
    ("szm_szlge", "Small zone low grey level emphasis", "5RAI", "sjlge"),  # sum s_ij / (i^2 j^2) / N_s
    ("szm_szhge", "Small zone high grey level emphasis", "HW1V", "sjhge"),  # sum s_ij i^2 / j^2 / N_s
    ("szm_lzlge", "Large zone low grey level emphasis", "YH51", "ljlge"),  # sum s_ij j^2 / i^2 / N_s
    ("szm_lzhge", "Large zone high grey level emphasis", "J17V", "ljhge"),  # sum s_ij i^2 j^2 / N_s
    ("szm_glnu", "Grey level non-uniformity", "JNSA", "glnu"),  # sum_i s_i.^2 / N_s
    ("szm_glnu_norm", "Normalised grey level non-uniformity", "Y1RO", "glnu_norm"),  # / N_s^2
    ("szm_zsnu", "Zone size non-uniformity", "4JP3", "jnu"),  # sum_j s_.j^2 / N_s
    ("szm_zsnu_norm", "Normalised zone size non-uniformity", "VB3A", "jnu_norm"),  # / N_s^2
    ("szm_z_perc", "Zone percentage", "P30P", "perc"),  # N_s / N_v
    ("szm_gl_var", "Grey level variance", "BYLV", "gl_var"),  # sum (i - mu)^2 p_ij
    ("szm_zs_var", "Zone size variance", "3NSA", "j_var"),  # sum (j - mu)^2 p_ij
    ("szm_zs_entr", "Zone size entropy", "GU8N", "j_entr"),  # -sum p_ij log2 p_ij
)
SPECS = texture_specs(FAMILY, [row[:3] for row in TABLE], ZONE_AGGREGATIONS)
FEATURES = {stem: texture.COUNT_FEATURES[generic] for stem, _, _, generic in TABLE}


def size_zone_matrix(zones: texture.Zones, n_g: int, n_k: int, per_slice: bool):
    """GLSZM ``(counts, sizes)``: counts ``(n_g, n_j)``, or ``(n_k, n_g, n_j)`` per k-slice, with
    one column per zone size that occurs (``sizes``)."""
    return texture.count_matrix(zones.level, zones.size, zones.k, n_g, n_k, per_slice)


def compute_from_discretised(q: np.ndarray, n_g: int, distance: int, tags: Iterable[str],
                             cache: Optional[dict] = None) -> Dict[str, float]:
    """Requested GLSZM tags of a discretised ROI (``q``: levels 1..n_g, 0 outside)."""
    groups = texture.requested(tags, SPECS)
    n_k = q.shape[0]
    roi = q > 0
    per_slice = volume = (None, None)
    if "2D" in groups or "2_5D" in groups:
        per_slice = size_zone_matrix(texture.zones(q, n_g, distance, True, cache), n_g, n_k, True)
    if "3D" in groups:
        volume = size_zone_matrix(texture.zones(q, n_g, distance, False, cache), n_g, n_k, False)
    n_v_slice = roi.sum(axis=(1, 2))
    out: Dict[str, float] = {}
    for aggregation, stems in groups.items():
        stack, n_v, j = texture.zone_aggregations(per_slice, volume, n_v_slice, float(roi.sum()), aggregation)
        out.update(texture.evaluate(FEATURES, texture.count_stats(stack, n_v, j), stems,
                                    stack.sum(axis=(-2, -1)) > 0))
    return out


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested GLSZM features of one ROI."""
    q, n_g, _ = ctx.texture_input  # cropped to the ROI box: same matrices, smaller arrays
    return compute_from_discretised(q, n_g, ctx.settings.texture.zone_distance, tags, ctx.cache())
