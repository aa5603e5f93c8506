"""One ROI through the whole handcrafted-feature path: processing chain, then each selected family.

The families of one ROI may run on two threads (numpy and scipy release the GIL in their heavy
calls): the morphological family and the other families that read only the processed image and
masks (:data:`SIDE_FAMILIES`) run in a helper thread while the rest run in the calling thread.
Results do not depend on the split. ``threads`` of :func:`extract_roi` chooses; its default
(:func:`default_threads`) is ``min(2, cores)``, 1 inside a ``multiprocessing`` child, and the
environment variable ``PYSERA_ROI_THREADS`` (an integer >= 1) overrides both; the batch pool
sets it for its workers to the cores each one has (1 with as many workers as cores).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..image import Image
from ..settings import Settings
from .processing import prepare_roi
from .registry import FeatureSpec, family_module, group_by_family, select

#: progress(step_name) is called before each family, for progress bars (always from the calling thread).
StepCallback = Optional[Callable[[str], None]]

#: Environment variable overriding the default number of threads per ROI (an integer >= 1).
ROI_THREADS_ENV = "PYSERA_ROI_THREADS"
#: Families that read only the processed image, the masks and the spacing (no lazily built
#: shared state of the context), so they may run in the helper thread.
SIDE_FAMILIES = ("morph", "ip", "mi")

_pool: Optional[ThreadPoolExecutor] = None
_pool_lock = threading.Lock()


@dataclass
class RoiResult:
    """Feature values of one ROI (in registry order) and the warnings raised on the way."""

    values: Dict[str, float]
    warnings: List[str] = field(default_factory=list)


def selected_specs(settings: Settings) -> Sequence[FeatureSpec]:
    """The registry entries the settings' categories x dimensions select."""
    return select(settings.categories, settings.dimensions)


def default_threads() -> int:
    """Threads per ROI when :func:`extract_roi` is not told: ``PYSERA_ROI_THREADS`` if set, else 1
    in a ``multiprocessing`` child (a pool worker: its siblings use the other cores), else
    ``min(2, os.cpu_count())``."""
    value = os.environ.get(ROI_THREADS_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"{ROI_THREADS_ENV}: {value!r} is not an integer >= 1") from None
    if multiprocessing.parent_process() is not None:
        return 1
    return min(2, os.cpu_count() or 1)


def _helper_pool() -> ThreadPoolExecutor:
    """The one helper thread, started on first use and kept (a thread start costs more than a
    small family)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pysera-roi")
        return _pool


def _run_families(ctx, groups: Dict[str, List[str]], on_step: StepCallback) -> Dict[str, float]:
    values: Dict[str, float] = {}
    # an undefined feature (0/0 on a one-voxel or constant ROI) is NaN and reported once per ROI
    # by undefined_features_warning, not as a numpy warning per division
    with np.errstate(divide="ignore", invalid="ignore"):
        for family, tags in groups.items():
            if on_step:
                on_step(family)
            values.update(family_module(family).compute(ctx, tags))
    return values


def undefined_features_warning(values: Dict[str, float], ctx) -> Optional[str]:
    """One Report message naming every feature of the ROI that is undefined (NaN), with the
    likely reason; None when every feature has a value."""
    undefined = [tag for tag, value in values.items() if isinstance(value, float) and math.isnan(value)]
    if not undefined:
        return None
    voxels = int(np.count_nonzero(ctx.int_mask))
    if voxels <= 1:
        reason = f"the intensity mask has {voxels} voxel(s)"
    elif np.ptp(ctx.intensities) == 0:
        reason = "every voxel of the ROI has the same intensity"
    else:
        reason = "the ROI is too small or too uniform for them"
    return (f"{len(undefined)} feature(s) undefined for this ROI ({reason}; NaN, or 0 with feature_value_mode "
            f"APPROXIMATE_VALUE): " + ", ".join(undefined))


def extract_roi(image: Image, roi_mask: np.ndarray, settings: Settings,
                specs: Optional[Sequence[FeatureSpec]] = None, on_step: StepCallback = None,
                threads: Optional[int] = None, box: Optional[Tuple[slice, slice, slice]] = None) -> RoiResult:
    """Compute the selected features of one ROI.

    Parameters
    ----------
    image : the full image (any dtype); geometry in LPS.
    roi_mask : bool/0-1 array on the image grid (k, j, i), or on the ``box`` of it only.
    settings : run settings.
    specs : features to compute; default: those selected by ``settings``.
    on_step : called with a family name before that family runs (from the calling thread).
    threads : 1 computes the families one after the other; 2 or more runs :data:`SIDE_FAMILIES`
        in a helper thread meanwhile; default :func:`default_threads`.
    box : (k, j, i) slices of the image grid that ``roi_mask`` covers (e.g. ``Roi.box``), so
        that nothing but the box is read (see :func:`.processing.prepare_roi`).
    """
    specs = selected_specs(settings) if specs is None else specs
    ctx = prepare_roi(image, roi_mask, settings, box=box)
    groups = group_by_family(specs)
    side = {family: tags for family, tags in groups.items() if family in SIDE_FAMILIES}
    main = {family: tags for family, tags in groups.items() if family not in SIDE_FAMILIES}
    if (default_threads() if threads is None else threads) > 1 and side and main:
        for family in side:  # progress is reported from the calling thread only
            if on_step:
                on_step(family)
        # Moran's I / Geary's C (a third of the morphology) in the calling thread: it balances
        # the two threads' work
        autocorrelation: List[str] = []
        if "morph" in side:
            from .features.morph import AUTOCORRELATION_TAGS

            autocorrelation = [t for t in side["morph"] if t in AUTOCORRELATION_TAGS]
        if autocorrelation:
            side["morph"] = [t for t in side["morph"] if t not in AUTOCORRELATION_TAGS]
            if not side["morph"]:
                del side["morph"]
        future = _helper_pool().submit(_run_families, ctx, side, None)
        try:
            values = _run_families(ctx, main, on_step)
            if autocorrelation:
                values.update(family_module("morph").compute(ctx, autocorrelation))
        finally:
            wait([future])  # the helper never outlives this call
        values.update(future.result())  # re-raises the helper's exception, if any
    else:
        values = _run_families(ctx, groups, on_step)
    ordered = {spec.tag: values.get(spec.tag, float("nan")) for spec in specs}
    warnings = list(ctx.warnings)
    if settings.filters:  # IBSI-2 filtered-image features after the original image's
        from .filters.features import filtered_features

        if on_step:
            on_step("filters")
        filter_values, filter_warnings = filtered_features(image, roi_mask, settings, box)
        ordered.update(filter_values)
        warnings.extend(filter_warnings)
    undefined = undefined_features_warning(ordered, ctx)  # filtered features included
    if undefined:
        warnings.append(undefined)
    return RoiResult(ordered, warnings)
