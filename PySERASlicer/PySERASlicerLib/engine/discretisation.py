"""Discretisation of ROI intensities into grey levels (IBSI 2.7): FBS, FBN, Lloyd-Max, none.

Used by :class:`~PySERASlicerLib.engine.context.RoiContext` on first use, below the
processing chain (:mod:`.processing`) that builds the context.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from ..settings import DiscretisationMethod, DiscretisationSettings, Quantiser, ResegmentationSettings


def lloyd_max_thresholds(values: np.ndarray, n_levels: int, max_iterations: int = 100) -> np.ndarray:
    """Inner decision thresholds (``n_levels - 1``) of a Lloyd-Max quantiser for ``values``.

    Starts from ``n_levels`` uniform bins over [min, max]; then alternates (1) each level = the
    mean of the values in its bin (an empty bin keeps its previous level) and (2) each threshold
    = the midpoint of the neighbouring levels, until the thresholds stop moving. This minimises
    the mean squared quantisation error (Lloyd 1982, Max 1960).
    """
    lo, hi = float(values.min()), float(values.max())
    if n_levels < 2 or hi <= lo:
        return np.empty(0)
    edges = np.linspace(lo, hi, n_levels + 1)
    levels = 0.5 * (edges[:-1] + edges[1:])
    thresholds = edges[1:-1]
    for _ in range(max_iterations):
        index = np.searchsorted(thresholds, values, side="right")
        counts = np.bincount(index, minlength=n_levels)
        sums = np.bincount(index, weights=values, minlength=n_levels)
        levels = np.where(counts > 0, sums / np.maximum(counts, 1), levels)
        new = 0.5 * (levels[:-1] + levels[1:])
        if np.allclose(new, thresholds, rtol=0, atol=1e-9 * (hi - lo)):
            thresholds = new
            break
        thresholds = new
    return thresholds


def discretise(image: np.ndarray, int_mask: np.ndarray, settings: DiscretisationSettings,
               resegmentation: ResegmentationSettings) -> Tuple[np.ndarray, int]:
    """Bins 1..n_g inside ``int_mask`` (0 outside) and n_g (IBSI 2.7).

    n_g is the highest bin present in the ROI, for every method: IBSI's N_g is "the number of
    discretised grey levels", and the digital phantom's reference values (levels 1, 3, 4, 6 ->
    N_g = 6) fix it as the highest level present, not the count of levels nor the bin of the
    re-segmentation upper bound. Empty levels below it keep their matrix rows.

    * FBS [IBSI Q3RU]: ``floor((x - x_min) / w) + 1``; x_min is the lower bound of the
      re-segmentation range when a range is set, else the ROI minimum.
    * FBN [IBSI K15C], uniform quantiser: ``floor(N (x - min) / (max - min)) + 1`` with the ROI
      maximum put in bin N; min and max over the intensity mask.
    * FBN with the Lloyd-Max quantiser (``quantiser = Lloyd``, PySERA ``radiomics_qntz``):
      N bins whose edges minimise the mean squared error (:func:`lloyd_max_thresholds`);
      bin b holds the values between thresholds b-1 and b.
    * NONE: intensities are already bin numbers (rounded to integers).
    """
    values = image[int_mask]
    q = np.zeros(image.shape, dtype=np.int32)
    if values.size == 0:
        return q, 0
    method = settings.method
    if method == DiscretisationMethod.FBS:
        x_min = resegmentation.range_lower if resegmentation.range_enabled else values.min()
        bins = np.floor((values - x_min) / settings.bin_width).astype(np.int64) + 1
        bins = np.maximum(bins, 1)
    elif method == DiscretisationMethod.FBN:
        lo, hi = values.min(), values.max()
        n_bins = settings.bin_number
        if hi <= lo:
            bins = np.ones(values.shape, dtype=np.int64)
        elif settings.quantiser == Quantiser.LLOYD:
            thresholds = lloyd_max_thresholds(values.astype(np.float64), n_bins)
            bins = np.searchsorted(thresholds, values, side="right").astype(np.int64) + 1
        else:
            bins = np.floor(n_bins * (values - lo) / (hi - lo)).astype(np.int64) + 1
            bins = np.minimum(bins, n_bins)
    else:
        bins = np.rint(values).astype(np.int64)
        if bins.min() < 1:
            raise ValueError("discretisation NONE needs intensities >= 1 (they are used as bin numbers)")
    q[int_mask] = bins
    return q, int(bins.max())
