"""One ROI through the whole handcrafted-feature path: processing chain, then each selected family.

The families of one ROI may run on two threads (numpy and scipy release the GIL in their heavy
calls): the calling thread and one helper thread take the ROI's work items (:func:`work_items`:
one per family, Moran's I / Geary's C apart from the rest of the morphology, the GLSZM and GLDZM
together since they share the zones) from one list, costliest first (:data:`COST_ORDER`), each
taking the next one when it is done, so the two threads stay balanced whatever the selection.
The lazily built inputs the families share (intensities, discretised image) are built before
the helper starts. Results do not depend on the split. ``threads`` of :func:`extract_roi`
chooses; its default (:func:`default_threads`) is ``min(2, cores)``, 1 inside a
``multiprocessing`` child, and the environment variable ``PYSERA_ROI_THREADS`` (an integer >= 1)
overrides both; the batch pool sets it for its workers to the cores each one has (1 with as many
workers as cores).
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
from .registry import FeatureSpec, family_module, group_by_family, select, select_named

#: progress(step_name) is called before each family, for progress bars (always from the calling thread).
StepCallback = Optional[Callable[[str], None]]

#: Environment variable overriding the default number of threads per ROI (an integer >= 1).
ROI_THREADS_ENV = "PYSERA_ROI_THREADS"
#: Work items, costliest first (the order both threads take them in; measured on a 32,000-voxel
#: CT lesion): the morphology without Moran's I / Geary's C (mesh, hull, bounding box,
#: ellipsoids), then those two, then the zones, local intensity peaks (FFT convolution), runs...;
#: names as :func:`work_items` gives them.
COST_ORDER = ("morph", "morph_autocorrelation", "glszm+gldzm", "ip", "glrlm", "glcm", "diag", "ngldm",
              "ngtdm", "mi", "ivh", "ih", "stat")
#: Families reading the discretised texture box, the discretised image, or the intensities (built
#: before the threads start, so that no two threads build them at once).
_TEXTURE_FAMILIES = ("glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")

_pool: Optional[ThreadPoolExecutor] = None
_pool_lock = threading.Lock()


@dataclass
class RoiResult:
    """Feature values of one ROI (in registry order) and the warnings raised on the way."""

    values: Dict[str, float]
    warnings: List[str] = field(default_factory=list)


def selected_specs(settings: Settings) -> Sequence[FeatureSpec]:
    """The registry entries the settings select: their ``features`` where given, else their
    categories x dimensions."""
    if settings.features:
        return select_named(settings.features)
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


#: A work item: its name and its (family, tags) pairs, computed one after the other.
WorkItem = Tuple[str, List[Tuple[str, List[str]]]]


def work_items(groups: Dict[str, List[str]]) -> List[WorkItem]:
    """``[(name, [(family, tags), ...]), ...]`` in :data:`COST_ORDER`: one item per family, except
    Moran's I / Geary's C (a third of the morphology's cost, needing neither mesh nor hull) on
    their own and the GLSZM with the GLDZM (the zones are built once, for both)."""
    from .features.morph import AUTOCORRELATION_TAGS

    items: Dict[str, List[Tuple[str, List[str]]]] = {}
    for family, tags in groups.items():
        if family == "morph":
            rest = [t for t in tags if t not in AUTOCORRELATION_TAGS]
            autocorrelation = [t for t in tags if t in AUTOCORRELATION_TAGS]
            if rest:
                items["morph"] = [("morph", rest)]
            if autocorrelation:
                items["morph_autocorrelation"] = [("morph", autocorrelation)]
        else:
            items.setdefault("glszm+gldzm" if family in ("glszm", "gldzm") else family, []).append((family, tags))
    rank = {name: index for index, name in enumerate(COST_ORDER)}
    return sorted(items.items(), key=lambda item: rank.get(item[0], len(rank)))


def _run_item(ctx, item: List[Tuple[str, List[str]]]) -> Dict[str, float]:
    values: Dict[str, float] = {}
    # an undefined feature (0/0 on a one-voxel or constant ROI) is NaN and reported once per ROI
    # by undefined_features_warning, not as a numpy warning per division (errstate is per thread)
    with np.errstate(divide="ignore", invalid="ignore"):
        for family, tags in item:
            values.update(family_module(family).compute(ctx, tags))
    return values


def _build_shared_inputs(ctx, groups: Dict[str, List[str]]) -> None:
    """Build the lazily computed inputs that families of both threads read."""
    if any(family in groups for family in _TEXTURE_FAMILIES):
        ctx.texture_input  # noqa: B018 (cached_property: builds the discretised image too)
    elif "ih" in groups or "ivh" in groups:
        ctx.discretised  # noqa: B018
    if "stat" in groups or "ivh" in groups:
        ctx.intensities  # noqa: B018


def _run_shared(ctx, groups: Dict[str, List[str]], items: List[WorkItem], on_step: StepCallback) -> Dict[str, float]:
    """Both threads take the :func:`work_items` of ``groups`` from one list until it is empty;
    progress names every family from the calling thread, those the helper took when the calling
    thread next looks."""
    lock = threading.Lock()
    taken: List[str] = []  # families in the order the two threads took them
    reported: Dict[str, None] = {}

    def next_item():
        with lock:
            if not items:
                return None
            _, item = items.pop(0)
            taken.extend(family for family, _ in item)
            return item

    def helper() -> Dict[str, float]:
        values: Dict[str, float] = {}
        item = next_item()
        while item is not None:
            values.update(_run_item(ctx, item))
            item = next_item()
        return values

    _build_shared_inputs(ctx, groups)
    future = _helper_pool().submit(helper)
    values: Dict[str, float] = {}
    try:
        while True:
            item = next_item()
            if on_step:
                with lock:
                    new = [family for family in taken if family not in reported]
                for family in dict.fromkeys(new):
                    reported[family] = None
                    on_step(family)
            if item is None:
                break
            values.update(_run_item(ctx, item))
    except BaseException:
        with lock:  # the helper stops after its current item
            items.clear()
        raise
    finally:
        wait([future])  # the helper never outlives this call
    values.update(future.result())  # re-raises the helper's exception, if any
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
    threads : 1 computes the families one after the other; 2 or more shares them with a helper
        thread (see the module docstring); default :func:`default_threads`.
    box : (k, j, i) slices of the image grid that ``roi_mask`` covers (e.g. ``Roi.box``), so
        that nothing but the box is read (see :func:`.processing.prepare_roi`).
    """
    specs = selected_specs(settings) if specs is None else specs
    ctx = prepare_roi(image, roi_mask, settings, box=box)
    groups = group_by_family(specs)
    items = work_items(groups) if (default_threads() if threads is None else threads) > 1 else []
    if len(items) > 1:
        values = _run_shared(ctx, groups, items, on_step)
    else:
        values = {}
        for family, tags in groups.items():
            if on_step:
                on_step(family)
            values.update(_run_item(ctx, [(family, tags)]))
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
