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

import math
from typing import Dict, Iterable, Optional, Tuple

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
    counted = _value_counts(x)
    if counted is not None:
        return statistics_of_counts(*counted)
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


def _value_counts(x: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``(values, counts)`` of the distinct values of ``x`` (ascending) when they are integers in
    a range not much wider than the sample (CT in HU, bin numbers), else None. A few hundred
    distinct values then carry every statistic, instead of a dozen passes over the sample."""
    if x.size < 64:
        return None
    lo, hi = float(x.min()), float(x.max())
    if not (hi - lo <= 2 * x.size + 4096):  # also False for NaN
        return None
    shifted = np.subtract(x, lo)
    ints = shifted.astype(np.intp)
    if not np.array_equal(ints, shifted):  # not integer-valued
        return None
    counts = np.bincount(ints)
    present = np.flatnonzero(counts)
    return present.astype(np.float64) + lo, counts[present].astype(np.float64)


def _order_statistic(cumulative: np.ndarray, values: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The ``rank``-th smallest sample values (0-based) from ascending values and cumulative counts."""
    return values[np.searchsorted(cumulative, rank, side="right")]


def statistics_of_counts(values: np.ndarray, counts: np.ndarray) -> Dict[str, float]:
    """:func:`statistics` of a sample given as distinct ascending ``values`` with their ``counts``
    (the same formulas as weighted sums; percentiles as numpy's default linear interpolation
    between the order statistics at rank ``q (N - 1)``)."""
    n = float(counts.sum())
    mu = float((counts * values).sum()) / n
    dev = values - mu
    wdev2 = counts * dev * dev
    var = float(wdev2.sum()) / n
    m3 = float((wdev2 * dev).sum()) / n
    m4 = float((wdev2 * dev * dev).sum()) / n
    cumulative = np.cumsum(counts)
    position = np.array([10.0, 25.0, 50.0, 75.0, 90.0]) / 100.0 * (n - 1)
    below = np.floor(position)
    a = _order_statistic(cumulative, values, below)
    b = _order_statistic(cumulative, values, np.minimum(below + 1, n - 1))
    t = position - below
    diff = b - a
    # numpy's _lerp: a + (b - a) t, or b - (b - a)(1 - t) from t = 0.5 on
    p10, p25, median, p75, p90 = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    robust = (values >= p10) & (values <= p90)
    r_values, r_counts = values[robust], counts[robust]
    r_mean = float((r_counts * r_values).sum()) / float(r_counts.sum())
    lo, hi = float(values[0]), float(values[-1])
    energy = float((counts * values * values).sum())
    return {
        "stat_mean": mu,
        "stat_var": var,
        "stat_skew": _ratio(m3, var**1.5),
        "stat_kurt": _ratio(m4, var**2) - 3.0 if var > 0 else float("nan"),
        "stat_median": float(median),
        "stat_min": lo,
        "stat_p10": float(p10),
        "stat_p90": float(p90),
        "stat_max": hi,
        "stat_iqr": float(p75 - p25),
        "stat_range": hi - lo,
        "stat_mad": float((counts * np.abs(dev)).sum()) / n,
        "stat_rmad": float((r_counts * np.abs(r_values - r_mean)).sum()) / float(r_counts.sum()),
        "stat_medad": float((counts * np.abs(values - median)).sum()) / n,
        "stat_cov": _ratio(math.sqrt(var), mu),
        "stat_qcod": _ratio(p75 - p25, p75 + p25),
        "stat_energy": energy,
        "stat_rms": math.sqrt(energy / n),
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

