"""Per-ROI state shared by the feature families: processed image, masks, derived arrays.

A :class:`RoiContext` is built once per ROI by :func:`PySERASlicerLib.engine.processing.prepare_roi`
(the IBSI processing chain) and handed to every family's ``compute``. Costly derived
quantities (the discretised image, ROI intensities) are computed on first use and shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, List, Tuple

import numpy as np

from ..image import Image
from ..settings import Settings
from .bounding_box import bounding_box
from .discretisation import discretise


@dataclass(eq=False)
class RoiContext:
    """State of one ROI after the IBSI processing chain.

    image : processed image (interpolated, rounded), cropped around the ROI; float64, (k, j, i).
    morph_mask : bool (k, j, i); the morphological mask (interpolated, never re-segmented).
    int_mask : bool (k, j, i); the intensity mask (morphological mask after re-segmentation).
    settings : the run settings.
    diagnostics : IBSI diagnostic values collected by the processing stages (``img_dim_x_init_img``...).
    warnings : non-fatal problems worth a Report row.
    """

    image: Image
    morph_mask: np.ndarray
    int_mask: np.ndarray
    settings: Settings
    diagnostics: Dict[str, float] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    @property
    def spacing(self) -> Tuple[float, float, float]:
        """Voxel size (i, j, k) in mm."""
        return self.image.spacing

    @cached_property
    def intensities(self) -> np.ndarray:
        """Intensities of the voxels in the intensity mask (1D float64)."""
        return self.image.array[self.int_mask].astype(np.float64, copy=False)

    @cached_property
    def discretised(self) -> Tuple[np.ndarray, int]:
        """``(q, n_g)``: bins 1..n_g inside the intensity mask and 0 outside, plus the number of bins."""
        return discretise(self.image.array, self.int_mask, self.settings.discretisation, self.settings.resegmentation)

    @cached_property
    def texture_input(self) -> Tuple[np.ndarray, int, np.ndarray]:
        """``(q, n_g, morph_mask)`` cropped to the bounding box of the morphological mask, for the
        texture families. The processed image keeps a margin for the local intensity peaks, which
        texture matrices never read (``q`` is 0 there), so the crop changes no value but
        halves the arrays. The morphological mask's box (not the intensity mask's) keeps the
        GLDZM border distances exact; an empty intensity mask gives an all-zero ``q``."""
        q, n_g = self.discretised
        box = bounding_box(self.morph_mask)
        return np.ascontiguousarray(q[box]), n_g, np.ascontiguousarray(self.morph_mask[box])

    def cache(self) -> Dict[str, Any]:
        """A dict for family-specific derived data shared between families (e.g. texture matrices)."""
        return self.__dict__.setdefault("_shared_cache", {})
