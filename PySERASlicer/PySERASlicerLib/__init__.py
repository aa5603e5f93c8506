"""PySERASlicerLib: the IBSI radiomics engine of the PySERA extension for 3D Slicer.

Public API (PySERA-compatible)::

    from PySERASlicerLib import process_batch
    result = process_batch("image.nii.gz", "mask.nii.gz", "./results")

Runs without Slicer; the Slicer module is a thin layer on top.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .settings import Settings, SettingsError, preset_settings  # noqa: E402


def __getattr__(name: str):
    # Image needs numpy: importing the package stays cheap until it is used (PEP 562)
    if name == "Image":
        from .image import Image

        return Image
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def process_batch(*args, **kwargs):
    """PySERA's ``process_batch``; see :func:`PySERASlicerLib.batch.process_batch`."""
    from .batch import process_batch as _process_batch

    return _process_batch(*args, **kwargs)


__all__ = ["Image", "Settings", "SettingsError", "preset_settings", "process_batch", "__version__"]
