"""Write an :class:`~PySERASlicerLib.image.Image` to a file (NIfTI, NRRD, MHA, ... by extension)."""

from __future__ import annotations

import os
from typing import Union

import numpy as np

from ..image import Image


def write_image(image: Image, path: Union[str, os.PathLike]) -> str:
    """Write ``image`` with its geometry (LPS, as ITK) to ``path``, float64 as float32; ``.npy``
    writes the bare array.
    Returns the path written. Raises OSError / ValueError naming the path on failure."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(f"{path}: folder {folder} does not exist")
    if path.lower().endswith(".npy"):
        np.save(path, image.array)
        return path
    import SimpleITK as sitk

    array = image.array
    if array.dtype == np.float64:  # response maps: float32 keeps 7 digits at half the size
        array = array.astype(np.float32)
    sitk_image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    sitk_image.SetSpacing(tuple(float(s) for s in image.spacing))
    sitk_image.SetOrigin(tuple(float(o) for o in image.origin))
    sitk_image.SetDirection(tuple(float(d) for d in np.asarray(image.direction).ravel()))
    try:
        sitk.WriteImage(sitk_image, path, True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: cannot write image ({str(exc).strip().splitlines()[-1]})") from None
    return path
