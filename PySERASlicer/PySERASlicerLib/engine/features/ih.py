r"""Intensity-histogram features (IBSI 3.4), on the discretised intensity mask.

Symbols: :math:`X_{d} = \{X_{d,1}, \dots, X_{d,N_v}\}` are the bin numbers (1..N_g) of the
:math:`N_v` voxels in the intensity mask (same discretisation as texture, IBSI 2.7),
:math:`H_i` the number of voxels in bin :math:`i`, :math:`p_i = H_i / N_v`. The first 16
features are the intensity statistics of :mod:`.stat` applied to :math:`X_d` (same percentile
rule); mode, entropy, uniformity and the histogram gradients are specific to the histogram.
The gradient is :math:`H'_1 = H_2 - H_1`, :math:`H'_i = (H_{i+1} - H_{i-1})/2`,
:math:`H'_{N_g} = H_{N_g} - H_{N_g-1}` over bins 1..N_g (``numpy.gradient``).
"""

from __future__ import annotations

from typing import Dict, Iterable

import numpy as np

from ..context import RoiContext
from ..registry import volume_specs
from .stat import statistics_of_counts

FAMILY = "ih"

ROWS = (
    ("ih_mean", "Mean discretised intensity", "X6K6"),
    ("ih_var", "Discretised intensity variance", "CH89"),
    ("ih_skew", "Discretised intensity skewness", "88K1"),
    ("ih_kurt", "(Excess) discretised intensity kurtosis", "C3I7"),
    ("ih_median", "Median discretised intensity", "WIFQ"),
    ("ih_min", "Minimum discretised intensity", "1PR8"),
    ("ih_p10", "10th discretised intensity percentile", "1PR8"),
    ("ih_p90", "90th discretised intensity percentile", "GPMT"),
    ("ih_max", "Maximum discretised intensity", "3NCY"),
    ("ih_mode", "Intensity histogram mode", "AMMC"),
    ("ih_iqr", "Discretised intensity interquartile range", "WR0O"),
    ("ih_range", "Discretised intensity range", "5Z3W"),
    ("ih_mad", "Intensity histogram mean absolute deviation", "D2ZX"),
    ("ih_rmad", "Intensity histogram robust mean absolute deviation", "WRZB"),
    ("ih_medad", "Intensity histogram median absolute deviation", "4RNL"),
    ("ih_cov", "Intensity histogram coefficient of variation", "CWYJ"),
    ("ih_qcod", "Intensity histogram quartile coefficient of dispersion", "SLWD"),
    ("ih_entropy", "Discretised intensity entropy", "TLU2"),
    ("ih_uniformity", "Discretised intensity uniformity", "BJ5W"),
    ("ih_max_grad", "Maximum histogram gradient", "12CE"),
    ("ih_max_grad_g", "Maximum histogram gradient intensity", "8E6O"),
    ("ih_min_grad", "Minimum histogram gradient", "VQB3"),
    ("ih_min_grad_g", "Minimum histogram gradient intensity", "RHQZ"),
)
SPECS = volume_specs(FAMILY, ROWS)

#: ih tags that are the intensity statistic of the same name on the bin numbers.
_FROM_STAT = ("mean", "var", "skew", "kurt", "median", "min", "p10", "p90", "max", "iqr", "range", "mad",
              "rmad", "medad", "cov", "qcod")


def histogram_features(bins: np.ndarray, n_g: int) -> Dict[str, float]:
    """All 23 features of the bin numbers ``bins`` (1D ints in 1..n_g).

    Examples
    --------
    >>> histogram_features(np.array([1, 1, 2, 3]), 3)["ih_mode"]
    1.0
    """
    counts = np.bincount(bins, minlength=n_g + 1)[1:].astype(np.float64)
    present = np.flatnonzero(counts)
    # the statistics of the bin numbers from their histogram (no pass over the voxels)
    stats = statistics_of_counts(present + 1.0, counts[present])
    out = {f"ih_{name}": stats[f"stat_{name}"] for name in _FROM_STAT}
    p = counts / counts.sum()
    # [AMMC] most frequent bin; ties are resolved by the bin closest to the mean (IBSI).
    candidates = np.flatnonzero(counts == counts.max()) + 1
    out["ih_mode"] = float(candidates[np.argmin(np.abs(candidates - stats["stat_mean"]))])
    nz = p[p > 0]
    out["ih_entropy"] = float(-(nz * np.log2(nz)).sum())  # [TLU2] -sum p log2 p
    out["ih_uniformity"] = float((p**2).sum())  # [BJ5W] sum p^2
    if counts.size >= 2:
        grad = np.gradient(counts)  # central differences inside, one-sided at both ends
        out["ih_max_grad"] = float(grad.max())  # [12CE]
        out["ih_max_grad_g"] = float(np.argmax(grad) + 1)  # [8E6O] first bin with the maximum
        out["ih_min_grad"] = float(grad.min())  # [VQB3]
        out["ih_min_grad_g"] = float(np.argmin(grad) + 1)  # [RHQZ]
    else:  # one bin: IBSI leaves the gradient undefined
        for key in ("ih_max_grad", "ih_max_grad_g", "ih_min_grad", "ih_min_grad_g"):
            out[key] = float("nan")
    return out


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested intensity-histogram features of the ROI's discretised intensity mask."""
    wanted = list(tags)
    q, n_g = ctx.discretised
    bins = q[ctx.int_mask]
    if bins.size == 0:
        return {tag: float("nan") for tag in wanted}
    values = histogram_features(bins, n_g)
    return {tag: values[tag] for tag in wanted}
