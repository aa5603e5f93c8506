"""Small synthetic cases (about 20 x 32 x 32 voxels) written to disk for the batch tests."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk

SHAPE = (20, 32, 32)
SPACING = (0.9, 0.9, 2.0)


def case_arrays(seed: int, shape: Tuple[int, int, int] = SHAPE):
    """(image float32, label mask uint8): a 1440-voxel lesion of label 1 and a 180-voxel lesion of label 2."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100 + seed, 20, shape).astype(np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[5:15, 8:20, 8:20] = 1
    mask[5:10, 24:30, 24:30] = 2
    return image, mask


def write_nifti(path: Path, array: np.ndarray, spacing=SPACING, origin=(0.0, 0.0, 0.0)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def write_case(folder: Path, name: str, seed: int, image: Optional[np.ndarray] = None,
               mask: Optional[np.ndarray] = None) -> Tuple[Path, Path]:
    """``folder/images/<name>.nii.gz`` and ``folder/masks/<name>.nii.gz``."""
    default_image, default_mask = case_arrays(seed)
    image_path = write_nifti(folder / "images" / f"{name}.nii.gz", default_image if image is None else image)
    mask_path = write_nifti(folder / "masks" / f"{name}.nii.gz", default_mask if mask is None else mask)
    return image_path, mask_path


def write_cases_csv(path: Path, rows) -> Path:
    lines = ["case_id,image,mask,roi_label"] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class InterruptAfter:
    """A ``progress_fn`` that raises KeyboardInterrupt (what Ctrl-C does in the middle of a
    batch) once ``cases`` cases have ended; ``ended`` lists their ids."""

    def __init__(self, cases: int):
        self.cases = cases
        self.ended: list = []

    def __call__(self, event) -> None:
        if event["event"] == "case_end":
            self.ended.append(event["case_id"])
            if len(self.ended) == self.cases:
                raise KeyboardInterrupt


class KillWorkerOf:
    """A ``progress_fn`` that SIGKILLs, from outside, the worker process that starts case
    ``case_id`` (never this process); ``killed`` lists the pids killed."""

    def __init__(self, case_id: str):
        self.case_id = case_id
        self.killed: list = []

    def __call__(self, event) -> None:
        if event["event"] == "case_start" and event["case_id"] == self.case_id:
            assert event["pid"] != os.getpid()
            os.kill(event["pid"], signal.SIGKILL)
            self.killed.append(event["pid"])

