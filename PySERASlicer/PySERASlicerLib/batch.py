"""``process_batch``: PySERA's single entry point, reimplemented.

Cases (image + mask pairs) come from a file pair, a pair of folders (flat, or patient
subfolders mirrored between images and masks), a cases CSV, or arrays. Each case is extracted
in isolation (:func:`extract_case`); with several workers the cases run in a pool of spawned
processes (:func:`run_cases`) where a case that raises, runs past ``case_timeout`` or kills its
worker becomes Report rows while the others finish. Each finished case is appended to
``batch_progress.jsonl`` in the output folder as it completes, so an interrupted run keeps its
work and ``resume=True`` skips it next time. Results go to an Excel file with the sheets
``Radiomics_Features``, ``Parameters`` and ``Report``, a CSV twin and a provenance JSON
(see docs/batch.md and docs/parameters.md).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import shutil
import signal
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from .image import Image
from .io.readers import (
    InputError,
    MaskData,
    Source,
    case_name,
    is_dicom_file,
    is_dicom_folder,
    is_image_file,
    read_image,
    read_mask,
)
from .rois import aggregate_lesions, discover_rois
from .runlog import LOGGER, ReportEntry, RunLog
from .settings import ExtractionMode, FeatureValueMode, RoiSelectionMode, Settings, SettingsError

#: callback_fn(flag, image_id, roi_name) with flag "START" or "END" (PySERA).
Callback = Optional[Callable[[str, str, str], None]]
#: progress_fn(event) with event a dict: {"event": "case_start"|"case_end", "case_id", "index", ...}.
ProgressFn = Optional[Callable[[Dict[str, Any]], None]]

#: Non-feature columns of the Radiomics_Features sheet.
ID_COLUMNS = ("PatientID", "ROI")
#: Name of the file (in the output folder) that receives each finished case as one JSON line.
PROGRESS_FILE = "batch_progress.jsonl"
#: Columns of a cases CSV (``roi_label`` optional).
CSV_COLUMNS = ("case_id", "image", "mask")
#: Default number of cases a pool worker runs before it is replaced by a fresh process.
DEFAULT_MAX_TASKS_PER_CHILD = 10


@dataclass
class Case:
    """One image/mask pair. ``image``/``mask`` are paths, arrays, Images or MaskData.

    roi_label : extract only this label value (label maps) or structure name (RTSTRUCT/SEG).
    series_uid, volume : which series / volume of a DICOM folder (default: reported choice).
    temp_dir : folder for this case's RTSTRUCT mask cache (removed when the case ends).
    """

    case_id: str
    image: Any
    mask: Any
    spacing: Optional[Sequence[float]] = None
    roi_label: Optional[str] = None
    series_uid: Optional[str] = None
    volume: Optional[int] = None
    temp_dir: Optional[str] = None


@dataclass
class CaseResult:
    """What one case produced.

    rows : one dict per ROI (``PatientID``, ``ROI``, features).
    entries : Report rows (level ``LOG`` = a log line, not a Report row).
    error : empty, or a message naming the case and the problem.
    rois : ``{"name", "label", "voxels"}`` per row (for lesion aggregation).
    inputs : ``{"image"/"mask": "path sha256:<hex>"}`` of path inputs (provenance).
    """

    case_id: str
    rows: List[Dict[str, Any]] = field(default_factory=list)
    entries: List[ReportEntry] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0
    rois: List[Dict[str, Any]] = field(default_factory=list)
    inputs: Dict[str, str] = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        data["entries"] = [asdict(e) for e in self.entries]
        return data

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> CaseResult:
        data = dict(data)
        data["entries"] = [ReportEntry(**e) for e in data.get("entries", [])]
        return cls(**data)


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------
def build_cases(image_input: Any, mask_input: Any, log: RunLog, spacing: Optional[Sequence[float]] = None,
                split_dicom: bool = False) -> List[Case]:
    """Pair images with masks.

    * arrays / :class:`Image` / :class:`MaskData`: one case;
    * an image file or a DICOM series folder with a mask file/folder: one case;
    * two folders: entries matched by name. An entry is an image file (name without suffix) or a
      patient subfolder (its name) holding one DICOM series or one image file; the mask folder
      mirrors it (a mask file with the same name, or a subfolder with an RTSTRUCT, SEG or mask
      file). Unmatched names become Report rows.

    ``split_dicom``: a DICOM folder holding several series or a multi-volume series gives one
    case per series and volume (``<case>_<n>``) instead of the reported default choice.
    """
    if isinstance(image_input, (np.ndarray, Image)) or isinstance(mask_input, (np.ndarray, MaskData, Image)):
        return [Case("array" if isinstance(image_input, np.ndarray) else _image_id(image_input), image_input,
                     mask_input, spacing)]
    if image_input is None or mask_input is None:
        raise InputError("image_input and mask_input are required (or give cases_csv)")
    image_path, mask_path = Path(image_input), Path(mask_input)
    if not image_path.exists():
        raise InputError(f"image_input {image_path}: file or folder not found")
    if not mask_path.exists():
        raise InputError(f"mask_input {mask_path}: file or folder not found")
    if image_path.is_file() or is_dicom_folder(image_path):
        name = case_name(image_path) if image_path.is_file() else image_path.name
        return _split(Case(name, image_path, mask_path, spacing), split_dicom, log)
    if not mask_path.is_dir():
        raise InputError(f"mask_input {mask_path}: image_input is a folder, so mask_input must be a folder too")
    images = _entries(image_path)
    if not images:
        raise InputError(f"image_input {image_path}: the folder holds no image files, DICOM series or patient "
                         "folders")
    masks = _entries(mask_path)
    cases: List[Case] = []
    for name, path in images.items():
        if name not in masks:
            log.error(f"No matching mask found for {path.name} in {mask_path}", patient_id=name)
            continue
        try:
            image = _patient_entry(path, "image")
            mask = _patient_entry(masks[name], "mask")
        except InputError as exc:
            log.error(str(exc), patient_id=name)
            continue
        cases.extend(_split(Case(name, image, mask, spacing), split_dicom, log))
    for name, path in masks.items():
        if name not in images:
            log.warning(f"Mask {path.name} has no matching image in {image_path}", patient_id=name)
    return cases


def _image_id(image: Any) -> str:
    return case_name(image.source) if isinstance(image, Image) and image.source else "image"


def _entries(folder: Path) -> Dict[str, Path]:
    """Name -> path of the image files and patient subfolders of a batch folder."""
    entries: Dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            entries[path.name] = path
        elif path.is_file() and (is_image_file(path) or is_dicom_file(path)):
            entries[case_name(path)] = path
    return entries


def _patient_entry(path: Path, kind: str) -> Path:
    """A patient subfolder -> the DICOM folder itself or its single image/mask file."""
    if not path.is_dir() or is_dicom_folder(path):
        return path
    files = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
    if len(files) == 1:
        return files[0]
    if not files:
        subfolders = [p.name for p in path.iterdir() if p.is_dir()]
        extra = f" (it has subfolders {', '.join(subfolders[:3])}: one folder level per patient)" if subfolders else ""
        raise InputError(f"{path}: the {kind} folder of this patient holds no {kind} file or DICOM series{extra}")
    raise InputError(f"{path}: the {kind} folder of this patient holds {len(files)} files "
                     f"({', '.join(p.name for p in files[:4])}); expected one {kind} file or one DICOM series")


def _split(case: Case, split_dicom: bool, log: RunLog) -> List[Case]:
    if not split_dicom or not isinstance(case.image, Path) or not case.image.is_dir():
        return [case]
    from .io.dicom import list_volumes

    try:
        volumes = list_volumes(case.image)
    except InputError as exc:  # reported again, with the case, when the case runs
        log.warning(str(exc), patient_id=case.case_id)
        return [case]
    if len(volumes) <= 1:
        return [case]
    cases = []
    for number, (uid, index, label) in enumerate(volumes, start=1):
        case_id = f"{case.case_id}_{number}"
        log.info(f"{case.case_id}: DICOM volume {number} = series {uid} volume {index} ({label}) -> case {case_id}",
                 patient_id=case_id)
        cases.append(Case(case_id, case.image, case.mask, case.spacing, case.roi_label, uid, index))
    return cases


def read_cases_csv(path: Union[str, os.PathLike], spacing: Optional[Sequence[float]] = None) -> List[Case]:
    """Cases from a CSV with columns ``case_id, image, mask`` and optional ``roi_label``.

    Relative paths are relative to the CSV file's folder. A row whose files are missing still
    becomes a case (it fails with a Report row naming the file; the other cases run).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"cases_csv {path}: file not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in columns]
        if missing:
            found = ", ".join(columns) or "none"
            raise InputError(f"cases_csv {path}: missing column(s) {', '.join(missing)}; expected columns "
                             f"{', '.join(CSV_COLUMNS)} and optionally roi_label (found: {found})")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    cases = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if not row.get("image") or not row.get("mask"):
            raise InputError(f"cases_csv {path}, line {number}: image and mask must both be given")
        image, mask = Path(row["image"]), Path(row["mask"])
        image = image if image.is_absolute() else path.parent / image
        mask = mask if mask.is_absolute() else path.parent / mask
        case_id = row.get("case_id") or case_name(image)
        cases.append(Case(case_id, image, mask, spacing, row.get("roi_label") or None))
    if not cases:
        raise InputError(f"cases_csv {path}: no cases (the file has a header but no rows)")
    return cases


# ---------------------------------------------------------------------------------------------
# Provenance helpers
# ---------------------------------------------------------------------------------------------
def sha256_of(path: Union[str, os.PathLike]) -> str:
    """sha256 of a file, or of a folder's files (names and contents, sorted; one level)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for item in sorted(p for p in path.iterdir() if p.is_file()):
            digest.update(item.name.encode("utf-8") + b"\0" + sha256_of(item).encode("ascii"))
        return digest.hexdigest()
    with open(path, "rb") as handle:
        for block in iter(functools.partial(handle.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _input_record(source: Any) -> Optional[str]:
    if isinstance(source, (str, os.PathLike)) and Path(source).exists():
        try:
            return f"{Path(source)} sha256:{sha256_of(source)}"
        except OSError as exc:
            return f"{Path(source)} (not hashed: {exc})"
    return None


# ---------------------------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------------------------
def apply_feature_value_mode(values: Dict[str, float], mode: FeatureValueMode) -> Dict[str, float]:
    """REAL_VALUE keeps NaN; APPROXIMATE_VALUE replaces NaN and infinities by 0.0 (documented
    in docs/parameters.md) so that downstream statistics never see missing values."""
    if mode == FeatureValueMode.REAL_VALUE:
        return values
    return {k: (v if math.isfinite(v) else 0.0) if isinstance(v, float) else v for k, v in values.items()}


def extract_case(case: Case, settings: Settings, callback: Callback = None,
                 on_step: Optional[Callable[[str, str], None]] = None) -> CaseResult:
    """Extract every selected ROI of one case. Never raises for bad input: errors become
    Report entries and ``error``; ROIs finished before an error are kept."""
    start = time.perf_counter()
    result = CaseResult(case.case_id)
    log = RunLog(settings.report)
    roi_name = ""
    try:
        for key, source in (("image", case.image), ("mask", case.mask)):
            record = _input_record(source)
            if record:
                result.inputs[key] = record
        warnings: List[str] = []
        image = read_image(case.image, spacing=case.spacing, warnings=warnings, series_uid=case.series_uid,
                           volume=case.volume)
        if image.modality == "OTHER" and settings.modality.value != "OTHER":
            image = image.with_array(image.array, modality=settings.modality.value)
        source = image.source or case.case_id
        if not np.issubdtype(image.array.dtype, np.number):
            raise InputError(f"{source}: image data type {image.array.dtype} is not numeric")
        if image.array.dtype.kind == "f" and not np.isfinite(image.array).all():
            bad = int(np.count_nonzero(~np.isfinite(image.array)))
            raise InputError(f"{source}: image contains {bad} NaN or infinite voxel value(s)")
        mask_data = read_mask(case.mask, image, settings.rois.apply_preprocessing, warnings, temp_dir=case.temp_dir)
        for message in warnings:
            log.warning(message, patient_id=case.case_id)
        if mask_data.labels is not None and not mask_data.named and not np.any(mask_data.labels):
            raise InputError(f"{_mask_name(case)}: the mask is empty (no non-zero voxel)")
        discovery = discover_rois(mask_data, settings.rois, case.roi_label)
        for name, count in discovery.dropped:
            log.warning(f"ROI {name} dropped: {count} voxels < min_roi_volume {settings.rois.min_roi_volume:g}",
                        patient_id=case.case_id, roi=name)
        for name, count in discovery.not_selected:
            log.log("INFO", f"ROI {name} ({count} voxels) not selected: roi_num={settings.rois.roi_num}",
                    patient_id=case.case_id, roi=name, report=True)
        if not discovery.rois:
            if discovery.dropped:
                raise InputError(f"{_mask_name(case)}: no ROI has at least {settings.rois.min_roi_volume:g} voxels "
                                 f"(min_roi_volume); largest: {max(c for _, c in discovery.dropped)} voxels")
            raise InputError(f"{_mask_name(case)}: the mask is empty (no non-zero voxel)")
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
            result.rois.append({"name": roi.name, "label": roi.label, "voxels": roi.voxel_count})
            log.info(f"{case.case_id}: {roi.name} ({roi.voxel_count} voxels) extracted",
                     patient_id=case.case_id, roi=roi.name)
            if callback:
                callback("END", case.case_id, roi.name)
            roi_name = ""
    except (InputError, SettingsError, ValueError) as exc:
        message = str(exc)
        # ``error`` always starts with the case id; the Report row names it in its own column
        result.error = f"{case.case_id}: {message}{' (ROI ' + roi_name + ')' if roi_name else ''}"
        log.error(message, patient_id=case.case_id, roi=roi_name)
    except MemoryError:
        result.error = f"{case.case_id}: out of memory{' (ROI ' + roi_name + ')' if roi_name else ''}"
        log.error("out of memory", patient_id=case.case_id, roi=roi_name)
    except Exception as exc:  # a bug or an unexpected library error: report with traceback
        result.error = f"{case.case_id}: unexpected {type(exc).__name__}: {exc}"
        log.error(f"unexpected {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}",
                  patient_id=case.case_id, roi=roi_name)
    finally:
        if case.temp_dir:
            shutil.rmtree(case.temp_dir, ignore_errors=True)
    result.entries = log.entries + [ReportEntry(case.case_id, "", "LOG", line) for line in log.lines]
    result.seconds = time.perf_counter() - start
    return result


def _mask_name(case: Case) -> str:
    return str(case.mask) if isinstance(case.mask, (str, os.PathLike)) else f"{case.case_id} mask"


def _extract_roi_values(image: Image, mask: np.ndarray, settings: Settings, on_step=None):
    if settings.extraction_mode == ExtractionMode.DEEP:
        from .engine import deep

        try:
            return deep.extract_deep_features(image, mask, settings), []
        except (deep.DeepDependencyError, deep.WeightsUnavailableError) as exc:
            # a set-up problem (torch or weights missing), not a bug: a clean message, no traceback
            raise SettingsError(str(exc)) from None
    from .engine.pipeline import extract_roi

    roi_result = extract_roi(image, mask, settings, on_step=on_step)
    return roi_result.values, roi_result.warnings


# ---------------------------------------------------------------------------------------------
# Running cases: serially, or in a pool of spawned worker processes
# ---------------------------------------------------------------------------------------------
def worker_count(settings: Settings, n_cases: int) -> int:
    if not settings.enable_parallelism or n_cases <= 1:
        return 1
    wanted = (os.cpu_count() or 1) if settings.num_workers == "auto" else int(settings.num_workers)
    return max(1, min(wanted, n_cases))


def _pool_worker(conn, settings: Settings, max_tasks: Optional[int], threads: int = 0) -> None:
    """Worker process: receive (index, case), send ("start"|"roi"|"done", ...) back on ``conn``.

    ``threads`` > 0 caps torch's intra-op threads (deep features): N workers each using every
    core would oversubscribe the machine.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    if threads and settings.extraction_mode == ExtractionMode.DEEP:
        from .engine.deep import DeepDependencyError, import_torch

        try:
            import_torch()[0].set_num_threads(threads)
        except DeepDependencyError:
            pass  # each case then reports the missing dependency with its own clear message
    done = 0
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, case = message
        conn.send(("start", index, os.getpid()))

        def on_roi(flag: str, case_id: str, roi: str, _index: int = index) -> None:
            conn.send(("roi", _index, flag, case_id, roi))

        result = extract_case(case, settings, on_roi)
        conn.send(("done", index, result))
        done += 1
        if max_tasks and done >= max_tasks:
            return


@dataclass
class _Slot:
    process: Any
    conn: Any
    index: Optional[int] = None
    started: float = 0.0
    tasks: int = 0


def _failure_result(case: Case, message: str, settings: Settings) -> CaseResult:
    """The result of a case whose worker never answered (timeout, death)."""
    log = RunLog(settings.report)
    log.error(f"{case.case_id}: {message}", patient_id=case.case_id)
    return CaseResult(case.case_id, error=f"{case.case_id}: {message}",
                      entries=log.entries + [ReportEntry(case.case_id, "", "LOG", line) for line in log.lines])


def _exit_description(exitcode: Optional[int]) -> str:
    if exitcode is None:
        return "unknown exit status"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def run_cases(cases: Sequence[Case], settings: Settings, callback: Callback = None, *,
              case_timeout: Optional[float] = None, progress_fn: ProgressFn = None,
              on_result: Optional[Callable[[int, CaseResult], None]] = None,
              max_tasks_per_child: Optional[int] = DEFAULT_MAX_TASKS_PER_CHILD,
              workers: Optional[int] = None) -> List[CaseResult]:
    """Run cases and return their results in case order.

    One worker and no ``case_timeout``: in this process. Otherwise a pool of ``workers`` spawned
    processes, each reading its own case from disk; a case that raises, runs longer than
    ``case_timeout`` seconds (its worker is killed) or kills its worker becomes an error result
    and a fresh worker takes its place. ``callback`` gets START/END per ROI as they happen,
    ``progress_fn`` gets ``case_start`` (with the worker ``pid``) and ``case_end`` events, and
    ``on_result(index, result)`` is called as each case finishes (in completion order).
    """
    n_workers = worker_count(settings, len(cases)) if workers is None else max(1, min(workers, len(cases) or 1))
    results: List[Optional[CaseResult]] = [None] * len(cases)

    def finish(index: int, result: CaseResult) -> None:
        results[index] = result
        if on_result:
            on_result(index, result)
        if progress_fn:
            progress_fn({"event": "case_end", "case_id": cases[index].case_id, "index": index,
                         "ok": not result.error, "error": result.error, "seconds": result.seconds,
                         "done": sum(r is not None for r in results), "total": len(cases)})

    if n_workers == 1 and not case_timeout:
        for index, case in enumerate(cases):
            if progress_fn:
                progress_fn({"event": "case_start", "case_id": case.case_id, "index": index, "pid": os.getpid()})
            finish(index, extract_case(case, settings, callback))
        return [r for r in results if r is not None]
    _run_pool(cases, settings, n_workers, callback, case_timeout, progress_fn, finish, max_tasks_per_child)
    return [r for r in results if r is not None]


def _run_pool(cases: Sequence[Case], settings: Settings, n_workers: int, callback: Callback,
              case_timeout: Optional[float], progress_fn: ProgressFn, finish: Callable[[int, CaseResult], None],
              max_tasks: Optional[int]) -> None:
    """The process pool behind :func:`run_cases`.

    Each worker has its own pipe, so the parent always knows which case a worker holds and a
    killed worker can corrupt nothing but its own pipe (a shared queue could be left locked).
    """
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    pending: Deque[int] = deque(range(len(cases)))
    slots: List[_Slot] = []
    finished = set()

    def spawn() -> _Slot:
        parent_conn, child_conn = context.Pipe(duplex=True)
        threads = max(1, (os.cpu_count() or 1) // n_workers)
        process = context.Process(target=_pool_worker, args=(child_conn, settings, max_tasks, threads), daemon=True,
                                  name="pysera-worker")
        process.start()
        child_conn.close()
        return _Slot(process, parent_conn)

    def retire(slot: _Slot, kill: bool) -> None:
        if kill and slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=5)
        if slot.process.is_alive():  # did not leave after its last case: do not wait for it
            slot.process.kill()
            slot.process.join(timeout=5)
        slot.conn.close()
        slots.remove(slot)

    def complete(index: int, result: CaseResult) -> None:
        if index not in finished:
            finished.add(index)
            finish(index, result)

    def user_callback(flag: str, case_id: str, roi: str) -> None:
        if callback is None:
            return
        try:
            callback(flag, case_id, roi)
        except Exception as exc:  # the user's callback must not stop the batch
            LOGGER.warning(f"callback_fn raised {type(exc).__name__}: {exc}")

    try:
        for _ in range(n_workers):
            slots.append(spawn())
        while len(finished) < len(cases):
            # retire workers that reached max_tasks (they exit by themselves after their last case)
            for slot in list(slots):
                if slot.index is None and max_tasks and slot.tasks >= max_tasks:
                    retire(slot, kill=False)
            # hand out work
            for slot in list(slots):
                if slot.index is None and pending:
                    index = pending.popleft()
                    try:
                        slot.conn.send((index, cases[index]))
                    except (OSError, BrokenPipeError):  # worker already gone: give the case to another
                        pending.appendleft(index)
                        retire(slot, kill=True)
                        continue
                    slot.index, slot.started = index, time.monotonic()
                    slot.tasks += 1
            while len(slots) < n_workers and pending:
                slots.append(spawn())
            if not slots:
                slots.append(spawn())
            timeout = 0.5
            if case_timeout:
                busy = [s.started + case_timeout - time.monotonic() for s in slots if s.index is not None]
                timeout = max(0.01, min([timeout] + busy))
            wait([s.conn for s in slots] + [s.process.sentinel for s in slots], timeout=timeout)
            for slot in list(slots):
                dead = False
                try:
                    while slot.conn.poll():
                        kind, index, *rest = slot.conn.recv()
                        if kind == "start":
                            slot.started = time.monotonic()
                            if progress_fn:
                                progress_fn({"event": "case_start", "case_id": cases[index].case_id, "index": index,
                                             "pid": rest[0]})
                        elif kind == "roi":
                            user_callback(*rest)
                        elif kind == "done":
                            slot.index = None
                            complete(index, rest[0])
                except (EOFError, OSError):
                    dead = True
                if slot.index is not None and case_timeout and time.monotonic() - slot.started > case_timeout:
                    index = slot.index
                    retire(slot, kill=True)
                    complete(index, _failure_result(
                        cases[index], f"exceeded case_timeout of {case_timeout:g} s; its worker was stopped", settings))
                    continue
                if dead or not slot.process.is_alive():
                    slot.process.join(timeout=5)
                    index = slot.index
                    exitcode = slot.process.exitcode
                    retire(slot, kill=True)
                    if index is not None:
                        complete(index, _failure_result(
                            cases[index], f"the worker process died while processing this case "
                                          f"({_exit_description(exitcode)}); the case was skipped", settings))
    finally:
        for slot in list(slots):
            if slot.index is not None:  # interrupted mid-case (Ctrl-C, error): stop it now
                slot.process.kill()
                continue
            try:
                slot.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        deadline = time.monotonic() + 5
        for slot in list(slots):
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5)
            slot.conn.close()


# ---------------------------------------------------------------------------------------------
# Progress file (results appended as cases finish) and resume
# ---------------------------------------------------------------------------------------------
def _settings_digest(settings: Settings) -> str:
    return hashlib.sha256(json.dumps(settings.to_dict(), sort_keys=True).encode("utf-8")).hexdigest()


def case_key(case: Case) -> str:
    """Identity of a case for resume: id, inputs and selection (arrays: their id only)."""
    def describe(source: Any) -> str:
        return str(Path(source).resolve()) if isinstance(source, (str, os.PathLike)) else type(source).__name__

    text = json.dumps([case.case_id, describe(case.image), describe(case.mask), case.roi_label, case.series_uid,
                       case.volume, list(case.spacing) if case.spacing is not None else None])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class ProgressStore:
    """``batch_progress.jsonl`` in the output folder: a header line, then one line per finished case.

    The file exists while a batch is unfinished: it is removed once the Excel/CSV are written.
    ``resume=True`` reuses the successful cases of a file written with the same settings;
    without ``resume`` an old file is kept as ``batch_progress_<time>.jsonl`` and a new one starts.
    """

    def __init__(self, folder: Path, settings: Settings, resume: bool, log: RunLog):
        self.path = folder / PROGRESS_FILE
        self.done: Dict[str, CaseResult] = {}
        digest = _settings_digest(settings)
        folder.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if resume:
                self.done = self._load(digest, log)
            if not self.done:
                stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(self.path.stat().st_mtime))
                backup = folder / f"batch_progress_{stamp}.jsonl"
                counter = 2
                while backup.exists():
                    backup = folder / f"batch_progress_{stamp}_{counter}.jsonl"
                    counter += 1
                self.path.rename(backup)
                if resume:
                    log.warning(f"resume: nothing reusable in {self.path.name} (kept as {backup.name})")
                else:
                    log.info(f"an unfinished run's {PROGRESS_FILE} was kept as {backup.name}")
        elif resume:
            log.info(f"resume: no {PROGRESS_FILE} in {folder}; processing every case")
        if self.done:
            self.handle = open(self.path, "a", encoding="utf-8")
        else:
            self.handle = open(self.path, "w", encoding="utf-8")
            self._write({"type": "header", "settings_sha256": digest, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def _load(self, digest: str, log: RunLog) -> Dict[str, CaseResult]:
        done: Dict[str, CaseResult] = {}
        with open(self.path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
        if not records or records[0].get("type") != "header":
            return done
        if records[0].get("settings_sha256") != digest:
            log.warning(f"resume: {self.path.name} was written with other settings; its cases are processed again")
            return done
        for record in records[1:]:
            if record.get("type") == "case":
                result = CaseResult.from_json(record["result"])
                if not result.error:
                    done[record["key"]] = result
                else:
                    done.pop(record["key"], None)
        return done

    def _write(self, record: Dict[str, Any]) -> None:
        self.handle.write(json.dumps(record, default=_json_default) + "\n")
        self.handle.flush()

    def add(self, key: str, result: CaseResult) -> None:
        self._write({"type": "case", "key": key, "case_id": result.case_id, "result": result.to_json()})

    def close(self, finished: bool) -> None:
        self.handle.close()
        if finished:
            self.path.unlink(missing_ok=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ---------------------------------------------------------------------------------------------
# process_batch
# ---------------------------------------------------------------------------------------------
_PYSERA_DEFAULTS = {
    "apply_preprocessing": False, "min_roi_volume": 10, "num_workers": "auto", "enable_parallelism": True,
    "categories": "diag,morph,glcm,glrlm,glszm,ngtdm,ngldm", "dimensions": "1st,2d", "bin_size": 25, "roi_num": 10,
    "roi_selection_mode": "per_Img", "feature_value_mode": "REAL_VALUE", "aggregation_lesion": False,
    "extraction_mode": "handcrafted_feature", "deep_learning_model": "resnet50", "report": "all",
}


def process_batch(
    image_input: Union[Source, MaskData, None] = None,
    mask_input: Union[Source, MaskData, None] = None,
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
    cases_csv: Optional[str] = None,
    case_timeout: Optional[float] = None,
    resume: bool = False,
    split_dicom: bool = False,
    max_tasks_per_child: Optional[int] = DEFAULT_MAX_TASKS_PER_CHILD,
    progress_fn: ProgressFn = None,
    scheduler: Any = None,
    cluster_retries: Optional[int] = None,
) -> Dict[str, Any]:
    """Extract radiomics features for one case or a batch (PySERA-compatible).

    Parameters follow PySERA 2.1; docs/parameters.md lists each with its meaning and default.
    Keyword-only extras (docs/batch.md):

    settings : a full :class:`Settings` (e.g. ``Settings.from_json``); PySERA keywords that
        differ from their defaults override it.
    spacing : voxel size (i, j, k) in mm for array / ``.npy`` inputs (default 1 mm, with a warning).
    cases_csv : a CSV with columns ``case_id, image, mask[, roi_label]`` instead of
        ``image_input``/``mask_input``.
    case_timeout : seconds one case may run; a case past it is stopped (its worker process is
        killed) and reported. Setting it runs cases in worker processes even with one worker.
    resume : reuse the finished cases of an interrupted run in the same ``output_path``.
    split_dicom : one case per series / volume of DICOM folders holding several.
    max_tasks_per_child : cases a pool worker runs before a fresh process replaces it.
    progress_fn : called with ``{"event": "case_start"|"case_end", "case_id", "index", ...}``.
    scheduler : run the cases on a Dask cluster: a scheduler address (``"tcp://host:8786"``), a
        scheduler file (``.json``) or a ``distributed.Client``; None (default) = this machine.
        Needs ``pip install "PySERASlicerLib[dask]"`` and workers that see the same file paths.
    cluster_retries : worker deaths a case survives on the cluster before it becomes a Report
        row (default 1).

    Returns
    -------
    dict with ``success``, ``output_path`` (results folder), ``excel_path``, ``csv_path``,
    ``provenance_path``, ``processed_files`` (cases with at least one ROI extracted),
    ``failed_files``, ``features_extracted`` (DataFrame: PatientID, ROI, features),
    ``processing_time`` (s), ``logs``, ``error`` (None, or one message per failed case).
    """
    start = time.perf_counter()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S")
    log = RunLog()
    pysera_kwargs = dict(
        apply_preprocessing=apply_preprocessing, min_roi_volume=min_roi_volume, num_workers=num_workers,
        enable_parallelism=enable_parallelism, categories=categories, dimensions=dimensions, bin_size=bin_size,
        roi_num=roi_num, roi_selection_mode=roi_selection_mode, feature_value_mode=feature_value_mode,
        aggregation_lesion=aggregation_lesion, extraction_mode=extraction_mode,
        deep_learning_model=deep_learning_model, report=report,
    )
    try:
        if settings is None:
            settings = Settings.from_pysera(IBSI_based_parameters=IBSI_based_parameters, **pysera_kwargs)
        else:
            changed = {k: v for k, v in pysera_kwargs.items() if v != _PYSERA_DEFAULTS[k]}
            if changed or IBSI_based_parameters:
                settings = Settings.from_pysera(base=settings, IBSI_based_parameters=IBSI_based_parameters, **changed)
        log.level = settings.report
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
        cluster = None
        if scheduler is not None:
            if case_timeout is not None:
                raise SettingsError("case_timeout: not available with scheduler= (a Dask worker cannot stop a "
                                    "running case); use the cluster's own limits, e.g. a SLURM time limit")
            from .dask_cluster import DaskCluster

            cluster = DaskCluster(scheduler, cluster_retries)  # checks the workers before any case runs
    except (SettingsError, InputError) as exc:
        log.error(str(exc))
        return _failure(str(exc), log, start, output_path)

    build_errors = [f"{e.patient_id}: {e.message}" if e.patient_id else e.message
                    for e in log.entries if e.level == "ERROR"]
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

    frame = features_frame(rows)
    processed = sum(1 for r in done_results if r.rows)
    failed = [r for r in done_results if r.error]
    excel_path = csv_path = json_path = None
    finished_at = time.strftime("%Y-%m-%dT%H:%M:%S")
    if output_path is not None:
        run_info = {
            "started": started_at, "finished": finished_at, "cases": len(cases), "processed_files": processed,
            "failed_cases": len(failed), "interrupted": interrupted,
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
        "failed_files": len(failed),
        "features_extracted": frame,
        "processing_time": time.perf_counter() - start,
        "logs": list(log.lines),
        "error": "; ".join(errors) if errors else (None if processed else "no case could be processed"),
    }


def run_batch_csv(cases_csv: str, settings: Union[Settings, str, Dict[str, Any], None] = None,
                  output_path: Optional[str] = "./output_result", **options: Any) -> Dict[str, Any]:
    """MEDimage-style batch: a cases CSV, a settings file (path, JSON text, dict or Settings)
    and an output folder. ``options`` are further :func:`process_batch` keywords."""
    if isinstance(settings, (str, os.PathLike)):
        settings = Settings.from_json(str(settings))
    elif isinstance(settings, dict):
        settings = Settings.from_any(settings)
    return process_batch(output_path=output_path, settings=settings, cases_csv=cases_csv, **options)


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
