"""DICOM RTSTRUCT -> one boolean mask per structure on an image grid.

Each structure (``StructureSetROISequence``) becomes one ROI named by its ``ROIName``. Its
closed planar contours are mapped from world (LPS) coordinates into the image's continuous
voxel indices; each contour lies on one slice ``k``. A voxel belongs to the structure when its
centre lies inside the contours of its slice by the **even-odd rule**: every contour edge
crossed by a ray from the voxel centre toggles inside/outside, so a contour nested in another
(a hole) is subtracted and overlapping contours of one structure are combined by XOR, as the
DICOM standard specifies for RTSTRUCT.

Rasterisation is a vectorised scan-line fill (no loop over voxels): for each contour edge and
each voxel row ``j`` it crosses (half-open rule, so a vertex on a row is counted once), the
crossing column ``x`` toggles all voxels with ``i >= x`` of that row. The toggles of a slice
are accumulated with one ``bincount`` and resolved with a cumulative sum modulo 2.

Contours that do not lie on a slice of the image (another frame of reference or slice
spacing), open contours and points are skipped and reported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..image import Image
from .types import InputError, MaskData

#: Contours farther than this (in slices) from a slice centre are not on the image grid.
SLICE_TOLERANCE = 0.25


def contour_toggles(x: np.ndarray, y: np.ndarray, n_rows: int, n_columns: int) -> np.ndarray:
    """Even-odd toggles of one closed polygon (vertices ``x`` = i, ``y`` = j in voxel units).

    Returns an int array (n_rows, n_columns + 1) counting, per row, the crossings at each
    column; ``cumsum(..., axis=1) % 2`` of the sum over polygons is the filled mask.
    """
    x0, y0 = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    keep = y0 != y1  # horizontal edges never cross a row under the half-open rule
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    y_lo, y_hi = np.minimum(y0, y1), np.maximum(y0, y1)
    # rows j with y_lo <= j < y_hi (half-open: a shared vertex is counted by one edge only)
    first = np.maximum(np.ceil(y_lo), 0)
    last = np.minimum(np.ceil(y_hi), n_rows)  # exclusive
    counts = np.maximum(last - first, 0).astype(np.int64)
    total = int(counts.sum())
    toggles = np.zeros((n_rows, n_columns + 1), dtype=np.int64)
    if total == 0:
        return toggles
    edge = np.repeat(np.arange(counts.size), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = first[edge] + offsets
    crossing = x0[edge] + (rows - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    columns = np.clip(np.ceil(crossing), 0, n_columns).astype(np.int64)  # voxels i >= crossing toggle
    flat = rows.astype(np.int64) * (n_columns + 1) + columns
    toggles += np.bincount(flat, minlength=toggles.size).reshape(toggles.shape)
    return toggles


def rasterise(contours: Sequence[np.ndarray], reference: Image) -> Tuple[np.ndarray, int]:
    """Fill closed planar contours (each an (n, 3) array of LPS points) on ``reference``'s grid.

    Returns (bool mask (k, j, i), number of contours skipped because they lie off the slices).
    """
    n_k, n_j, n_i = reference.array.shape
    world_to_index = np.linalg.inv(reference.index_to_world())
    per_slice: Dict[int, np.ndarray] = {}
    skipped = 0
    for points in contours:
        ijk = world_to_index[:3, :3] @ np.asarray(points, dtype=np.float64).T + world_to_index[:3, 3:4]
        k_mean = float(ijk[2].mean())
        k = int(round(k_mean))
        if np.ptp(ijk[2]) > 2 * SLICE_TOLERANCE or abs(k - k_mean) > SLICE_TOLERANCE or not 0 <= k < n_k:
            skipped += 1
            continue
        toggles = contour_toggles(ijk[0], ijk[1], n_j, n_i)
        if k in per_slice:
            per_slice[k] += toggles
        else:
            per_slice[k] = toggles
    mask = np.zeros(reference.array.shape, dtype=bool)
    for k, toggles in per_slice.items():
        mask[k] = (np.cumsum(toggles, axis=1)[:, :n_i] % 2) == 1
    return mask, skipped


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "roi"


def read_structures(path: Path) -> Tuple[List[Tuple[str, List[np.ndarray], int]], object]:
    """[(ROI name, closed planar contours as (n, 3) arrays, number of non-planar items)] and the dataset."""
    import pydicom

    dataset = pydicom.dcmread(str(path))
    if str(dataset.get("Modality", "")).upper() != "RTSTRUCT":
        raise InputError(f"{path}: not an RTSTRUCT (Modality {dataset.get('Modality', '?')})")
    names = {int(item.ROINumber): str(item.get("ROIName", f"ROI_{item.ROINumber}"))
             for item in dataset.get("StructureSetROISequence", [])}
    structures = []
    seen: Dict[str, int] = {}
    for item in dataset.get("ROIContourSequence", []):
        number = int(item.ReferencedROINumber)
        name = names.get(number, f"ROI_{number}")
        if name in seen:  # two structures with one name: keep both, distinguishable
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        contours, other = [], 0
        for contour in item.get("ContourSequence", []):
            kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
            data = np.asarray([float(v) for v in contour.get("ContourData", [])], dtype=np.float64)
            if kind != "CLOSED_PLANAR" or data.size < 9:
                other += 1
                continue
            contours.append(data.reshape(-1, 3))
        structures.append((name, contours, other))
    return structures, dataset


def read_rtstruct(path: Path, reference: Image, warnings: Optional[List[str]] = None,
                  temp_dir: Optional[str] = None) -> MaskData:
    """All structures of an RTSTRUCT as named bool masks on ``reference``'s grid.

    With ``temp_dir`` each mask is written there as ``<name>.npy`` and returned memory-mapped,
    so a structure set with many large structures does not sit in memory at once (PySERA's
    ``temporary_files_path``); the caller removes the folder when the case is done.
    """
    path = Path(path)
    try:
        structures, _ = read_structures(path)
    except InputError:
        raise
    except Exception as exc:  # pydicom: truncated or malformed file
        raise InputError(f"{path}: cannot read RTSTRUCT ({type(exc).__name__}: {exc})") from None
    if not structures:
        raise InputError(f"{path}: the RTSTRUCT holds no contours")
    folder = Path(temp_dir) if temp_dir else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    named: Dict[str, np.ndarray] = {}
    for name, contours, other in structures:
        mask, skipped = rasterise(contours, reference)
        if warnings is not None:
            if skipped:
                warnings.append(f"{path.name}: structure {name}: {skipped} of {len(contours)} contours do not lie "
                                f"on a slice of the image {reference.source or ''} and were skipped")
            if other:
                warnings.append(f"{path.name}: structure {name}: {other} open contours or points ignored")
        if folder is not None:
            target = folder / f"{len(named):03d}_{_safe_name(name)}.npy"
            np.save(target, mask)
            del mask
            named[name] = np.load(target, mmap_mode="r")
        else:
            named[name] = mask
    return MaskData(named=named)
