r"""Intensity-based statistical features (IBSI 3.3).

Symbols: :math:`X_{gl} = \{X_{gl,1}, \dots, X_{gl,N_v}\}` are the intensities of the
:math:`N_v` voxels in the intensity mask, :math:`\mu` their mean, :math:`P_{10}`,
:math:`P_{25}`, :math:`P_{75}`, :math:`P_{90}` percentiles (linear interpolation,
numpy's default, which reproduces the IBSI reference values).

The sample is the intensity mask of the resampled image (IBSI; PySERA ``radiomics_isQuntzStat``
= 1). With ``resampling.statistics_on_resampled`` False (``radiomics_isQuntzStat`` = 0) it is the
original image inside the original ROI, re-segmented the same way: interpolation does not touch
the intensities (PySERA's advice for PET).
"""

from __future__ import annotations

from typing import Dict, Iterable

import numpy as np

from ..context import RoiContext
from ..registry import volume_specs

FAMILY = "stat"

ROWS = (
    ("stat_mean", "Mean intensity", "Q4LE"),
    ("stat_var", "Intensity variance", "ECT3"),
    ("stat_skew", "Intensity skewness", "KE2A"),
    ("stat_kurt", "(Excess) intensity kurtosis", "IPH6"),
    ("stat_median", "Median intensity", "Y12H"),
    ("stat_min", "Minimum intensity", "1GSF"),
    ("stat_p10", "10th intensity percentile", "QG58"),
    ("stat_p90", "90th intensity percentile", "8DWT"),
    ("stat_max", "Maximum intensity", "84IY"),
    ("stat_iqr", "Intensity interquartile range", "SALO"),
    ("stat_range", "Intensity range", "2OJQ"),
    ("stat_mad", "Intensity-based mean absolute deviation", "4FUA"),
    ("stat_rmad", "Intensity-based robust mean absolute deviation", "1128"),
    ("stat_medad", "Intensity-based median absolute deviation", "N72L"),
    ("stat_cov", "Intensity-based coefficient of variation", "7TET"),
    ("stat_qcod", "Intensity-based quartile coefficient of dispersion", "9S40"),
    ("stat_energy", "Intensity-based energy", "N8CA"),
    ("stat_rms", "Root mean square intensity", "5ZWQ"),
)
SPECS = volume_specs(FAMILY, ROWS)


def _ratio(numerator: float, denominator: float) -> float:
    """IBSI leaves x/0 undefined: NaN, not an epsilon."""
    return float(numerator / denominator) if denominator != 0 else float("nan")


def statistics(x: np.ndarray) -> Dict[str, float]:
    """All 18 statistics of a 1D intensity sample (the formulas of IBSI 3.3).

    Examples
    --------
    >>> round(statistics(np.array([1.0, 2.0, 3.0, 4.0]))["stat_var"], 4)
    1.25
    """
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean()
    dev = x - mu
    var = float(np.mean(dev**2))  # [ECT3] population variance
    p10, p25, median, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    robust = x[(x >= p10) & (x <= p90)]
    return {
        "stat_mean": float(mu),  # [Q4LE] F = 1/N_v sum X
        "stat_var": var,
        "stat_skew": _ratio(np.mean(dev**3), var**1.5),  # [KE2A] m3 / m2^(3/2)
        "stat_kurt": _ratio(np.mean(dev**4), var**2) - 3.0 if var > 0 else float("nan"),  # [IPH6] m4/m2^2 - 3
        "stat_median": float(median),  # [Y12H]
        "stat_min": float(x.min()),  # [1GSF]
        "stat_p10": float(p10),  # [QG58]
        "stat_p90": float(p90),  # [8DWT]
        "stat_max": float(x.max()),  # [84IY]
        "stat_iqr": float(p75 - p25),  # [SALO] P75 - P25
        "stat_range": float(x.max() - x.min()),  # [2OJQ]
        "stat_mad": float(np.mean(np.abs(dev))),  # [4FUA] 1/N sum |X - mu|
        "stat_rmad": float(np.mean(np.abs(robust - robust.mean()))),  # [1128] MAD of P10..P90 subset
        "stat_medad": float(np.mean(np.abs(x - median))),  # [N72L] 1/N sum |X - median|
        "stat_cov": _ratio(np.sqrt(var), mu),  # [7TET] sigma / mu
        "stat_qcod": _ratio(p75 - p25, p75 + p25),  # [9S40] (P75-P25)/(P75+P25)
        "stat_energy": float(np.sum(x**2)),  # [N8CA] sum X^2
        "stat_rms": float(np.sqrt(np.mean(x**2))),  # [5ZWQ] sqrt(1/N sum X^2)
    }


def compute(ctx: RoiContext, tags: Iterable[str]) -> Dict[str, float]:
    """Requested statistics of the ROI's intensity mask."""
    original = ctx.cache().get("original_roi_intensities")
    if original is not None and not ctx.settings.resampling.statistics_on_resampled:
        from ..processing import resegmentation_interval

        lo, hi = resegmentation_interval(original, ctx.settings.resegmentation)
        x = original[(original >= lo) & (original <= hi)].astype(np.float64, copy=False)
    else:
        x = ctx.intensities
    wanted = list(tags)
    if x.size == 0:
        return {tag: float("nan") for tag in wanted}
    values = statistics(x)
    return {tag: values[tag] for tag in wanted}


#: Formula documentation per tag, for the docs and the docstring test.
FORMULAS: Dict[str, str] = {
    "stat_mean": "Q4LE: 1/N_v sum_k X_k",
    "stat_var": "ECT3: 1/N_v sum_k (X_k - mu)^2",
    "stat_skew": "KE2A: m3 / m2^(3/2) (central moments)",
    "stat_kurt": "IPH6: m4 / m2^2 - 3",
    "stat_median": "Y12H: median of X",
    "stat_min": "1GSF: min X",
    "stat_p10": "QG58: 10th percentile of X",
    "stat_p90": "8DWT: 90th percentile of X",
    "stat_max": "84IY: max X",
    "stat_iqr": "SALO: P75 - P25",
    "stat_range": "2OJQ: max X - min X",
    "stat_mad": "4FUA: 1/N_v sum |X_k - mu|",
    "stat_rmad": "1128: mean |X - mean| over X in [P10, P90]",
    "stat_medad": "N72L: 1/N_v sum |X_k - median|",
    "stat_cov": "7TET: sigma / mu",
    "stat_qcod": "9S40: (P75 - P25) / (P75 + P25)",
    "stat_energy": "N8CA: sum_k X_k^2",
    "stat_rms": "5ZWQ: sqrt(1/N_v sum_k X_k^2)",
}

