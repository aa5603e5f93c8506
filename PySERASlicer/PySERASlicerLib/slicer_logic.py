"""Extraction logic for the Slicer module, without Qt (usable from the console and headless).

``PySERASlicer.py``'s Logic class delegates here, so everything below the widget is tested
with the slicer-core wheel and real worker processes.

Console (blocking)::

    logic = slicer.modules.pyseraslicer.widgetRepresentation().self().logic   # or PySERASlicerLogic()
    frame, table = logic.extract(volumeNode, segmentationNode, categories="stat,glcm", dimensions="1st,3d")
    frame, table = logic.extract([ct, pet], segmentationNode, preset="ibsi_C")      # one case per volume

GUI (non-blocking; the widget polls ``running.poll()`` from a QTimer)::

    running = logic.start([volumeNode], segmentationNode, settings)
    progress = running.poll()          # RunProgress: cases/ROIs done, current step, elapsed
    running.cancel()
    frame, table, result = running.finish()

Each (volume, mask) pair is one case; cases run one after the other, each in its own worker
process (:mod:`PySERASlicerLib.jobs`). A case that fails becomes ERROR rows in the Report and
the next case still runs. Results of a run go to one ``vtkMRMLTableNode`` (one row per ROI)
that also carries the run's settings and Report as node attributes, so
:func:`export_table` can write the Excel/CSV files later, even after the scene was reloaded.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import slicer_bridge
from .engine.deep import check_deep_weights
from .image import Image
from .io.readers import MaskData
from .io.suv import apply_suv
from .jobs import Job, JobCancelled, JobError, JobProgress, start_extraction
from .runlog import ReportEntry
from .settings import Settings, preset_settings

#: Table-node attributes written by a run (read back by :func:`export_table`).
SETTINGS_ATTRIBUTE = "PySERA.Settings"
REPORT_ATTRIBUTE = "PySERA.Report"
SUMMARY_ATTRIBUTE = "PySERA.Summary"


def settings_from_params(settings: Optional[Settings] = None, preset: Optional[str] = None,
                         features: Any = None, filters: Any = None, **params: Any) -> Settings:
    """Settings from a Settings object or a preset name, overridden by PySERA keyword
    arguments (``bin_size=25``, ``categories="stat"``, ``IBSI_based_parameters={...}``) and by
    ``features`` / ``filters`` as :func:`process_batch` takes them. A mistyped feature name is
    an error here, before any worker starts."""
    if settings is not None and preset:
        raise ValueError("give either settings or preset, not both")
    base = settings or (preset_settings(preset) if preset else Settings())
    result = Settings.from_pysera(base=base, **params) if params else base
    if filters is not None:
        result = result.replace(filters=filters)
    if features is not None:
        result = result.replace(features=features)
    if result.features:
        from .engine.registry import select_named

        select_named(result.features)
    return result


def as_list(nodes: Any) -> List[Any]:
    """A node or a sequence of nodes as a list (None entries dropped)."""
    if nodes is None:
        return []
    if isinstance(nodes, (list, tuple)):
        return [n for n in nodes if n is not None]
    return [nodes]


def unique_case_ids(names: Sequence[str]) -> List[str]:
    """Case ids from volume names, made unique ("CT", "CT (2)")."""
    used: Dict[str, int] = {}
    ids = []
    for name in names:
        base = name or "volume"
        candidate, counter = base, 2
        while candidate in used:
            candidate, counter = f"{base} ({counter})", counter + 1
        used[candidate] = 1
        ids.append(candidate)
    return ids


@dataclass
class CaseInput:
    """One case ready for a worker: arrays only (no MRML node crosses a process boundary)."""

    case_id: str
    image: Image
    masks: MaskData
    report: List[Dict[str, str]] = field(default_factory=list)  # rows from reading the nodes (PET SUV)


@dataclass
class RunProgress:
    """What the GUI shows while a run is going on."""

    state: str  # "running", "finished", "cancelled"
    cases_done: int
    cases_total: int
    rois_done: int  # in the current case
    rois_total: int
    message: str
    elapsed: float
    errors: List[str] = field(default_factory=list)
    events: List[Dict[str, Any]] = field(default_factory=list)  # worker events since the last poll

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1] (cases done plus the current case's ROI fraction)."""
        if not self.cases_total:
            return 0.0
        if self.state == "finished":
            return 1.0
        current = self.rois_done / self.rois_total if self.rois_total else 0.0
        return min(1.0, (self.cases_done + current) / self.cases_total)

    def text(self) -> str:
        """Status line: ``Case 2/3, ROI 1/4 - tumor: glcm (12 s)``."""
        parts = [f"Case {min(self.cases_done + 1, self.cases_total)}/{self.cases_total}"
                 if self.state == "running" else f"{self.cases_done}/{self.cases_total} case(s)"]
        if self.state == "running" and self.rois_total:
            parts.append(f"ROI {min(self.rois_done + 1, self.rois_total)}/{self.rois_total}")
        text = ", ".join(parts)
        if self.message:
            text += f" - {self.message}"
        return f"{text} ({self.elapsed:.0f} s)"


@dataclass
class RunResult:
    """Rows (PatientID, ROI, features...), Report rows and per-case errors of a finished run."""

    rows: List[Dict[str, Any]]
    report: List[Dict[str, str]]
    errors: List[str]
    seconds: float
    settings: Settings
    cases: int
    job_errors: List[JobError] = field(default_factory=list)

    def frame(self):
        from .export import features_frame

        return features_frame(self.rows)

    def entries(self) -> List[ReportEntry]:
        """Report-sheet entries (log lines excluded, as in process_batch)."""
        return report_entries(self.report)

    def summary(self) -> str:
        return run_summary(self.rows, self.seconds, self.cases, len(self.errors))


def run_summary(rows: Sequence[Dict[str, Any]], seconds: float, cases: int = 1, failed: int = 0) -> str:
    """One-line summary shown under the Run button."""
    n_features = len({k for row in rows for k in row} - {"PatientID", "ROI"}) if rows else 0
    text = f"{len(rows)} ROI(s) x {n_features} features from {cases} case(s) in {seconds:.1f} s"
    if failed:
        text += f"; {failed} case(s) failed"
    return text


def summary(frame, seconds: float) -> str:
    """Summary for a DataFrame (kept for console users of the first API)."""
    n_rois = len(frame)
    n_features = max(frame.shape[1] - 2, 0) if n_rois else 0
    return f"{n_rois} ROI(s) x {n_features} features in {seconds:.1f} s"


StartJob = Callable[..., Job]


class RunningExtraction:
    """Cases of one run, extracted one after the other in worker processes.

    :meth:`poll` never blocks: it starts the next case when the current one has ended.
    """

    def __init__(self, cases: Sequence[CaseInput], settings: Settings, table_node=None,
                 table_name: str = "PySERA features", python: Optional[str] = None,
                 start_job: StartJob = start_extraction):
        self.cases = list(cases)
        self.settings = settings
        self.table_node = table_node
        self.table_name = table_name
        self.python = python
        self._start_job = start_job
        self.started = time.monotonic()
        self._index = 0
        self._job: Optional[Job] = None
        self._last: Optional[JobProgress] = None
        self._rows: List[Dict[str, Any]] = []
        self._report: List[Dict[str, str]] = []
        self._errors: List[str] = []
        self._job_errors: List[JobError] = []
        self._state = "running"
        self._seconds: Optional[float] = None

    @property
    def job(self) -> Optional[Job]:
        """The worker job of the current case (None between cases)."""
        return self._job

    @property
    def elapsed(self) -> float:
        return (self._seconds if self._seconds is not None else time.monotonic() - self.started)

    def _progress(self, message: str = "") -> RunProgress:
        last = self._last
        return RunProgress(
            self._state, self._index, len(self.cases),
            last.done if last and self._job is not None else 0,
            last.total if last and self._job is not None else 0,
            message or (last.message if last and self._job is not None else ""),
            self.elapsed, list(self._errors),
        )

    def poll(self) -> RunProgress:
        """Non-blocking status; starts the next case when the current one has ended."""
        if self._state != "running":
            return self._progress(self._state)
        if self._job is None:
            if self._index >= len(self.cases):
                self._state = "finished"
                self._seconds = time.monotonic() - self.started
                return self._progress("finished")
            case = self.cases[self._index]
            self._report.extend(case.report)
            try:
                self._job = self._start_job(case.image, case.masks, self.settings, case_id=case.case_id,
                                            python=self.python)
            except OSError as exc:  # the worker interpreter cannot be started at all
                self._case_failed(case, JobError(f"cannot start the worker process: {exc}"))
                return self.poll()
            self._last = None
            return self._progress(f"{case.case_id}: starting")
        case = self.cases[self._index]
        progress = self._job.poll()
        self._last = progress
        events = [dict(e, case=case.case_id) for e in progress.events]
        if progress.state == "running":
            message = f"{case.case_id}: {progress.message}" if progress.message else case.case_id
            update = self._progress(message)
            update.events = events
            return update
        try:
            result = self._job.result()
        except JobError as exc:
            self._case_failed(case, exc)  # moves on to the next case
        else:
            self._rows.extend(result.rows)
            self._report.extend(result.report)
            if result.error:
                self._errors.append(result.error)
            self._job = None
            self._index += 1
        # A fast case can end between two polls: its last events (often all of them) were read
        # by this poll and must still reach the caller.
        update = self.poll()
        update.events = events + update.events
        return update

    def _case_failed(self, case: CaseInput, exc: JobError) -> None:
        message = f"{case.case_id}: worker failed: {exc}"
        self._errors.append(message)
        self._job_errors.append(exc)
        self._report.append({"PatientID": case.case_id, "ROI": "", "Level": "ERROR", "Message": message})
        self._job = None
        self._index += 1

    @property
    def running(self) -> bool:
        return self._state == "running"

    def cancel(self) -> None:
        """Kill the current worker; no further case starts."""
        if self._state != "running":
            return
        if self._job is not None:
            self._job.cancel()
            self._job = None
        self._state = "cancelled"
        self._seconds = time.monotonic() - self.started

    def wait(self, timeout: Optional[float] = None,
             on_progress: Optional[Callable[[RunProgress], None]] = None, interval: float = 0.1) -> RunResult:
        """Block until every case has ended (console, headless, tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progress = self.poll()
            if on_progress:
                on_progress(progress)
            if progress.state != "running":
                return self.result()
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"extraction did not finish within {timeout} s; worker killed")
            time.sleep(interval)

    def result(self) -> RunResult:
        if self._state == "running":
            raise RuntimeError("extraction still running; poll() or wait() first")
        if self._state == "cancelled":
            raise JobCancelled("extraction was cancelled")
        return RunResult(self._rows, self._report, self._errors, self.elapsed, self.settings, len(self.cases),
                         self._job_errors)

    def finish_table(self, timeout: Optional[float] = None):
        """Wait, then fill the table node; returns (table node, RunResult). Needs no pandas
        (the GUI's path: Slicer does not bundle pandas)."""
        result = self.wait(timeout=timeout)
        table = results_to_table(result, self.table_node, self.table_name)
        self.table_node = table
        return table, result

    def finish(self, timeout: Optional[float] = None):
        """Wait, then fill the table node; returns (DataFrame, table node, RunResult)."""
        table, result = self.finish_table(timeout)
        return result.frame(), table, result


def response_map_name(volume_name: str, label: str) -> str:
    """Name of the volume node showing a response map: ``CT log_s1.5``."""
    return f"{volume_name} {label}"


def show_response_maps(volume_node, settings: Settings, show: bool = True) -> list:
    """One new scalar volume node per filter of ``settings``: the IBSI-2 response map of
    ``volume_node`` on its own grid (no resampling: what the filter does to the image as loaded),
    named by :func:`response_map_name`. With ``show`` and a Slicer application, the last map
    becomes the slice views' background. Raises ValueError when ``settings`` has no filter."""
    from .engine.filters import apply_filter

    if not settings.filters:
        raise ValueError("no filter to show: add one in Parameters > Filters")
    image = slicer_bridge.image_from_volume(volume_node)
    nodes = []
    for spec in settings.filters:
        response = apply_filter(image, spec)
        nodes.append(slicer_bridge.volume_from_image(response, response_map_name(volume_node.GetName(), spec.label)))
    if show:
        slicer_bridge.show_volume(nodes[-1])
    return nodes


def results_to_table(result: RunResult, table_node=None, name: str = "PySERA features"):
    """The run's rows as a vtkMRMLTableNode carrying its settings, Report and summary."""
    table = slicer_bridge.table_from_rows(result.rows, table_node, name, result.settings.column_names.value)
    table.SetAttribute(SETTINGS_ATTRIBUTE, json.dumps(result.settings.to_dict()))
    table.SetAttribute(REPORT_ATTRIBUTE, json.dumps(result.report))
    table.SetAttribute(SUMMARY_ATTRIBUTE, result.summary())
    return table


class ExtractionLogic:
    """Turns MRML nodes into background extraction jobs and their results into a table."""

    def __init__(self, python: Optional[str] = None):
        self.python = python  # worker interpreter; default sys.executable (PythonSlicer in Slicer)

    # -- preparing cases ----------------------------------------------------------------------
    @staticmethod
    def prepare_cases(pairs: Sequence[Tuple[Any, Any]], settings: Settings,
                      segment_ids: Optional[Sequence[str]] = None) -> List[CaseInput]:
        """Copy each (volume, mask) pair out of the scene: image in LPS, masks on the volume's
        grid (segments on another geometry are resampled by Slicer, labelmaps by us)."""
        if not pairs:
            raise ValueError("select at least one image volume")
        case_ids = unique_case_ids([volume.GetName() if volume is not None else "" for volume, _ in pairs])
        cases = []
        for case_id, (volume, mask) in zip(case_ids, pairs):
            image = slicer_bridge.image_from_volume(volume, modality=settings.modality.value)
            warnings: List[str] = []
            image, suv_note = apply_suv(image, settings.pet_suv, warnings)
            notes = ([("INFO", suv_note)] if suv_note else []) + [("WARNING", w) for w in warnings]
            report = [ReportEntry(case_id, "", level, message).as_row() for level, message in notes]
            masks = slicer_bridge.masks_from_node(mask, volume, segment_ids)
            cases.append(CaseInput(case_id, image, masks, report))
        return cases

    def start_pairs(self, pairs: Sequence[Tuple[Any, Any]], settings: Optional[Settings] = None,
                    segment_ids: Optional[Sequence[str]] = None, table_node=None, table_name: Optional[str] = None,
                    **params: Any) -> RunningExtraction:
        """Start a run over explicit (volume, mask) pairs."""
        settings = settings_from_params(settings, **params)
        check_deep_weights(settings)  # once, before any case is copied out of the scene
        cases = self.prepare_cases(pairs, settings, segment_ids)
        if table_name is None:
            table_name = f"{cases[0].case_id} features" if len(cases) == 1 else f"PySERA features ({len(cases)} cases)"
        return RunningExtraction(cases, settings, table_node, table_name, self.python)

    def start(self, volume_nodes: Union[Any, Sequence[Any]], mask_node, settings: Optional[Settings] = None,
              segment_ids: Optional[Sequence[str]] = None, table_node=None, **params: Any) -> RunningExtraction:
        """Start extracting every chosen segment/label of ``mask_node`` on each volume
        (one case per volume). ``params``: ``preset=...`` and/or PySERA keyword arguments."""
        volumes = as_list(volume_nodes)
        if not volumes:
            raise ValueError("select at least one image volume")
        if mask_node is None:
            raise ValueError("a segmentation or labelmap node is required")
        return self.start_pairs([(v, mask_node) for v in volumes], settings, segment_ids, table_node, **params)

    def start_batch(self, settings: Settings, output_folder, image_folder=None, mask_folder=None, cases_csv=None,
                    table_node=None, **options: Any) -> RunningBatch:
        """Batch section: process_batch on folders or a case CSV, in a worker process."""
        return start_batch(settings, output_folder, image_folder, mask_folder, cases_csv, table_node,
                           python=self.python, **options)

    def extract(self, volume_nodes: Union[Any, Sequence[Any]], mask_node, settings: Optional[Settings] = None,
                segment_ids: Optional[Sequence[str]] = None, table_node=None, timeout: Optional[float] = None,
                **params: Any) -> Tuple[Any, Any]:
        """Blocking extraction (console / headless): returns (DataFrame, vtkMRMLTableNode).

        ``volume_nodes`` is one scalar volume or a list of them (each with ``mask_node`` is one
        case); ``segment_ids`` picks segments (default: all); ``params`` are ``preset=...``
        and PySERA keyword arguments (``categories``, ``dimensions``, ``bin_size``,
        ``IBSI_based_parameters`` ...). Raises :class:`PySERASlicerLib.jobs.JobError` when
        every worker failed, and ``RuntimeError`` naming the problems when no ROI could be
        extracted. Problems of single cases are in ``table.GetAttribute("PySERA.Report")``.
        """
        running = self.start(volume_nodes, mask_node, settings, segment_ids, table_node, **params)
        frame, table, result = running.finish(timeout)
        check_result(result)
        return frame, table


class RunningBatch:
    """A ``process_batch`` run over folders or a case CSV in one worker process (Batch section).

    Same interface as :class:`RunningExtraction`; the results table gets the batch's rows and
    ``outputs`` holds the Excel/CSV paths process_batch wrote.
    """

    def __init__(self, job: Job, settings: Settings, table_node=None, table_name: str = "PySERA batch features"):
        self.job = job
        self.settings = settings
        self.table_node = table_node
        self.table_name = table_name
        self.outputs: Dict[str, Any] = {}

    @property
    def running(self) -> bool:
        return self.job.poll().state == "running"

    def poll(self) -> RunProgress:
        progress = self.job.poll()
        state = "running" if progress.state == "running" else (
            "cancelled" if progress.state == "cancelled" else "finished")
        message = progress.message if progress.state == "running" else progress.state
        if progress.done:
            message = f"{progress.done} ROI(s) done - {message}"
        return RunProgress(state, 0, 0, progress.done, progress.total, message, progress.elapsed)

    def cancel(self) -> None:
        self.job.cancel()

    def wait(self, timeout: Optional[float] = None) -> RunResult:
        result = self.job.wait(timeout=timeout)
        self.outputs = dict(result.outputs)
        errors = [e for e in (result.error or "").split("; ") if e]
        report = [{"PatientID": "", "ROI": "", "Level": "ERROR", "Message": e} for e in errors]
        cases = int(self.outputs.get("processed_files") or 0) + len(self.outputs.get("failed_files") or [])
        return RunResult(result.rows, report, errors, result.seconds, self.settings, max(cases, 1))

    def finish_table(self, timeout: Optional[float] = None):
        """Wait, then fill the table node; returns (table node, RunResult)."""
        result = self.wait(timeout)
        table = results_to_table(result, self.table_node, self.table_name)
        if self.outputs.get("excel_path"):
            table.SetAttribute("PySERA.Excel", str(self.outputs["excel_path"]))
        self.table_node = table
        return table, result

    def finish(self, timeout: Optional[float] = None):
        """Wait, then fill the table node; returns (DataFrame, table node, RunResult)."""
        table, result = self.finish_table(timeout)
        return result.frame(), table, result


def start_batch(settings: Settings, output_folder: Union[str, Path], image_folder: Optional[Union[str, Path]] = None,
                mask_folder: Optional[Union[str, Path]] = None, cases_csv: Optional[Union[str, Path]] = None,
                table_node=None, python: Optional[str] = None, **options: Any) -> RunningBatch:
    """Start ``process_batch`` on an image and a mask folder, or on a case CSV
    (columns ``case_id, image, mask[, roi_label][, series_uid][, volume]``), writing the Excel report into
    ``output_folder``. ``options`` go to process_batch unchanged (``case_timeout``, ``resume`` ...)."""
    from .jobs import start_batch as start_batch_job

    check_deep_weights(settings)  # here too: the GUI shows it at once, not after the worker started
    if cases_csv:
        if image_folder or mask_folder:
            raise ValueError("give either a case CSV or image and mask folders, not both")
        options["cases_csv"] = str(cases_csv)
        image_folder = mask_folder = None
    elif not (image_folder and mask_folder):
        raise ValueError("choose an image folder and a mask folder, or a case CSV")
    output_folder = Path(output_folder)
    options.setdefault("temporary_files_path", str(output_folder / "temporary_files"))
    job = start_batch_job(None if image_folder is None else str(image_folder),
                          None if mask_folder is None else str(mask_folder), str(output_folder), settings,
                          python=python, **options)
    return RunningBatch(job, settings, table_node)


def check_result(result: RunResult) -> None:
    """Raise when a run extracted nothing (JobError if every worker failed)."""
    if result.rows:
        return
    if result.job_errors and len(result.job_errors) == result.cases:
        raise result.job_errors[0]
    problems = "; ".join(r["Message"] for r in result.report if r.get("Level") == "ERROR") or "; ".join(result.errors)
    raise RuntimeError(f"no ROI could be extracted: {problems}")


def report_entries(report: Sequence[Dict[str, str]]) -> List[ReportEntry]:
    """Report rows (dicts) as ReportEntry objects, without the plain log lines."""
    return [ReportEntry(r.get("PatientID", ""), r.get("ROI", ""), r.get("Level", ""), r.get("Message", ""))
            for r in report if r.get("Level") != "LOG"]


def errors_text(report: Sequence[Dict[str, str]], errors: Sequence[str] = ()) -> str:
    """ERROR rows of a Report (and job errors) as text for the module panel."""
    lines = [f"{r.get('PatientID', '')}{' / ' + r['ROI'] if r.get('ROI') else ''}: {r.get('Message', '')}"
             for r in report if r.get("Level") == "ERROR"]
    lines += [e for e in errors if not any(e in line or line in e for line in lines)]
    return "\n".join(lines)


def report_rows(result) -> Dict[str, int]:
    """Counts of Report rows per level (for the status line)."""
    counts: Dict[str, int] = {}
    for row in result.report:
        counts[row["Level"]] = counts.get(row["Level"], 0) + 1
    return counts


# ---------------------------------------------------------------------------------------------
# Exports
# ---------------------------------------------------------------------------------------------
def table_run_info(table_node) -> Tuple[Settings, List[Dict[str, str]]]:
    """Settings and Report stored on a results table (defaults when the table has none)."""
    text = table_node.GetAttribute(SETTINGS_ATTRIBUTE)
    settings = Settings.from_dict(json.loads(text)) if text else Settings()
    report_text = table_node.GetAttribute(REPORT_ATTRIBUTE)
    report = json.loads(report_text) if report_text else []
    return settings, report


def export_table(table_node, output_folder: Union[str, Path]) -> Tuple[str, str]:
    """Write a results table as PySERA's Excel report (sheets Radiomics_Features,
    Parameters, Report, via :func:`export.write_outputs`) plus CSV and JSON twins.
    Needs pandas and openpyxl. Returns (xlsx path, csv path)."""
    from .export import features_frame, write_outputs

    settings, report = table_run_info(table_node)
    rows = slicer_bridge.rows_from_table(table_node)
    entries = report_entries(report)
    run_info = {"table": table_node.GetName(), "summary": table_node.GetAttribute(SUMMARY_ATTRIBUTE) or ""}
    paths = write_outputs(str(output_folder), features_frame(rows), settings, entries, run_info)
    return paths[0], paths[1]  # (xlsx, csv); newer write_outputs also returns the provenance JSON


def csv_export_path(folder: Union[str, Path], table_name: str) -> Path:
    """A new CSV path in ``folder`` named after the table (never overwrites)."""
    import re

    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", table_name).strip("_") or "features"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{base}_{time.strftime('%Y%m%d_%H%M%S')}"
    candidate, counter = folder / f"{stem}.csv", 2
    while candidate.exists():
        candidate, counter = folder / f"{stem}_{counter}.csv", counter + 1
    return candidate


def export_table_csv(table_node, path: Union[str, Path]) -> str:
    """Write a results table as one CSV file (no pandas needed): PatientID, ROI, features."""
    rows = slicer_bridge.rows_from_table(table_node)
    columns: List[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and v != v else v) for k, v in row.items()})
    return str(path)
