"""One filter of a run: its kind and parameters, validated, with the label its feature columns carry.

A :class:`FilterSpec` is a read-only ``dict`` (so it serialises to the settings JSON as written)
holding every parameter of its kind, defaults filled in. Parameter names follow the IBSI-2 test
descriptions (``support``, ``sigma_mm``, ``kernel``, ``energy_delta``, ``lambda_mm``, ``gamma``,
``theta_deg``, ``wavelet``, ``set``, ``level``, ``order``, ...); see docs/filters.md. This module
imports nothing heavy so that reading settings stays cheap.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

DIMENSIONS = ("2D", "3D")
BOUNDARIES = ("zero", "nearest", "periodic", "mirror")
POOLINGS = ("max", "mean")
LAWS_KERNELS = ("L3", "E3", "S3", "L5", "E5", "S5", "W5", "R5")

_REQUIRED = object()
_COMMON: Dict[str, Any] = {"dimensions": "3D", "boundary": "mirror", "label": None}
#: kind -> {parameter: default}; _REQUIRED marks parameters without a default.
KINDS: Dict[str, Dict[str, Any]] = {
    "none": {},
    "mean": {"support": _REQUIRED},
    "log": {"sigma_mm": _REQUIRED, "cutoff": 4.0},
    "laws": {"kernel": _REQUIRED, "rotation_invariant": False, "pooling": "max", "energy_delta": None},
    "gabor": {"sigma_mm": _REQUIRED, "lambda_mm": _REQUIRED, "gamma": 1.0, "theta_deg": 0.0,
              "rotation_invariant": False, "theta_step_deg": None},
    "wavelet": {"wavelet": _REQUIRED, "set": _REQUIRED, "level": 1, "rotation_invariant": False,
                "pooling": "mean"},
    "simoncelli": {"level": 1},
    "riesz_log": {"sigma_mm": _REQUIRED, "cutoff": 4.0, "order": _REQUIRED},
    "riesz_simoncelli": {"level": 1, "order": _REQUIRED},
}


class FilterSpecError(ValueError):
    """A filter entry that cannot be used; the message names the key (``filters[2].sigma_mm``)."""


class FilterSpec(dict):
    """A validated filter entry (read-only dict). Build with :func:`parse_filter`."""

    def _read_only(self, *args, **kwargs):
        raise TypeError("FilterSpec is read-only; build a new one with parse_filter")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _read_only

    def __hash__(self):
        return hash(tuple(sorted((k, repr(v)) for k, v in self.items())))

    def __reduce__(self):  # pickles (worker processes) as a plain dict, re-validated on load
        return (parse_filter, (dict(self),))

    @property
    def kind(self) -> str:
        return self["filter"]

    @property
    def label(self) -> str:
        return self["label"]


def _fail(key: str, value: Any, accepted: str) -> None:
    raise FilterSpecError(f"{key}: {value!r} is not accepted; expected {accepted}")


def _number(value: Any, key: str, minimum: float = None, strict: bool = True, integer: bool = False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        _fail(key, value, kind + bound)
    return int(value) if integer else float(value)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        _fail(key, value, "true or false")
    return value


def _choice(value: Any, choices: Sequence[str], key: str) -> str:
    matched = [c for c in choices if isinstance(value, str) and c.lower() == value.strip().lower()]
    if not matched:
        _fail(key, value, "one of " + ", ".join(choices))
    return matched[0]


def laws_components(kernel: str) -> List[str]:
    """"E5L5S5" -> ["E5", "L5", "S5"] (x, y, z)."""
    return re.findall(r"[A-Z]\d", kernel.upper())


def parse_filter(entry: Mapping[str, Any], key: str = "filter") -> FilterSpec:
    """Validate one filter entry (a mapping with a ``filter`` kind and its parameters) and fill in
    the defaults and the label. ``key`` names the entry in error messages."""
    if isinstance(entry, FilterSpec):
        return entry
    if not isinstance(entry, Mapping):
        raise FilterSpecError(f"{key}: expected a mapping with a 'filter' key, got {type(entry).__name__}")
    if "filter" not in entry:
        raise FilterSpecError(f"{key}.filter: missing; one of {', '.join(KINDS)}")
    kind = _choice(entry["filter"], tuple(KINDS), f"{key}.filter")
    defaults = dict(_COMMON, **KINDS[kind])
    unknown = sorted(set(entry) - set(defaults) - {"filter"})
    if unknown:
        raise FilterSpecError(
            f"unknown key(s) {', '.join(f'{key}.{u}' for u in unknown)} for filter {kind!r}; accepted: "
            f"{', '.join(sorted(defaults))}")
    values = dict(defaults)
    values.update({k: v for k, v in entry.items() if k != "filter"})
    missing = [name for name, value in values.items() if value is _REQUIRED]
    if missing:
        raise FilterSpecError(f"{key}: filter {kind!r} needs {', '.join(f'{key}.{m}' for m in missing)}")
    out: Dict[str, Any] = {"filter": kind}
    out["dimensions"] = _choice(values["dimensions"], DIMENSIONS, f"{key}.dimensions")
    out["boundary"] = _choice(values["boundary"], BOUNDARIES, f"{key}.boundary")
    n_axes = 2 if out["dimensions"] == "2D" else 3
    for name in KINDS[kind]:
        value, where = values[name], f"{key}.{name}"
        if name == "support":
            value = _number(value, where, 0, integer=True)
            if value % 2 == 0:
                _fail(where, value, "an odd number of voxels (the box is centred)")
        elif name in ("sigma_mm", "lambda_mm", "gamma", "cutoff"):
            value = _number(value, where, 0)
        elif name == "theta_deg":
            value = _number(value, where)
        elif name == "theta_step_deg":
            value = None if value is None else _number(value, where, 0)
        elif name == "energy_delta":
            value = None if value is None else _number(value, where, 0, strict=False, integer=True)
        elif name == "level":
            value = _number(value, where, 0, integer=True)
        elif name == "rotation_invariant":
            value = _bool(value, where)
        elif name == "pooling":
            value = _choice(value, POOLINGS, where)
        elif name == "kernel":
            parts = laws_components(value) if isinstance(value, str) else []
            if (not isinstance(value, str) or "".join(parts) != value.upper().replace(" ", "")
                    or len(parts) != n_axes or any(p not in LAWS_KERNELS for p in parts)):
                _fail(where, value, f"{n_axes} Laws kernels from {', '.join(LAWS_KERNELS)} (x first), "
                                    f"e.g. {'L5S5' if n_axes == 2 else 'E5L5S5'} for {out['dimensions']}")
            value = "".join(parts)
        elif name == "set":
            if not (isinstance(value, str) and len(value) == n_axes and set(value.upper()) <= {"L", "H"}):
                _fail(where, value, f"{n_axes} letters L/H (x first), e.g. {'LH' if n_axes == 2 else 'LHL'}")
            value = value.upper()
        elif name == "wavelet":
            from .wavelet import wavelet_filters  # checks that the taps are available

            if not isinstance(value, str):
                _fail(where, value, "a wavelet name such as haar, db2, coif1")
            value = value.strip().lower()
            try:
                wavelet_filters(value)
            except ValueError as exc:
                raise FilterSpecError(f"{where}: {exc}") from None
        elif name == "order":
            if (not isinstance(value, (list, tuple)) or len(value) != n_axes
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
                    or sum(value) == 0):
                _fail(where, value, f"{n_axes} non-negative integers (x first), not all 0, e.g. [1, 0, 0]")
            value = tuple(int(v) for v in value)
        out[name] = value
    if kind == "gabor" and out["rotation_invariant"] and out["theta_step_deg"] is None:
        raise FilterSpecError(f"{key}.theta_step_deg: needed when {key}.rotation_invariant is true")
    label = values["label"]
    if label is None:
        label = default_label(out)
    elif not (isinstance(label, str) and re.fullmatch(r"[A-Za-z0-9_.\-]+", label)):
        _fail(f"{key}.label", label, "letters, digits, '_', '.' or '-'")
    out["label"] = label
    return FilterSpec(out)


def parse_filters(entries: Optional[Iterable[Any]], key: str = "filters") -> Tuple[FilterSpec, ...]:
    """Validate a list of filter entries; labels must be unique (they name feature columns)."""
    if entries is None:
        return ()
    if isinstance(entries, (str, bytes)) or isinstance(entries, Mapping) or not isinstance(entries, Iterable):
        raise FilterSpecError(f"{key}: expected a list of filter entries, got {type(entries).__name__}")
    specs = tuple(parse_filter(entry, f"{key}[{n}]") for n, entry in enumerate(entries))
    seen: Dict[str, int] = {}
    for n, spec in enumerate(specs):
        if spec.label in seen:
            raise FilterSpecError(
                f"{key}[{n}].label: {spec.label!r} is already the label of {key}[{seen[spec.label]}]; "
                f"give one of them another 'label'")
        seen[spec.label] = n
    return specs


def compact_entry(spec: FilterSpec) -> Dict[str, Any]:
    """The entry without the parameters at their default (and without a default label):
    ``parse_filter(compact_entry(spec)) == spec``."""
    defaults = dict(_COMMON, **KINDS[spec.kind])
    compact = {"filter": spec.kind}
    compact.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()
                    if k not in ("filter", "label") and defaults[k] != v})
    if spec.label != default_label(spec):
        compact["label"] = spec.label
    return compact


def _g(value: float) -> str:
    return f"{value:g}"


def default_label(spec: Mapping[str, Any]) -> str:
    """The column suffix of a filter's features; scheme in docs/filters.md. Parameters in mm are
    written as given (``log_s1.5`` = sigma 1.5 mm); ``_ri`` marks rotation invariance, a suffix
    ``_2D`` 2D filtering and ``_<boundary>`` a boundary other than mirror."""
    kind = spec["filter"]
    if kind == "none":
        parts = ["none"]
    elif kind == "mean":
        parts = ["mean", f"m{spec['support']}"]
    elif kind == "log":
        parts = ["log", f"s{_g(spec['sigma_mm'])}"] + ([] if spec["cutoff"] == 4 else [f"c{_g(spec['cutoff'])}"])
    elif kind == "laws":
        parts = ["laws", spec["kernel"].lower()]
        if spec["rotation_invariant"]:
            parts.append("ri" if spec["pooling"] == "max" else "rimean")
        if spec["energy_delta"] is not None:
            parts.append(f"e{spec['energy_delta']}")
    elif kind == "gabor":
        parts = ["gabor", f"s{_g(spec['sigma_mm'])}", f"l{_g(spec['lambda_mm'])}", f"g{_g(spec['gamma'])}"]
        parts.append(f"dt{_g(spec['theta_step_deg'])}" if spec["rotation_invariant"] else f"t{_g(spec['theta_deg'])}")
    elif kind == "wavelet":
        parts = ["wavelet", spec["wavelet"], spec["set"].lower(), f"l{spec['level']}"]
        if spec["rotation_invariant"]:
            parts.append("ri" if spec["pooling"] == "mean" else "rimax")
    elif kind == "simoncelli":
        parts = ["simoncelli", f"l{spec['level']}"]
    elif kind == "riesz_log":
        parts = ["riesz_log", f"s{_g(spec['sigma_mm'])}", "o" + "".join(str(v) for v in spec["order"])]
    else:
        parts = ["riesz_simoncelli", f"l{spec['level']}", "o" + "".join(str(v) for v in spec["order"])]
    if kind != "none" and spec["dimensions"] == "2D":
        parts.append("2D")
    if kind != "none" and spec["boundary"] != "mirror":
        parts.append(spec["boundary"])
    return "_".join(parts)
