"""Excel and CSV output: sheets ``Radiomics_Features``, ``Parameters``, ``Report``.

File names sort by time and never overwrite: ``extracted_radiomics_features_<YYYYmmdd_HHMMSS>``
plus ``_2``, ``_3``... when a file of that name exists (the name is reserved atomically by
creating the provenance JSON exclusively, so two runs writing into one folder at the same
second cannot collide).

Provenance (after RADIFOX's records): package version, Python, platform, host, user, start and
end time, the settings, and each input file with its sha256, written to the ``Parameters``
sheet (section ``provenance`` / ``inputs``) and as ``<stem>.json`` beside the Excel file.
"""

from __future__ import annotations

import getpass
import json
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .runlog import ReportEntry
from .settings import Settings

FEATURES_SHEET = "Radiomics_Features"
PARAMETERS_SHEET = "Parameters"
REPORT_SHEET = "Report"
REPORT_COLUMNS = ("PatientID", "ROI", "Level", "Message")


def features_frame(rows: Sequence[Dict[str, Any]]):
    """DataFrame with PatientID, ROI, then the features in the order the rows give them
    (registry order: the engine emits them so)."""
    import pandas as pd

    if not rows:
        return pd.DataFrame(columns=["PatientID", "ROI"])
    columns: List[str] = []
    seen = set()
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    return pd.DataFrame(list(rows), columns=columns)


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
    from . import __version__

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
    report = pd.DataFrame([e.as_row() for e in entries], columns=list(REPORT_COLUMNS))
    parameters = pd.DataFrame(parameters_rows(settings, run_info), columns=["Section", "Parameter", "Value"])
    with pd.ExcelWriter(xlsx, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name=FEATURES_SHEET, index=False)
        parameters.to_excel(writer, sheet_name=PARAMETERS_SHEET, index=False)
        report.to_excel(writer, sheet_name=REPORT_SHEET, index=False)
    frame.to_csv(csv, index=False)
    json_path = stem.with_suffix(".json")
    outputs = {str(p): _sha256(p) for p in (xlsx, csv)}
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump({"settings": settings.to_dict(), "pysera_parameters": settings.to_pysera(),
                   "provenance": provenance(settings, run_info), "outputs": outputs}, handle, indent=2, default=str)
    return str(xlsx), str(csv), str(json_path)


def _sha256(path: Path) -> str:
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()
