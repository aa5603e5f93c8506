r"""Intensity-volume histogram features (IBSI 4.1).

The IVH is built on a set of intensity points :math:`X_1 < \dots < X_{N}` with a constant step
(the total range). For each point, the **volume fraction** is
:math:`\nu_i = 1 - \frac{1}{N_v}\#\{\text{voxels with intensity} < X_i\}` and the
**intensity fraction** is :math:`\gamma_i = (X_i - X_1) / (X_N - X_1)`. Then

* :math:`V_x` [BC2M] = the largest :math:`\nu_i` among points with :math:`\gamma_i \ge x`,
* :math:`I_x` [GBPN] = the lowest :math:`X_i` with :math:`\nu_i \le x`; when no point qualifies,
  one step above the top of the range,
* ``ivh_diff_v10_v90`` [DDTU] = :math:`V_{10} - V_{90}`,
  ``ivh_diff_i10_i90`` [CNV2] = :math:`I_{10} - I_{90}`,
* ``ivh_auc`` [9CMM, area under the IVH curve, removed from later IBSI versions; kept for
  PySERA] = :math:`\int_0^1 \nu\,d\gamma` by the trapezoidal rule over the points.

How intensities become points is chosen by :class:`~PySERASlicerLib.settings.IVHSettings`
(PySERA ``radiomics_IVH_Type`` / ``radiomics_IVH_DiscCont`` / ``radiomics_IVH_binSize``):

* type 0 ("definite" intensities, CT/PET), discrete: the intensities themselves, step 1; total
  range = the re-segmentation range when one is set (IBSI A, B), else the intensity-mask
  minimum to maximum (D, digital phantom).
* type 0, continuous: fixed bin size ``bin_size`` from x_min (range lower bound, else ROI
  minimum); each voxel gets its bin centre x_min + (b - 0.5) w; step w; total range from the
  first bin centre x_min + w/2 to the centre of the bin that holds x_max (range upper bound,
  else ROI maximum) (IBSI C). For C this is 401.25 HU (bin 561 holds 400 HU), as MIRP, whose
  output reproduces the IBSI values; the manual's text gives x_max - w/2 = 398.75 instead.
* type 1 ("arbitrary" units, MR/SPECT): fixed bin number with ``bin_size`` bins over the
  intensity-mask minimum and maximum; bin numbers 1..N are the points (PySERA's type 1).
* type 2: fixed bin number with 1000 bins, points 1..1000 (IBSI E).
* type 3: the discretisation of the texture/intensity-histogram features; points 1..N_g.
"""

from __future__ import annotations

from typing import Dict, Iterable, Tuple

import numpy as np

from ...settings import IVHSettings, ResegmentationSettings
from ..context import RoiContext
from ..registry import volume_specs

FAMILY = "ivh"

ROWS = (
    ("ivh_v10", "Volume fraction at 10% intensity", "BC2M"),
    ("ivh_v90", "Volume fraction at 90% intensity", "BC2M"),
    ("ivh_i10", "Intensity at 10% volume", "GBPN"),
    ("ivh_i90", "Intensity at 90% volume", "GBPN"),
    ("ivh_diff_v10_v90", "Volume fraction difference between intensity fractions", "DDTU"),
    ("ivh_diff_i10_i90", "Intensity fraction difference between volume fractions", "CNV2"),
    ("ivh_auc", "Area under the IVH curve", "9CMM"),
)
SPECS = volume_specs(FAMILY, ROWS)


def _fbn(values: np.ndarray, n_bins: int) -> np.ndarray:
    lo, hi = values.min(), values.max()
    if hi <= lo:
        return np.ones(values.shape)
    return np.minimum(np.floor(n_bins * (values - lo) / (hi - lo)) + 1, n_bins)


def ivh_points(ctx: RoiContext) -> Tuple[np.ndarray, float, float, float]:
    """``(x, first, last, step)``: per-voxel IVH intensities and the total range, per settings."""
    ivh: IVHSettings = ctx.settings.ivh
    reseg: ResegmentationSettings = ctx.settings.resegmentation
    values = ctx.intensities
    if ivh.ivh_type == 0:
        lo = reseg.range_lower if reseg.range_enabled else float(values.min())
        hi = reseg.range_upper if reseg.range_enabled else float(values.max())
        if not ivh.continuous:
            return np.rint(values), float(np.rint(lo)), float(np.rint(hi)), 1.0
        w = ivh.bin_size
        bins = np.floor((values - lo) / w) + 1
        top = np.floor((hi - lo) / w) + 1
        return lo + (bins - 0.5) * w, lo + 0.5 * w, float(lo + (top - 0.5) * w), w
    if ivh.ivh_type == 1:
        n_bins = max(int(round(ivh.bin_size)), 1)
        return _fbn(values, n_bins), 1.0, float(n_bins), 1.0
    if ivh.ivh_type == 2:
        return _fbn(values, 1000), 1.0, 1000.0, 1.0
    q, n_g = ctx.discretised
    return q[ctx.int_mask].astype(np.float64), 1.0, float(n_g), 1.0


def ivh_features(x: np.ndarray, first: float, last: float, step: float) -> Dict[str, float]:
    """The seven IVH features of per-voxel intensities ``x`` over the range [first, last].

    Examples
    --------
    >>> round(ivh_features(np.array([1.0, 1.0, 2.0, 3.0]), 1.0, 3.0, 1.0)["ivh_v10"], 3)
    0.5
    """
    n_points = int(round((last - first) / step)) + 1
    points = first + step * np.arange(n_points)
    # nu_i = share of voxels with intensity >= X_i (IBSI: 1 - share below X_i)
    below = np.searchsorted(np.sort(x), points - 1e-9 * step, side="right")
    nu = 1.0 - below / x.size
    span = last - first
    gamma = (points - first) / span if span > 0 else np.zeros(n_points)

    def v_at(fraction: float) -> float:
        kept = nu[gamma >= fraction]
        return float(kept.max()) if kept.size else 0.0

    def i_at(fraction: float) -> float:
        kept = np.flatnonzero(nu <= fraction)
        return float(points[kept[0]]) if kept.size else float(last + step)

    v10, v90, i10, i90 = v_at(0.10), v_at(0.90), i_at(0.10), i_at(0.90)
    auc = float(np.sum(0.5 * (nu[1:] + nu[:-1]) * np.diff(gamma))) if n_points > 1 else float("nan")
    return {
        "ivh_v10": v10, "ivh_v90": v90, "ivh_i10": i10, "ivh_i90": i90,
        "ivh_diff_v10_v90": v10 - v90, "ivh_diff_i10_i90": i10 - i90, "ivh_auc": auc,
    }


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested IVH features of the ROI's intensity mask."""
    wanted = list(tags)
    if ctx.intensities.size == 0:
        return {tag: float("nan") for tag in wanted}
    values = ivh_features(*ivh_points(ctx))
    return {tag: values[tag] for tag in wanted}
