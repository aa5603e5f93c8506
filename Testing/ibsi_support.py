"""IBSI-1 conformance helpers shared by the conformance tests and scripts/ibsi_conformance.py.

Reference values live in Testing/Data/ibsi (copied from the IBSI; see its README).
Comparison rule (IBSI / MIRP): round the computed value to 3 significant digits, then
accept when |rounded - reference| <= tolerance.
"""

from __future__ import annotations

import csv
import math
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Dict, List

import numpy as np
import SimpleITK as sitk
from PySERASlicerLib import process_batch
from PySERASlicerLib.engine.pipeline import extract_roi
from PySERASlicerLib.engine.registry import select
from PySERASlicerLib.image import Image
from PySERASlicerLib.settings import preset_settings

DATA = Path(__file__).resolve().parent / "Data" / "ibsi"
DIGITAL_PHANTOM = DATA / "ibsi_1_digital_phantom" / "nifti"
CT_PHANTOM = DATA / "ibsi_1_ct_radiomics_phantom" / "nifti"

#: configuration name in the CSV -> (preset, image file, mask file)
CONFIGURATIONS = {
    "digital_phantom": ("digital_phantom", DIGITAL_PHANTOM / "image" / "phantom.nii.gz",
                        DIGITAL_PHANTOM / "mask" / "mask.nii.gz"),
    "A": ("ibsi_A", CT_PHANTOM / "image" / "phantom.nii.gz", CT_PHANTOM / "mask" / "mask.nii.gz"),
    "B": ("ibsi_B", CT_PHANTOM / "image" / "phantom.nii.gz", CT_PHANTOM / "mask" / "mask.nii.gz"),
}


def reference_rows() -> List[Dict[str, str]]:
    with open(DATA / "ibsi1_reference_values.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def diagnostic_rows() -> List[Dict[str, str]]:
    with open(DATA / "ibsi1_diagnostics.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def round_sig(value: float, digits: int = 3) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def matches(value: float, reference: float, tolerance: float) -> bool:
    """Round to 3 significant digits, or to more when the reference itself has more (diagnostics
    such as 3065 or 125256 with tolerance 0), then compare within the tolerance."""
    if not math.isfinite(value):
        return False
    digits = max(3, len(Decimal(repr(float(reference))).normalize().as_tuple().digits))
    return abs(round_sig(value, digits) - reference) <= tolerance + 1e-12


def load_case(image_path: Path, mask_path: Path) -> tuple:
    """Image as float rounded to integers (IBSI advice for the NIfTI CT) and the mask as bool."""
    image = sitk.ReadImage(str(image_path))
    mask = sitk.ReadImage(str(mask_path))
    array = np.rint(sitk.GetArrayFromImage(image).astype(np.float64))
    geometry = dict(spacing=image.GetSpacing(), origin=image.GetOrigin(),
                    direction=np.array(image.GetDirection()).reshape(3, 3))
    return Image(array, modality="CT", source=str(image_path), **geometry), sitk.GetArrayFromImage(mask) > 0


@cache
def run_configuration(name: str) -> Dict[str, float]:
    """All features (every category and dimension) of one IBSI configuration, through
    ``process_batch`` exactly as a user would run it on the NIfTI files."""
    preset, image_path, mask_path = CONFIGURATIONS[name]
    settings = preset_settings(preset).replace(categories="all", dimensions="all", enable_parallelism=False)
    result = process_batch(str(image_path), str(mask_path), output_path=None, settings=settings)
    if not result["success"] or result["error"]:
        raise RuntimeError(f"IBSI configuration {name}: {result['error']}")
    frame = result["features_extracted"]
    assert len(frame) == 1, f"expected one ROI, got {list(frame['ROI'])}"
    return {key: value for key, value in frame.iloc[0].items() if key not in ("PatientID", "ROI")}


def extract_directly(name: str) -> Dict[str, float]:
    """The same through the engine alone (no readers, no batch): for debugging a family."""
    preset, image_path, mask_path = CONFIGURATIONS[name]
    image, mask = load_case(image_path, mask_path)
    return extract_roi(image, mask, preset_settings(preset), specs=select("all", "all")).values
