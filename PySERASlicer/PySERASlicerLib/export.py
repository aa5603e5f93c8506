"""Excel and CSV output: sheets ``Radiomics_Features``, ``Parameters``, ``Report`` (PySERA's
three) and ``Feature_Definitions`` (each feature column with its IBSI name, code, family and
aggregation, so a reader can look a column up).

The sheets are made for reading: columns sized to their content, the header row (and the
``PatientID``/``ROI`` columns of the features) frozen, and the Report closing with an INFO row
(cases, ROIs, features, seconds), so a clean run's Report says that nothing went wrong.
Feature columns are named in the run's ``column_names`` style (IBSI tags or PySERA's names).

File names sort by time and never overwrite: ``extracted_radiomics_features_<YYYYmmdd_HHMMSS>``
plus ``_2``, ``_3``... when a file of that name exists (the name is reserved atomically by
creating the provenance JSON exclusively, so two runs writing into one folder at the same
second cannot collide).

Provenance (after RADIFOX's records): package version, Python, platform, host, user, start and
end time, the settings, and each input file with its sha256, written to the ``Parameters``
sheet (section ``provenance`` / ``inputs``) and as ``<stem>.json`` beside the Excel file.
"""

from __future__ import annotations

import datetime
import getpass
import json
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .runlog import ReportEntry
from .settings import ColumnNames, Settings

FEATURES_SHEET = "Radiomics_Features"
PARAMETERS_SHEET = "Parameters"
REPORT_SHEET = "Report"
DEFINITIONS_SHEET = "Feature_Definitions"
REPORT_COLUMNS = ("PatientID", "ROI", "Level", "Message")
DEFINITION_COLUMNS = ("Column", "IBSI tag", "PySERA name", "IBSI name", "IBSI code", "Family", "Aggregation")
#: Non-feature columns of the Radiomics_Features sheet (frozen beside the header).
ID_COLUMNS = ("PatientID", "ROI")
#: Column widths (characters) are kept within these bounds.
MIN_WIDTH, MAX_WIDTH = 8, 80


def features_frame(rows: Sequence[Dict[str, Any]], column_names: Union[ColumnNames, str] = ColumnNames.IBSI):
    """DataFrame with PatientID, ROI, then the features in the order the rows give them
    (registry order: the engine emits them so), named in the ``column_names`` style."""
    import pandas as pd

    if not rows:
        return pd.DataFrame(columns=list(ID_COLUMNS))
    columns: List[str] = []
    seen = set()
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    frame = pd.DataFrame(list(rows), columns=columns)
    return named_columns(frame, column_names)


def named_columns(frame, column_names: Union[ColumnNames, str]):
    """The frame with its feature columns in the ``column_names`` style (either style in)."""
    from .engine.registry import rename_columns

    renamed = rename_columns(frame.columns, column_names)
    return frame if renamed == list(frame.columns) else frame.set_axis(renamed, axis=1)


def definitions_rows(columns: Iterable[str]) -> List[Dict[str, str]]:
    """One row per feature column: its IBSI tag and PySERA name, IBSI name and code, family
    and aggregation (the Feature_Definitions sheet)."""
    from .engine.registry import spec_for_column, split_filtered_column

    rows = []
    for column in columns:
        if column in ID_COLUMNS:
            continue
        spec = spec_for_column(column)
        filtered = None if spec is not None else split_filtered_column(column)
        if filtered is not None:  # <feature>_<filter label>: the feature of a response map
            spec, label = filtered
            rows.append(dict(zip(DEFINITION_COLUMNS, (
                column, f"{spec.tag}_{label}", f"{spec.pysera_tag}_{label}",
                f"{spec.name} of the {label} response map", spec.code, spec.family, spec.aggregation_name))))
            continue
        if spec is None:  # deep features are not IBSI features
            rows.append(dict(zip(DEFINITION_COLUMNS, (column, "", "", "deep feature (no IBSI definition)", "",
                                                      "deep", ""))))
            continue
        rows.append(dict(zip(DEFINITION_COLUMNS, (column, spec.tag, spec.pysera_tag, spec.name, spec.code,
                                                  spec.family, spec.aggregation_name))))
    return rows


def closing_entry(frame, run_info: Optional[Dict[str, Any]]) -> ReportEntry:
    """The Report's last row: what the run did (so an empty Report never looks like a lost log)."""
    info = run_info or {}
    cases = info.get("cases", frame["PatientID"].nunique() if "PatientID" in frame else 0)
    n_features = len([c for c in frame.columns if c not in ID_COLUMNS])
    parts = [f"{cases} case(s)"]
    if info.get("failed_cases"):
        parts.append(f"{info['failed_cases']} failed")
    parts += [f"{len(frame)} ROI(s)", f"{n_features} feature(s) per ROI"]
    if info.get("seconds") is not None:
        parts.append(f"{float(info['seconds']):.2f} s")
    return ReportEntry("", "", "INFO", "run finished: " + ", ".join(parts))


def read_provenance(json_path: str) -> Dict[str, Any]:
    """The provenance JSON written beside an Excel report."""
    with open(json_path, encoding="utf-8") as handle:
        return json.load(handle)


def flatten(prefix: str, value: Any) -> Iterable[Tuple[str, Any]]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from flatten(f"{prefix}.{key}" if prefix else key, sub)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, sub in enumerate(value):  # e.g. the filters: filters[0].sigma_mm
            yield from flatten(f"{prefix}[{index}]", sub)
    elif isinstance(value, list):
        yield prefix, ", ".join(str(v) for v in value)
    else:
        yield prefix, value


def provenance(settings: Settings, run_info: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Who/what/where of a run (package version, python, host, user, times)."""
    from .version import __version__

    try:
        user = getpass.getuser()
    except Exception:  # no user database in some containers
        user = ""
    info = {
        "package": "PySERASlicerLib",
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "user": user,
    }
    info.update(run_info or {})
    return info


def parameters_rows(settings: Settings, run_info: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    rows = [{"Section": "settings", "Parameter": key, "Value": str(value)}
            for key, value in flatten("", settings.to_dict())]
    rows += [{"Section": "pysera", "Parameter": key, "Value": str(value)}
             for key, value in flatten("", settings.to_pysera())]
    info = provenance(settings, run_info)
    inputs = info.pop("inputs", {})
    rows += [{"Section": "provenance", "Parameter": key, "Value": str(value)} for key, value in flatten("", info)]
    rows += [{"Section": "inputs", "Parameter": key, "Value": str(value)} for key, value in flatten("", inputs)]
    return rows


def unique_stem(folder: Path, base: str = "extracted_radiomics_features") -> Path:
    """A new ``<base>_<YYYYmmdd_HHMMSS>[_n]`` stem; its ``.json`` is created empty to reserve it."""
    stamp = time.strftime("%Y%m%d_%H%M%S")
    candidate = folder / f"{base}_{stamp}"
    counter = 2
    while True:
        if not any(candidate.with_suffix(s).exists() for s in (".xlsx", ".csv")):
            try:
                with open(candidate.with_suffix(".json"), "x", encoding="utf-8"):
                    return candidate
            except FileExistsError:
                pass
        candidate = folder / f"{base}_{stamp}_{counter}"
        counter += 1


def write_outputs(output_path: str, frame, settings: Settings, entries: Sequence[ReportEntry],
                  run_info: Optional[Dict[str, Any]] = None) -> Tuple[str, str, str]:
    """Write the Excel report, its CSV twin and a provenance JSON; return the three paths."""
    import pandas as pd

    folder = Path(output_path).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    stem = unique_stem(folder)
    xlsx, csv = stem.with_suffix(".xlsx"), stem.with_suffix(".csv")
    frame = named_columns(frame, settings.column_names)
    entries = [*entries, closing_entry(frame, run_info)]
    report = pd.DataFrame([e.as_row() for e in entries], columns=list(REPORT_COLUMNS))
    parameters = pd.DataFrame(parameters_rows(settings, run_info), columns=["Section", "Parameter", "Value"])
    definitions = pd.DataFrame(definitions_rows(frame.columns), columns=list(DEFINITION_COLUMNS))
    # sheet -> (data, cell below the frozen header / left of the frozen id columns)
    sheets = {
        FEATURES_SHEET: (frame, "C2" if all(c in frame.columns for c in ID_COLUMNS) else "A2"),
        PARAMETERS_SHEET: (parameters, "A2"),
        REPORT_SHEET: (report, "A2"),
        DEFINITIONS_SHEET: (definitions, "B2"),
    }
    write_workbook(xlsx, sheets)
    frame.to_csv(csv, index=False)
    json_path = stem.with_suffix(".json")
    outputs = {str(p): _sha256(p) for p in (xlsx, csv)}
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump({"settings": settings.to_dict(), "pysera_parameters": settings.to_pysera(),
                   "provenance": provenance(settings, run_info), "outputs": outputs}, handle, indent=2, default=str)
    return str(xlsx), str(csv), str(json_path)


def write_workbook(path: Path, sheets: Dict[str, Tuple[Any, str]]) -> None:
    """Write ``sheets`` (name -> (DataFrame, first cell below the frozen header / right of the
    frozen columns)) as one .xlsx: a bold header row, frozen panes, each column as wide as its
    longest entry. Streamed with openpyxl's write-only workbook: pandas' ``to_excel`` formats
    and styles every cell first, which took a third of a small case's batch time."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    bold = Font(bold=True)
    for name, (data, freeze) in sheets.items():
        sheet = book.create_sheet(name)
        sheet.freeze_panes = freeze
        header = [str(column) for column in data.columns]
        rows = [[excel_value(v) for v in row] for row in data.to_numpy(dtype=object).tolist()]
        sample = rows[:200]  # widths from the first rows: a batch of thousands need not be scanned
        for index, title in enumerate(header):
            sheet.column_dimensions[get_column_letter(index + 1)].width = _column_width(
                title, [row[index] for row in sample])
        cells = []
        for title in header:
            cell = WriteOnlyCell(sheet, value=title)
            cell.font = bold
            cells.append(cell)
        sheet.append(cells)
        for row in rows:
            sheet.append(row)
    book.save(path)


def excel_value(value: Any) -> Any:
    """A cell's value as pandas' ``to_excel`` writes it: NaN/None/NA empty, infinities as the
    text ``inf`` / ``-inf``, numpy scalars as Python numbers, other objects as their text."""
    if isinstance(value, float):
        if value != value:
            return None
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return value
    if value is None or isinstance(value, (str, bool, int, datetime.date, datetime.time, datetime.timedelta)):
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        return excel_value(item())
    if str(value) in ("<NA>", "NaT"):
        return None
    return str(value)


def _column_width(title: str, values: Sequence[Any]) -> float:
    """Width in characters: the longest of the header and the entries, a number counting as
    Excel shows one by default."""
    lengths = [len(title)] + [len(str(v)) for v in values if v is not None and not isinstance(v, float)]
    if any(v is None or isinstance(v, float) for v in values):
        lengths.append(12)
    return min(max(max(lengths) + 2, MIN_WIDTH), MAX_WIDTH)


def _sha256(path: Path) -> str:
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()
