"""One ROI through the whole handcrafted-feature path: processing chain, then each selected family."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..image import Image
from ..settings import Settings
from .processing import prepare_roi
from .registry import FeatureSpec, family_module, group_by_family, select

#: progress(step_name) is called before each family, for progress bars.
StepCallback = Optional[Callable[[str], None]]


@dataclass
class RoiResult:
    """Feature values of one ROI (in registry order) and the warnings raised on the way."""

    values: Dict[str, float]
    warnings: List[str] = field(default_factory=list)


def selected_specs(settings: Settings) -> Sequence[FeatureSpec]:
    """The registry entries the settings' categories x dimensions select."""
    return select(settings.categories, settings.dimensions)


def extract_roi(image: Image, roi_mask: np.ndarray, settings: Settings,
                specs: Optional[Sequence[FeatureSpec]] = None, on_step: StepCallback = None) -> RoiResult:
    """Compute the selected features of one ROI.

    Parameters
    ----------
    image : the full image (any dtype); geometry in LPS.
    roi_mask : bool/0-1 array on the image grid (k, j, i).
    settings : run settings.
    specs : features to compute; default: those selected by ``settings``.
    on_step : called with a family name before that family runs.
    """
    specs = selected_specs(settings) if specs is None else specs
    ctx = prepare_roi(image, roi_mask, settings)
    values: Dict[str, float] = {}
    for family, tags in group_by_family(specs).items():
        if on_step:
            on_step(family)
        values.update(family_module(family).compute(ctx, tags))
    ordered = {spec.tag: values.get(spec.tag, float("nan")) for spec in specs}
    return RoiResult(ordered, list(ctx.warnings))
