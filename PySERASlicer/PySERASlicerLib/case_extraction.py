"""One case: read its image and mask, find its ROIs, extract every selected ROI.

:func:`extract_case` never raises for bad input: a problem becomes Report entries and the
result's ``error``, and ROIs finished before it are kept. It runs in the calling process or in
a pool worker (:mod:`.pool`) alike.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import shutil
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np

from .cases import Case
from .image import Image
from .io.files import is_dicom_file
from .io.readers import read_image, read_mask
from .io.suv import apply_suv
from .io.types import InputError
from .rois import Roi, discover_rois
from .runlog import ReportEntry, RunLog
from .settings import ExtractionMode, FeatureValueMode, Settings, SettingsError

#: callback_fn(flag, image_id, roi_name) with flag "START" or "END" (PySERA).
Callback = Optional[Callable[[str, str, str], None]]


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
        """The fields as JSON-ready values, for the progress file. Shallow: it is serialised at
        once, and ``asdict``'s deep copy of the feature rows cost 3 ms a case."""
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        data["entries"] = [asdict(e) for e in self.entries]
        return data

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> CaseResult:
        data = dict(data)
        data["entries"] = [ReportEntry(**e) for e in data.get("entries", [])]
        return cls(**data)



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


def _input_records(case: Case) -> Dict[str, str]:
    records = {}
    for key, source in (("image", case.image), ("mask", case.mask)):
        record = _input_record(source)
        if record:
            records[key] = record
    return records


_hashing: Optional[ThreadPoolExecutor] = None


def _hash_inputs_meanwhile(case: Case) -> Future:
    """The inputs' sha256 records, computed in a helper thread while the case is read and
    extracted (hashlib releases the GIL: a 300 MB CT costs no wall time on a second core)."""
    global _hashing
    if _hashing is None:
        _hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pysera-hash")
    return _hashing.submit(_input_records, case)


_reading_ahead: Optional[ThreadPoolExecutor] = None


def read_case_image(case: Case, settings: Settings, warnings: List[str]) -> Image:
    """The case's image as :func:`extract_case` reads it; reading warnings go to ``warnings``
    (also those of a read that then fails)."""
    return read_image(case.image, spacing=case.spacing, warnings=warnings, series_uid=case.series_uid,
                      volume=case.volume, dicom=settings.dicom)


@dataclass
class InputsAhead:
    """A case's image, and its mask when that is a plain image file, being read in a helper
    thread (:func:`read_case_inputs`), and the warnings of those reads."""

    image: Future = field(default_factory=Future)
    warnings: List[str] = field(default_factory=list)
    #: the mask on the image's grid; None: read in the case's own thread (DICOM, folders, arrays)
    mask: Future = field(default_factory=Future)
    mask_warnings: List[str] = field(default_factory=list)


def read_case_inputs(case: Case, settings: Settings, ahead: InputsAhead) -> None:
    """The helper thread's work for ``ahead``: the case's image, then a plain mask file put on
    its grid (each outcome, value or error, goes to its future; :func:`extract_case` raises an
    error where its own read would have)."""
    try:
        image = read_case_image(case, settings, ahead.warnings)
    except BaseException as exc:  # noqa: BLE001 - raised by extract_case, as an inline read's
        ahead.image.set_exception(exc)
        ahead.mask.set_result(None)
        return
    ahead.image.set_result(image)
    try:
        ahead.mask.set_result(_read_plain_mask(case, image, settings, ahead.mask_warnings))
    except BaseException as exc:  # noqa: BLE001 - raised by extract_case after the image checks
        ahead.mask.set_exception(exc)


def _read_plain_mask(case: Case, reference: Image, settings: Settings, warnings: List[str]):
    """The case's mask when it is an image file (only the image's grid matters, which SUV
    conversion keeps), else None."""
    mask = case.mask
    if not isinstance(mask, (str, os.PathLike)) or not Path(mask).exists() or Path(mask).is_dir() \
            or is_dicom_file(mask):
        return None
    return read_mask(mask, reference, settings.rois.apply_preprocessing, warnings, temp_dir=case.temp_dir,
                     dicom=settings.dicom)


def read_inputs_ahead(case: Case, settings: Settings) -> InputsAhead:
    """Start reading the case's image (and plain mask file) in a helper thread (the next case's,
    while this one is extracted: decompressing a NIfTI .gz is a third of a small case and zlib,
    SimpleITK and pydicom release the GIL; an in-memory image is only wrapped). Give it to
    :func:`extract_case` as ``inputs_ahead``.

    Not for a process's first case: that case imports the readers and the engine's lazy modules,
    and Python's per-module import locks do not make two threads importing one package at once
    safe (a package whose submodules import their parent, as openpyxl's do, can deadlock, and
    Python breaks the deadlock by handing one thread a half-initialised module)."""
    global _reading_ahead
    if _reading_ahead is None:
        _reading_ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pysera-read")
    ahead = InputsAhead()
    _reading_ahead.submit(read_case_inputs, case, settings, ahead)
    return ahead


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
                 on_step: Optional[Callable[[str, str], None]] = None,
                 inputs_ahead: Optional[InputsAhead] = None) -> CaseResult:
    """Extract every selected ROI of one case. Never raises for bad input: errors become
    Report entries and ``error``; ROIs finished before an error are kept. ``inputs_ahead``: the
    case's image (and mask) being read already (:func:`read_inputs_ahead`)."""
    start = time.perf_counter()
    result = CaseResult(case.case_id)
    log = RunLog(settings.report)
    roi_name = ""
    records = _hash_inputs_meanwhile(case)
    warnings: List[str] = []  # reading warnings; logged even when the case then fails
    try:
        if inputs_ahead is None:
            image = read_case_image(case, settings, warnings)
        else:
            try:
                image = inputs_ahead.image.result()
            finally:  # the read is over: its warnings are complete, also when it failed
                warnings.extend(inputs_ahead.warnings)
        if image.modality == "OTHER" and settings.modality.value != "OTHER":
            image = image.with_array(image.array, modality=settings.modality.value)
        image, suv_note = apply_suv(image, settings.pet_suv, warnings)  # PET DICOM -> SUV (io/suv.py)
        if suv_note:
            log.log("INFO", suv_note, patient_id=case.case_id, report=True)
            result.inputs["pet_suv"] = suv_note
        source = image.source or case.case_id
        if not np.issubdtype(image.array.dtype, np.number):
            raise InputError(f"{source}: image data type {image.array.dtype} is not numeric")
        if image.array.dtype.kind == "f" and not np.isfinite(image.array).all():
            bad = int(np.count_nonzero(~np.isfinite(image.array)))
            raise InputError(f"{source}: image contains {bad} NaN or infinite voxel value(s)")
        mask_data = None
        if inputs_ahead is not None:
            try:
                mask_data = inputs_ahead.mask.result()
            finally:
                warnings.extend(inputs_ahead.mask_warnings)
        if mask_data is None:
            mask_data = read_mask(case.mask, image, settings.rois.apply_preprocessing, warnings,
                                  temp_dir=case.temp_dir, dicom=settings.dicom)
        _log_warnings(log, warnings, case.case_id)
        for name, origin in mask_data.sources.items():  # every DICOM SEG segment read, by number
            voxels = int(np.count_nonzero(mask_data.named[name]))
            log.log("INFO", f"{origin} read as ROI {name!r} ({voxels} voxels)", patient_id=case.case_id, roi=name,
                    report=True)
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
            values, roi_warnings = _extract_roi_values(image, roi, settings, step_callback)
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
        _log_warnings(log, warnings, case.case_id)
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
        result.inputs = {**records.result(), **result.inputs}
    result.entries = log.entries + [ReportEntry(case.case_id, "", "LOG", line) for line in log.lines]
    result.seconds = time.perf_counter() - start
    return result


def _log_warnings(log: RunLog, warnings: List[str], case_id: str) -> None:
    """Move the reading warnings into the log (once: the list is emptied)."""
    for message in warnings:
        log.warning(message, patient_id=case_id)
    warnings.clear()


def _mask_name(case: Case) -> str:
    return str(case.mask) if isinstance(case.mask, (str, os.PathLike)) else f"{case.case_id} mask"


def _extract_roi_values(image: Image, roi: Roi, settings: Settings, on_step=None):
    if settings.extraction_mode == ExtractionMode.DEEP:
        from .engine import deep

        try:
            return deep.extract_deep_features(image, roi.mask, settings), []
        except (deep.DeepDependencyError, deep.WeightsUnavailableError) as exc:
            # a set-up problem (torch or weights missing), not a bug: a clean message, no traceback
            raise SettingsError(str(exc)) from None
    from .engine.pipeline import extract_roi

    roi_result = extract_roi(image, roi.box_mask, settings, on_step=on_step, box=roi.box)  # the ROI's box only
    return roi_result.values, roi_result.warnings

