"""Types shared by every io module: the input error and the ROI-mask container.

They sit below :mod:`.readers`, :mod:`.dicom`, :mod:`.rtstruct`, :mod:`.seg` and
:mod:`.geometry`, so that those modules import them without importing each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Union

import numpy as np

from ..image import Image

Source = Union[str, os.PathLike, np.ndarray, Image]


class InputError(ValueError):
    """Bad input data; the message names the file/case and the problem."""


@dataclass
class MaskData:
    """ROI definitions on an image's grid.

    labels : integer label map (k, j, i) on the image grid (NIfTI/NRRD/NumPy masks), or None.
    named : structure name -> bool mask on the image grid (RTSTRUCT, DICOM SEG, Slicer segments).
        Values may be memory-mapped ``.npy`` files (RTSTRUCT masks cached in the temporary folder).
    sources : ROI name -> where it was read from (DICOM SEG: file, segment number and label),
        listed in the Report so that every segment read can be traced.
    """

    labels: Optional[np.ndarray] = None
    named: Dict[str, np.ndarray] = field(default_factory=dict)
    sources: Dict[str, str] = field(default_factory=dict)
