r"""Grey level distance zone matrix features (IBSI 3.9), aggregations ``_2D``, ``_2_5D``, ``_3D``.

Symbols (IBSI): zones as for the GLSZM (:mod:`.glszm`, shared per ROI). The distance of a
voxel to the ROI border is the number of taxicab (4-connected in 2D, 6-connected in 3D)
steps to the nearest voxel outside the **morphological** mask, border voxels having distance 1;
the distance of a zone is the minimum over its voxels. :math:`d_{ij}` counts zones of grey level
:math:`i` and distance :math:`j`; :math:`N_s` zones, :math:`N_v` voxels in the intensity
mask, :math:`p_{ij} = d_{ij}/N_s`.

Aggregations: ``_2D`` (8QNN; in-plane zones and in-plane distances, features averaged over
slices), ``_2_5D`` (62GR; per-slice matrices summed), ``_3D`` (KOBO).
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional

import numpy as np

from .. import texture
from ..context import RoiContext
from ..registry import ZONE_AGGREGATIONS, texture_specs

FAMILY = "gldzm"

#: (tag stem, IBSI name, IBSI code, generic feature of texture.COUNT_FEATURES)
TABLE = (
    ("dzm_sde", "Small distance emphasis", "0GBI", "sje"),  # sum_j d_.j / j^2 / N_s
    ("dzm_lde", "Large distance emphasis", "MB4I", "lje"),  # sum_j d_.j j^2 / N_s
    ("dzm_lgze", "Low grey level zone emphasis", "S1RA", "lge"),  # sum_i d_i. / i^2 / N_s
    ("dzm_hgze", "High grey level zone emphasis", "K26C", "hge"),  # sum_i d_i. i^2 / N_s
    ("dzm_sdlge", "Small distance low grey level emphasis", "RUVG", "sjlge"),  # sum d_ij / (i^2 j^2) / N_s
    ("dzm_sdhge", "Small distance high grey level emphasis", "DKNJ", "sjhge"),  # sum d_ij i^2 / j^2 / N_s
    ("dzm_ldlge", "Large distance low grey level emphasis", "A7WM", "ljlge"),  # sum d_ij j^2 / i^2 / N_s
    ("dzm_ldhge", "Large distance high grey level emphasis", "KLTH", "ljhge"),  # sum d_ij i^2 j^2 / N_s
    ("dzm_glnu", "Grey level non-uniformity", "VFT7", "glnu"),  # sum_i d_i.^2 / N_s
    ("dzm_glnu_norm", "Normalised grey level non-uniformity", "7HP3", "glnu_norm"),  # / N_s^2
    ("dzm_zdnu", "Zone distance non-uniformity", "V294", "jnu"),  # sum_j d_.j^2 / N_s
    ("dzm_zdnu_norm", "Normalised zone distance non-uniformity", "IATH", "jnu_norm"),  # / N_s^2
    ("dzm_z_perc", "Zone percentage", "VIWW", "perc"),  # N_s / N_v
    ("dzm_gl_var", "Grey level variance", "QK93", "gl_var"),  # sum (i - mu)^2 p_ij
    ("dzm_zd_var", "Zone distance variance", "7WT1", "j_var"),  # sum (j - mu)^2 p_ij
    ("dzm_zd_entr", "Zone distance entropy", "GBDU", "j_entr"),  # -sum p_ij log2 p_ij
)
SPECS = texture_specs(FAMILY, [row[:3] for row in TABLE], ZONE_AGGREGATIONS)
FEATURES = {stem: texture.COUNT_FEATURES[generic] for stem, _, _, generic in TABLE}


def distance_zone_matrix(zones: texture.Zones, morph_mask: np.ndarray, n_g: int, per_slice: bool):
    """GLDZM ``(counts, distances)``: counts ``(n_g, n_j)``, or ``(n_k, n_g, n_j)`` per k-slice,
    with one column per zone distance that occurs (``distances``)."""
    distance_map = texture.border_distance(morph_mask, in_plane=per_slice)
    distance = texture.zone_min(distance_map, zones.labels, zones.n_zones)
    # Intensity-mask voxels always lie in the morphological mask, so every zone has distance >= 1.
    return texture.count_matrix(zones.level, distance, zones.k, n_g, morph_mask.shape[0], per_slice)


def compute_from_discretised(q: np.ndarray, n_g: int, morph_mask: np.ndarray, distance: int, tags: Iterable[str],
                             cache: Optional[dict] = None) -> Dict[str, float]:
    """Requested GLDZM tags of a discretised ROI (``q``: levels 1..n_g, 0 outside) whose
    morphological mask is ``morph_mask``."""
    groups = texture.requested(tags, SPECS)
    roi = q > 0
    per_slice = volume = (None, None)
    if "2D" in groups or "2_5D" in groups:
        per_slice = distance_zone_matrix(texture.zones(q, n_g, distance, True, cache), morph_mask, n_g, True)
    if "3D" in groups:
        volume = distance_zone_matrix(texture.zones(q, n_g, distance, False, cache), morph_mask, n_g, False)
    n_v_slice = roi.sum(axis=(1, 2))
    out: Dict[str, float] = {}
    for aggregation, stems in groups.items():
        stack, n_v, j = texture.zone_aggregations(per_slice, volume, n_v_slice, float(roi.sum()), aggregation)
        out.update(texture.evaluate(FEATURES, texture.count_stats(stack, n_v, j), stems,
                                    stack.sum(axis=(-2, -1)) > 0))
    return out


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested GLDZM features of one ROI."""
    q, n_g, morph_mask = ctx.texture_input  # cropped to the morphological mask's box: same distances
    return compute_from_discretised(q, n_g, morph_mask, ctx.settings.texture.zone_distance, tags, ctx.cache())
