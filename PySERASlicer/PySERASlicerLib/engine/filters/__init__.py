"""IBSI-2 convolutional filters: each family a pure function ``Image -> Image`` (the response map
on the input grid, float64); :func:`apply_filter` runs a validated :class:`FilterSpec`.

Conventions (axis order, convolution, boundary conditions, rotation invariance, units) are in
docs/filters.md and :mod:`.common`.
"""

from __future__ import annotations

from typing import Any, Mapping, Union

from ...image import Image
from .spec import FilterSpec, FilterSpecError, default_label, parse_filter, parse_filters

__all__ = ["FilterSpec", "FilterSpecError", "apply_filter", "default_label", "parse_filter", "parse_filters"]


def apply_filter(image: Image, spec: Union[FilterSpec, Mapping[str, Any]]) -> Image:
    """The response map of ``image`` for one filter entry (validated with :func:`parse_filter`).
    The result has the input's geometry and a float64 array."""
    spec = parse_filter(spec)
    kind = spec.kind
    params = {k: v for k, v in spec.items() if k not in ("filter", "label")}
    if kind == "none":
        return image.with_array(image.array.astype("float64"))
    if kind == "mean":
        from .mean import mean_response as response
    elif kind == "log":
        from .log import log_response as response
    elif kind == "laws":
        from .laws import laws_response as response
    elif kind == "gabor":
        from .gabor import gabor_response as response
    elif kind == "wavelet":
        from .wavelet import wavelet_response as response
    elif kind == "simoncelli":
        from .simoncelli import simoncelli_response as response
    elif kind == "riesz_log":
        from .riesz import riesz_log_response as response
    else:
        from .riesz import riesz_simoncelli_response as response
    return response(image, **params)
