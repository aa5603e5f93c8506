"""``process_batch``: PySERA's single entry point, reimplemented.

Cases (image + mask pairs) come from a file pair, a pair of folders (flat, or patient
subfolders mirrored between images and masks), a cases CSV, or arrays (:mod:`.cases`). Each
case is extracted in isolation (:func:`~.case_extraction.extract_case`); with several workers
the cases run in a pool of worker processes (:mod:`.pool`) where a case that raises, runs past
``case_timeout`` or kills its worker becomes Report rows while the others finish. Each finished
case is appended to ``batch_progress.jsonl`` in the output folder as it completes
(:mod:`.progress`), so an interrupted run keeps its work and ``resume=True`` skips it next
time. Results go to an Excel file with the sheets ``Radiomics_Features``, ``Parameters``,
``Report`` and ``Feature_Definitions``, a CSV twin and a provenance JSON (see docs/batch.md and
docs/parameters.md). The public signature and its docs are in :mod:`.api` (light to import).
"""


from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from .case_extraction import (  # noqa: F401  (re-exported: the batch API in one place)
    Callback,
    CaseResult,
    _input_record,
    apply_feature_value_mode,
    extract_case,
    sha256_of,
)
from .cases import CSV_COLUMNS, Case, build_cases, read_cases_csv  # noqa: F401
from .export import ID_COLUMNS
from .io.readers import is_dicom_file
from .io.types import InputError
from .pool import ProgressFn, run_cases, worker_count  # noqa: F401
from .progress import PROGRESS_FILE, ProgressStore, case_key  # noqa: F401
from .rois import aggregate_lesions
from .runlog import RunLog
from .settings import SETTINGS_KEYWORDS, ExtractionMode, RoiSelectionMode, Settings, SettingsError


def run_batch(call: Dict[str, Any]) -> Dict[str, Any]:
    """The work behind :func:`PySERASlicerLib.process_batch`; ``call`` holds its arguments by name
    (documented there). ``settings`` with the PySERA keywords the caller gave (``None`` = not
    given) on top, then the cases. Nothing is written when nothing can start (bad settings or
    paths, no image/mask pair)."""
    image_input, mask_input, output_path = call["image_input"], call["mask_input"], call["output_path"]
    temporary_files_path, cases_csv, spacing = call["temporary_files_path"], call["cases_csv"], call["spacing"]
    case_timeout, max_tasks_per_child = call["case_timeout"], call["max_tasks_per_child"]
    resume, split_dicom, callback_fn, progress_fn = call["resume"], call["split_dicom"], call["callback_fn"], \
        call["progress_fn"]
    scheduler, cluster_retries = call["scheduler"], call["cluster_retries"]
    start = time.perf_counter()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S")
    log = RunLog()
    from .engine.deep import DeepDependencyError, WeightsUnavailableError, check_deep_weights

    try:
        settings = Settings.from_call(call["settings"], call["IBSI_based_parameters"],
                                      **{key: call[key] for key in SETTINGS_KEYWORDS})
        if call.get("filters") is not None:
            settings = settings.replace(filters=call["filters"])
        if call.get("features") is not None:
            settings = settings.replace(features=call["features"])
        if settings.features:
            if settings.extraction_mode == ExtractionMode.DEEP:
                log.warning("features are ignored by extraction_mode deep_feature (it selects handcrafted ones)")
            else:
                from .engine.registry import select_named

                select_named(settings.features)  # an unknown name stops the run here, not in every case
                given = [key for key in ("categories", "dimensions") if call.get(key) is not None]
                if given:
                    log.warning(f"{' and '.join(given)} ignored: features= names the features to compute")
        log.level = settings.report
        for spec in settings.filters:  # the Report names every filter with its parameters
            log.log("INFO", f"filter {spec.label}: {json.dumps(dict(spec))}", report=True)
        if settings.filters and settings.extraction_mode == ExtractionMode.DEEP:
            log.warning("filters are ignored by extraction_mode deep_feature (they add handcrafted features)")
        check_deep_weights(settings)  # once, before any case (else every case fails with the same message)
        if case_timeout is not None and not (isinstance(case_timeout, (int, float)) and case_timeout > 0):
            raise SettingsError(f"case_timeout: {case_timeout!r} is not valid; accepted values: a number of "
                                "seconds > 0, or None")
        if max_tasks_per_child is not None and not (isinstance(max_tasks_per_child, int) and max_tasks_per_child > 0):
            raise SettingsError(f"max_tasks_per_child: {max_tasks_per_child!r} is not valid; accepted values: an "
                                "integer >= 1, or None")
        if resume and output_path is None:
            raise SettingsError("resume: needs an output_path (the progress file lives there)")
        if cases_csv is not None:
            if image_input is not None or mask_input is not None:
                raise SettingsError("cases_csv: give either cases_csv or image_input/mask_input, not both")
            cases = read_cases_csv(cases_csv, spacing)
        else:
            cases = build_cases(image_input, mask_input, log, spacing, split_dicom)
        # images without a usable mask: failed cases (they count, and are named in `error`)
        build_errors = [f"{e.patient_id}: {e.message}" if e.patient_id else e.message
                        for e in log.entries if e.level == "ERROR"]
        if not cases:
            raise InputError("no image/mask pair to process" + (": " + "; ".join(build_errors) if build_errors
                                                                 else ""))
        cluster = None
        if isinstance(scheduler, str) and not scheduler.strip():
            scheduler = None  # an empty address field means this machine
        if scheduler is not None:
            if case_timeout is not None:
                raise SettingsError("case_timeout: not available with scheduler= (a Dask worker cannot stop a "
                                    "running case); use the cluster's own limits, e.g. a SLURM time limit")
            from .dask_cluster import DaskCluster

            cluster = DaskCluster(scheduler, cluster_retries)  # checks the workers before any case runs
    except (SettingsError, InputError, DeepDependencyError, WeightsUnavailableError) as exc:
        log.error(str(exc))
        return _failure(str(exc), log, start, output_path)
    temp_root = _temp_root(temporary_files_path, cases)
    for index, case in enumerate(cases):
        if temp_root is not None and case.temp_dir is None:
            case.temp_dir = str(temp_root / f"{index:05d}_{_safe(case.case_id)}")

    store = ProgressStore(Path(output_path), settings, resume, log) if output_path is not None else None
    keys = [case_key(c) for c in cases]
    results: List[Optional[CaseResult]] = [None] * len(cases)
    todo = []
    for index, key in enumerate(keys):
        if store is not None and key in store.done:
            results[index] = store.done[key]
        else:
            todo.append(index)
    if len(todo) < len(cases):
        log.info(f"resume: {len(cases) - len(todo)} case(s) already finished in {PROGRESS_FILE}; skipped")
    if cluster is None:
        log.info(f"{len(todo)} case(s) to process with {worker_count(settings, len(todo))} worker(s)")
    else:
        log.info(f"{len(todo)} case(s) to process on the Dask cluster at {cluster.address} "
                 f"({len(cluster.worker_addresses)} worker(s) connected)")

    def on_result(position: int, result: CaseResult) -> None:
        index = todo[position]
        results[index] = result
        if store is not None:
            store.add(keys[index], result)

    interrupted = False
    try:
        if cluster is None:
            run_cases([cases[i] for i in todo], settings, callback_fn, case_timeout=case_timeout,
                      progress_fn=progress_fn, on_result=on_result, max_tasks_per_child=max_tasks_per_child)
        else:
            cluster.run_cases([cases[i] for i in todo], settings, callback_fn, progress_fn=progress_fn,
                              on_result=on_result)
    except KeyboardInterrupt:
        interrupted = True
        log.error(f"interrupted: {sum(r is None for r in results)} case(s) not processed; finished cases are in "
                  f"{PROGRESS_FILE} (rerun with resume=True)")
    finally:
        if cluster is not None:
            cluster.close()
        if temp_root is not None:
            shutil.rmtree(temp_root, ignore_errors=True)
            _remove_if_empty(Path(temporary_files_path))

    done_results = [r for r in results if r is not None]
    rows: List[Dict[str, Any]] = []
    per_region = settings.rois.selection_mode == RoiSelectionMode.PER_REGION
    for case_result in done_results:
        if settings.aggregation_lesion and len(case_result.rows) > 1 and len(case_result.rois) == len(case_result.rows):
            aggregated = aggregate_lesions(case_result.rows, case_result.rois, per_region,
                                           deep=settings.extraction_mode == ExtractionMode.DEEP)
            log.log("INFO", f"{case_result.case_id}: {len(case_result.rows)} ROIs aggregated into "
                            f"{len(aggregated)} row(s) ({', '.join(r['name'] for r in case_result.rois)})",
                    patient_id=case_result.case_id, report=True)
            rows.extend(aggregated)
        else:
            rows.extend(case_result.rows)
        log.entries.extend(e for e in case_result.entries if e.level != "LOG")
        # the case's own RunLog already filtered its lines by the report level
        log.lines.extend(e.message for e in case_result.entries if e.level == "LOG")

    from .export import features_frame, write_outputs

    frame = features_frame(rows, settings.column_names)
    processed = sum(1 for r in done_results if r.rows)
    failed = [r for r in done_results if r.error]
    n_failed = len(failed) + len(build_errors)
    excel_path = csv_path = json_path = None
    finished_at = time.strftime("%Y-%m-%dT%H:%M:%S")
    if output_path is not None:
        run_info = {
            "started": started_at, "finished": finished_at, "seconds": round(time.perf_counter() - start, 3),
            "cases": len(cases) + len(build_errors), "processed_files": processed,
            "failed_cases": n_failed, "interrupted": interrupted,
            "inputs": {r.case_id: r.inputs for r in done_results if r.inputs},
        }
        if cases_csv is not None:
            run_info["cases_csv"] = _input_record(cases_csv)
        if cluster is not None:
            run_info["dask"] = cluster.provenance()
        excel_path, csv_path, json_path = write_outputs(output_path, frame, settings, log.entries, run_info=run_info)
        log.info(f"Results written to {excel_path}")
        store.close(finished=not interrupted)
    if interrupted:
        raise KeyboardInterrupt
    errors = build_errors + [r.error for r in failed]
    return {
        "success": processed > 0,
        "output_path": str(Path(output_path).resolve()) if output_path is not None else None,
        "excel_path": excel_path,
        "csv_path": csv_path,
        "provenance_path": json_path,
        "processed_files": processed,
        "failed_files": n_failed,
        "features_extracted": frame,
        "processing_time": time.perf_counter() - start,
        "logs": list(log.lines),
        "error": "; ".join(errors) if errors else (None if processed else "no case could be processed"),
    }


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60] or "case"


def _temp_root(temporary_files_path: Optional[str], cases: Iterable[Case]) -> Optional[Path]:
    """A per-run folder under ``temporary_files_path``, only when some mask may be an RTSTRUCT."""
    if not temporary_files_path:
        return None
    if not any(isinstance(c.mask, (str, os.PathLike)) and (Path(c.mask).is_dir() or is_dicom_file(c.mask))
               for c in cases):
        return None
    return Path(temporary_files_path) / f"run_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _failure(message: str, log: RunLog, start: float, output_path: Optional[str] = None) -> Dict[str, Any]:
    import pandas as pd

    return {
        "success": False, "output_path": str(Path(output_path).resolve()) if output_path is not None else None,
        "excel_path": None, "csv_path": None, "provenance_path": None, "processed_files": 0, "failed_files": 0,
        "features_extracted": pd.DataFrame(columns=list(ID_COLUMNS)), "processing_time": time.perf_counter() - start,
        "logs": list(log.lines), "error": message,
    }
