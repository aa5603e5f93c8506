"""Which optional Python packages a run needs, and which are missing, without importing them.

Slicer bundles numpy, scipy, SimpleITK and pydicom (the engine needs nothing else), but not
pandas and openpyxl (DataFrames, batch runs, Excel export) nor torch/torchvision (deep features).
Slicer's guidance is to install such packages right before first use, after asking, with
lower bounds only. This module decides *what* is missing; the widget does the asking
(``slicer.util.confirmOkCancelDisplay``) and the installing (``slicer.util.pip_install``, or
the PyTorch extension's ``PyTorchUtils`` for torch, which picks the right CUDA build).

Checks use :func:`importlib.util.find_spec` and :func:`importlib.metadata.version`, so a
missing or old package is found without importing it (importing torch takes seconds, and an
imported package cannot be upgraded without restarting Slicer).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

try:  # Python >= 3.8
    from importlib import metadata as _metadata
except ImportError:  # pragma: no cover
    _metadata = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Requirement:
    """A package the module may need: import name, distribution name, lower bound, purpose."""

    module: str
    distribution: str
    minimum: str
    purpose: str
    torch: bool = False  # installed through PyTorchUtils when the PyTorch extension is present

    @property
    def pip(self) -> str:
        """Requirement string for pip: lower bound only (never pin inside Slicer)."""
        return f"{self.distribution}>={self.minimum}"


PANDAS = Requirement("pandas", "pandas", "1.5", "DataFrames, batch runs and Excel reports")
OPENPYXL = Requirement("openpyxl", "openpyxl", "3.0", "Excel export")
TORCH = Requirement("torch", "torch", "2.1", "deep features", torch=True)
TORCHVISION = Requirement("torchvision", "torchvision", "0.16", "deep features (pretrained CNNs)", torch=True)
# Not in REQUIREMENTS (the panel's list): only a batch with a scheduler address needs it.
DISTRIBUTED = Requirement("distributed", "distributed", "2023.1", "batches on a Dask cluster")

#: Every optional requirement, in installation order.
REQUIREMENTS: Tuple[Requirement, ...] = (PANDAS, OPENPYXL, TORCH, TORCHVISION)


@dataclass(frozen=True)
class Missing:
    """A requirement that is not satisfied, and why."""

    requirement: Requirement
    installed: Optional[str]  # version found, None when not installed
    imported: bool  # already imported in this process: an upgrade needs a restart

    @property
    def reason(self) -> str:
        if self.installed is None:
            return "not installed"
        return f"version {self.installed} < {self.requirement.minimum}"

    def describe(self) -> str:
        return f"{self.requirement.distribution} ({self.requirement.purpose}): {self.reason}"


def needed(deep: bool = False, excel: bool = True, frame: bool = True, cluster: bool = False) -> List[Requirement]:
    """Requirements of a run: pandas when the results become a DataFrame (console ``extract``,
    batch runs, Excel export; ``frame=False`` for the GUI's run, which fills the table node from
    plain rows), openpyxl for Excel output, torch/torchvision for deep features, distributed for
    a batch on a Dask cluster."""
    wanted = [PANDAS] if frame or excel else []
    if excel:
        wanted.append(OPENPYXL)
    if deep:
        wanted += [TORCH, TORCHVISION]
    if cluster:
        wanted.append(DISTRIBUTED)
    return wanted


def needed_for_settings(settings, excel: bool = True, frame: bool = True,
                        cluster: bool = False) -> List[Requirement]:
    """Requirements for a :class:`Settings` (deep features when ``extraction_mode`` is deep)."""
    from .settings import ExtractionMode

    return needed(deep=settings.extraction_mode == ExtractionMode.DEEP, excel=excel, frame=frame, cluster=cluster)


def find_spec(module: str):
    """``importlib.util.find_spec`` that answers None instead of raising for broken parents."""
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def installed_version(distribution: str) -> Optional[str]:
    """Version of an installed distribution, read from its metadata (no import)."""
    if _metadata is None:
        return None
    try:
        return _metadata.version(distribution)
    except _metadata.PackageNotFoundError:
        return None


def version_tuple(version: str) -> Tuple[int, ...]:
    """Leading numeric release parts: ``"2.1.0+cu121"`` -> ``(2, 1, 0)``, ``"1.26rc1"`` -> ``(1, 26)``."""
    parts = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):
            break
    return tuple(parts)


def satisfies(version: str, minimum: str) -> bool:
    have, want = version_tuple(version), version_tuple(minimum)
    width = max(len(have), len(want))
    return have + (0,) * (width - len(have)) >= want + (0,) * (width - len(want))


def missing(requirements: Sequence[Requirement],
            spec_finder: Callable[[str], object] = find_spec,
            version_reader: Callable[[str], Optional[str]] = installed_version) -> List[Missing]:
    """The requirements that are not installed, or installed below their lower bound.

    A module that is importable but has no distribution metadata (e.g. vendored) counts as
    installed: we cannot tell its version and must not reinstall over it.
    """
    result = []
    for requirement in requirements:
        spec = spec_finder(requirement.module)
        version = version_reader(requirement.distribution)
        imported = requirement.module in sys.modules
        if spec is None:
            result.append(Missing(requirement, None, imported))
        elif version is not None and not satisfies(version, requirement.minimum):
            result.append(Missing(requirement, version, imported))
    return result


def pip_requirements(items: Sequence[Missing], include_torch: bool = True) -> List[str]:
    """Requirement strings to pass to ``slicer.util.pip_install`` (lower bounds only)."""
    return [m.requirement.pip for m in items if include_torch or not m.requirement.torch]


def torch_items(items: Sequence[Missing]) -> List[Missing]:
    return [m for m in items if m.requirement.torch]


def torch_version_requirement() -> str:
    """Version requirement handed to ``PyTorchUtilsLogic.installTorch``."""
    return f">={TORCH.minimum}"


def needs_restart(items: Sequence[Missing]) -> bool:
    """True when an already imported package has to be upgraded (Slicer must restart)."""
    return any(m.imported and m.installed is not None for m in items)


def confirmation_text(items: Sequence[Missing]) -> str:
    """Question shown before installing (the widget passes it to confirmOkCancelDisplay)."""
    lines = [m.describe() for m in items]
    text = ("PySERA needs these Python packages:\n\n  " + "\n  ".join(lines)
            + "\n\nInstall them now? (pip install " + " ".join(m.requirement.pip for m in items)
            + "; this may take a few minutes.)")
    if needs_restart(items):
        text += "\n\nAn already loaded package is upgraded: restart Slicer afterwards."
    return text


def status_text(requirements: Sequence[Requirement] = REQUIREMENTS,
                spec_finder: Callable[[str], object] = find_spec,
                version_reader: Callable[[str], Optional[str]] = installed_version) -> str:
    """One line for the module panel: what is missing and what it is for ("" when nothing is)."""
    items = missing(requirements, spec_finder, version_reader)
    if not items:
        return ""
    return ("Not yet available: " + "; ".join(m.describe() for m in items)
            + ". They are installed on first use, after asking.")
