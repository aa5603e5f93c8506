"""``process_batch``: PySERA's single entry point, reimplemented.

Cases (image + mask pairs) come from a file pair, a pair of folders or arrays; each case is
extracted in isolation (:func:`extract_case`), optionally in a process pool, and one bad case
becomes Report rows while the others finish. Results go to an Excel file with the sheets
``Radiomics_Features``, ``Parameters`` and ``Report`` plus a CSV twin.
"""

from __future__ import annotations

import functools
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from .image import Image
from .io.readers import InputError, MaskData, Source, case_name, is_image_file, read_image, read_mask
from .rois import discover_rois
from .runlog import ReportEntry, RunLog
from .settings import ExtractionMode, FeatureValueMode, Settings, SettingsError

#: callback_fn(flag, image_id, roi_name) with flag "START" or "END" (PySERA).
Callback = Optional[Callable[[str, str, str], None]]

#: Non-feature columns of the Radiomics_Features sheet.
ID_COLUMNS = ("PatientID", "ROI")


@dataclass
class Case:
    """One image/mask pair. ``image``/``mask`` are paths, arrays, Images or MaskData."""

    case_id: str
    image: Any
    mask: Any
    spacing: Optional[Sequence[float]] = None


@dataclass
class CaseResult:
    case_id: str
    rows: List[Dict[str, Any]] = field(default_factory=list)
    entries: List[ReportEntry] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------
def build_cases(image_input: Any, mask_input: Any, log: RunLog,
                spacing: Optional[Sequence[float]] = None) -> List[Case]:
    """Pair images with masks: arrays, a file pair, or two folders matched by exact name."""
    if isinstance(image_input, (np.ndarray, Image)) or isinstance(mask_input, (np.ndarray, MaskData)):
        return [Case("array" if isinstance(image_input, np.ndarray) else _image_id(image_input), image_input,
                     mask_input, spacing)]
    image_path, mask_path = Path(image_input), Path(mask_input)
    if not image_path.exists():
        raise InputError(f"image_input {image_path}: file or folder not found")
    if not mask_path.exists():
        raise InputError(f"mask_input {mask_path}: file or folder not found")
    if image_path.is_file() or _is_dicom_series(image_path):
        return [Case(case_name(image_path), image_path, mask_path, spacing)]
    if not mask_path.is_dir():
        raise InputError(f"mask_input {mask_path}: image_input is a folder, so mask_input must be a folder too")
    images = {case_name(p): p for p in sorted(image_path.iterdir()) if p.is_file() and is_image_file(p)}
    masks = {case_name(p): p for p in sorted(mask_path.iterdir()) if p.is_file() and is_image_file(p)}
    if not images:
        raise InputError(f"image_input {image_path}: the folder holds no image files")
    cases = []
    for name, path in images.items():
        if name not in masks:
            log.error(f"No matching mask found for {path.name} in {mask_path}", patient_id=name)
            continue
        cases.append(Case(name, path, masks[name], spacing))
    for name, path in masks.items():
        if name not in images:
            log.warning(f"Mask {path.name} has no matching image in {image_path}", patient_id=name)
    return cases


def _image_id(image: Any) -> str:
    return case_name(image.source) if isinstance(image, Image) and image.source else "image"


def _is_dicom_series(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in (".dcm", ".dicom") for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------------------------
def apply_feature_value_mode(values: Dict[str, float], mode: FeatureValueMode) -> Dict[str, float]:
    """REAL_VALUE keeps NaN; APPROXIMATE_VALUE replaces NaN and infinities by 0.0 (documented
    in docs/parameters.md) so that downstream statistics never see missing values."""
    if mode == FeatureValueMode.REAL_VALUE:
        return values
    return {k: (v if isinstance(v, float) and math.isfinite(v) else 0.0) if isinstance(v, float) else v
            for k, v in values.items()}


def extract_case(case: Case, settings: Settings, callback: Callback = None,
                 on_step: Optional[Callable[[str, str], None]] = None) -> CaseResult:
    """Extract every selected ROI of one case. Never raises for bad input: errors become
    Report entries and ``error``; ROIs finished before an error are kept."""
    start = time.perf_counter()
    result = CaseResult(case.case_id)
    log = RunLog(settings.report)
    roi_name = ""
    try:
        warnings: List[str] = []
        image = read_image(case.image, spacing=case.spacing, warnings=warnings)
        if image.modality == "OTHER" and settings.modality.value != "OTHER":
            image = image.with_array(image.array, modality=settings.modality.value)
        if not np.issubdtype(image.array.dtype, np.number):
            raise InputError(f"{image.source or case.case_id}: image data type {image.array.dtype} is not numeric")
        if image.array.dtype.kind == "f" and not np.isfinite(image.array).all():
            raise InputError(f"{image.source or case.case_id}: image contains NaN or infinite voxel values")
        if isinstance(case.mask, MaskData):
            mask_data = case.mask
        else:
            mask_data = read_mask(case.mask, image, settings.rois.apply_preprocessing, warnings)
        for message in warnings:
            log.warning(message, patient_id=case.case_id)
        discovery = discover_rois(mask_data, settings.rois)
        for name, count in discovery.dropped:
            log.warning(f"ROI {name} dropped: {count} voxels < min_roi_volume {settings.rois.min_roi_volume:g}",
                        patient_id=case.case_id, roi=name)
        for name, count in discovery.not_selected:
            log.log("INFO", f"ROI {name} ({count} voxels) not selected: roi_num={settings.rois.roi_num}",
                    patient_id=case.case_id, roi=name, report=True)
        if not discovery.rois:
            raise InputError(f"{case.case_id}: the mask holds no ROI with at least "
                             f"{settings.rois.min_roi_volume:g} voxels (empty mask?)")
        for roi in discovery.rois:
            roi_name = roi.name
            if callback:
                callback("START", case.case_id, roi.name)
            step_callback = functools.partial(on_step, roi.name) if on_step else None
            values, roi_warnings = _extract_roi_values(image, roi.mask, settings, step_callback)
            for message in roi_warnings:
                log.warning(message, patient_id=case.case_id, roi=roi.name)
            values = apply_feature_value_mode(values, settings.feature_value_mode)
            result.rows.append({"PatientID": case.case_id, "ROI": roi.name, **values})
            log.info(f"{case.case_id}: {roi.name} ({roi.voxel_count} voxels) extracted",
                     patient_id=case.case_id, roi=roi.name)
            if callback:
                callback("END", case.case_id, roi.name)
            roi_name = ""
    except (InputError, SettingsError, ValueError) as exc:
        result.error = f"{case.case_id}{' / ' + roi_name if roi_name else ''}: {exc}"
        log.error(str(exc), patient_id=case.case_id, roi=roi_name)
    except Exception as exc:  # a bug or an unexpected library error: report with traceback
        result.error = f"{case.case_id}: unexpected {type(exc).__name__}: {exc}"
        log.error(f"unexpected {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}",
                  patient_id=case.case_id, roi=roi_name)
    result.entries = log.entries + [ReportEntry(case.case_id, "", "LOG", line) for line in log.lines]
    result.seconds = time.perf_counter() - start
    return result


def _extract_roi_values(image: Image, mask: np.ndarray, settings: Settings, on_step=None):
    if settings.extraction_mode == ExtractionMode.DEEP:
        from .engine.deep import extract_deep_features

        return extract_deep_features(image, mask, settings), []
    from .engine.pipeline import extract_roi

    roi_result = extract_roi(image, mask, settings, on_step=on_step)
    return roi_result.values, roi_result.warnings


# ---------------------------------------------------------------------------------------------
# process_batch
# ---------------------------------------------------------------------------------------------
def worker_count(settings: Settings, n_cases: int) -> int:
    if not settings.enable_parallelism or n_cases <= 1:
        return 1
    wanted = (os.cpu_count() or 1) if settings.num_workers == "auto" else int(settings.num_workers)
    return max(1, min(wanted, n_cases))


def process_batch(
    image_input: Union[Source, MaskData],
    mask_input: Union[Source, MaskData],
    output_path: Optional[str] = "./output_result",
    temporary_files_path: Optional[str] = "./temporary_files_path",
    apply_preprocessing: bool = False,
    min_roi_volume: float = 10,
    num_workers: Union[str, int] = "auto",
    enable_parallelism: bool = True,
    categories: str = "diag,morph,glcm,glrlm,glszm,ngtdm,ngldm",
    dimensions: str = "1st,2d",
    bin_size: float = 25,
    roi_num: int = 10,
    roi_selection_mode: str = "per_Img",
    feature_value_mode: str = "REAL_VALUE",
    aggregation_lesion: bool = False,
    callback_fn: Callback = None,
    extraction_mode: str = "handcrafted_feature",
    deep_learning_model: str = "resnet50",
    report: str = "all",
    IBSI_based_parameters: Optional[Dict[str, Any]] = None,
    *,
    settings: Optional[Settings] = None,
    spacing: Optional[Sequence[float]] = None,
) -> Dict[str, Any]:
    """Extract radiomics features for one case or a batch (PySERA-compatible).

    Parameters follow PySERA 2.1 (see docs/parameters.md). Extras: ``settings`` (a full
    :class:`Settings`; PySERA keywords then must be left at their defaults) and ``spacing``
    (voxel size (i, j, k) in mm for array / ``.npy`` inputs; default 1 mm, with a warning).

    Returns
    -------
    dict with ``success``, ``output_path`` (results folder), ``excel_path``, ``csv_path``,
    ``processed_files`` (cases with at least one ROI extracted), ``features_extracted``
    (DataFrame: PatientID, ROI, features), ``processing_time`` (s), ``logs``, ``error``.
    """
    start = time.perf_counter()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S")
    log = RunLog()
    try:
        if settings is None:
            settings = Settings.from_pysera(
                IBSI_based_parameters=IBSI_based_parameters, apply_preprocessing=apply_preprocessing,
                min_roi_volume=min_roi_volume, num_workers=num_workers, enable_parallelism=enable_parallelism,
                categories=categories, dimensions=dimensions, bin_size=bin_size, roi_num=roi_num,
                roi_selection_mode=roi_selection_mode, feature_value_mode=feature_value_mode,
                aggregation_lesion=aggregation_lesion, extraction_mode=extraction_mode,
                deep_learning_model=deep_learning_model, report=report,
            )
        log.level = settings.report
        cases = build_cases(image_input, mask_input, log, spacing)
    except (SettingsError, InputError) as exc:
        log.error(str(exc))
        return _failure(str(exc), log, start)

    log.info(f"{len(cases)} case(s) to process with {worker_count(settings, len(cases))} worker(s)")
    results = run_cases(cases, settings, callback_fn)
    rows: List[Dict[str, Any]] = []
    for case_result in results:
        rows.extend(case_result.rows)
        log.entries.extend(e for e in case_result.entries if e.level != "LOG")
        log.lines.extend(e.message for e in case_result.entries if e.level == "LOG")

    from .export import features_frame, write_outputs

    frame = features_frame(rows, settings)
    processed = sum(1 for r in results if r.rows)
    failed = [r for r in results if r.error]
    excel_path = csv_path = None
    if output_path is not None:
        excel_path, csv_path = write_outputs(
            output_path, frame, settings, log.entries,
            run_info={"started": started_at, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                      "cases": len(cases), "processed_files": processed, "failed_cases": len(failed)},
        )
        log.info(f"Results written to {excel_path}")
    error = "; ".join(r.error for r in failed)
    return {
        "success": processed > 0,
        "output_path": str(Path(output_path).resolve()) if output_path is not None else None,
        "excel_path": excel_path,
        "csv_path": csv_path,
        "processed_files": processed,
        "features_extracted": frame,
        "processing_time": time.perf_counter() - start,
        "logs": list(log.lines),
        "error": error or (None if processed else "no case could be processed"),
    }


def run_cases(cases: List[Case], settings: Settings, callback: Callback = None) -> List[CaseResult]:
    """Run cases serially or in a spawn-based process pool; results in case order."""
    workers = worker_count(settings, len(cases))
    if workers == 1:
        return [extract_case(case, settings, callback) for case in cases]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    results: List[Optional[CaseResult]] = [None] * len(cases)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(extract_case, case, settings): index for index, case in enumerate(cases)}
        for future, index in futures.items():
            try:
                results[index] = future.result()
            except Exception as exc:  # the worker process died (killed, out of memory)
                results[index] = CaseResult(cases[index].case_id, error=f"{cases[index].case_id}: worker failed "
                                            f"({type(exc).__name__}: {exc})",
                                            entries=[ReportEntry(cases[index].case_id, "", "ERROR",
                                                                 f"worker failed: {type(exc).__name__}: {exc}")])
            if callback:
                for row in results[index].rows:
                    callback("START", row["PatientID"], row["ROI"])
                    callback("END", row["PatientID"], row["ROI"])
    return [r for r in results if r is not None]


def _failure(message: str, log: RunLog, start: float) -> Dict[str, Any]:
    import pandas as pd

    return {
        "success": False, "output_path": None, "excel_path": None, "csv_path": None, "processed_files": 0,
        "features_extracted": pd.DataFrame(), "processing_time": time.perf_counter() - start,
        "logs": list(log.lines), "error": message,
    }
