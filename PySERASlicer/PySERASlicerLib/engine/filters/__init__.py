"""IBSI-2 convolutional filters: each family a pure function ``Image -> Image`` (the response map
on the input grid, float64); :func:`apply_filter` runs a validated :class:`FilterSpec`.

Conventions (axis order, convolution, boundary conditions, rotation invariance, units) are in
docs/filters.md and :mod:`.common`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Union

from .spec import FilterSpec, FilterSpecError, default_label, parse_filter, parse_filters

if TYPE_CHECKING:  # the package is imported by the settings validation: it stays numpy-free
    from ...image import Image

__all__ = ["FilterSpec", "FilterSpecError", "apply_filter", "default_label", "parse_filter", "parse_filters",
           "response_function"]


def response_function(kind: str) -> Callable[..., Image]:
    """The family function of a filter kind (its keyword arguments are the entry's parameters);
    imported on first use."""
    from importlib import import_module

    module, name = _FUNCTIONS[kind]
    return getattr(import_module(f".{module}", __name__), name)


_FUNCTIONS = {
    "mean": ("mean", "mean_response"), "log": ("log", "log_response"), "laws": ("laws", "laws_response"),
    "gabor": ("gabor", "gabor_response"), "wavelet": ("wavelet", "wavelet_response"),
    "simoncelli": ("simoncelli", "simoncelli_response"), "riesz_log": ("riesz", "riesz_log_response"),
    "riesz_simoncelli": ("riesz", "riesz_simoncelli_response"),
}


def apply_filter(image: Image, spec: Union[FilterSpec, Mapping[str, Any]]) -> Image:
    """The response map of ``image`` for one filter entry (validated with :func:`parse_filter`).
    The result has the input's geometry and a float64 array."""
    spec = parse_filter(spec)
    if spec.kind == "none":
        return image.with_array(image.array.astype("float64"))
    params = {k: v for k, v in spec.items() if k not in ("filter", "label")}
    return response_function(spec.kind)(image, **params)
