"""PySERASlicerLib: the IBSI radiomics engine of the PySERA extension for 3D Slicer.

Public API (PySERA-compatible)::

    from PySERASlicerLib import process_batch
    result = process_batch("image.nii.gz", "mask.nii.gz", "./results")

Runs without Slicer; the Slicer module is a thin layer on top. Importing the package is cheap:
numpy, pandas and the engine load on first use (``Image`` on first access, the engine on the
first ``process_batch`` call).
"""

from __future__ import annotations

from .api import process_batch, run_batch_csv  # noqa: E402  (light: the signature and docs; the work is imported on call)
from .settings import Settings, SettingsError, preset_settings  # noqa: E402
from .version import __version__  # noqa: E402


def __getattr__(name: str):
    # PEP 562: Image needs numpy, which `import PySERASlicerLib` must not pay for.
    if name == "Image":
        from .image import Image

        return Image
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def apply_filter(image, filter):
    """The IBSI-2 response map (an :class:`Image`, float64, same grid) of ``image`` (a path, an
    array or an Image) for one filter entry such as ``{"filter": "log", "sigma_mm": 1.5}``;
    see docs/filters.md and :func:`PySERASlicerLib.engine.filters.apply_filter`."""
    from .engine.filters import apply_filter as _apply_filter
    from .io.readers import read_image

    return _apply_filter(read_image(image), filter)


__all__ = ["Image", "apply_filter", "Settings", "SettingsError", "preset_settings", "process_batch", "run_batch_csv",
           "__version__"]
